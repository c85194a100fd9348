//! `boxfence-cni`: the plugin binary a container runtime runs.

use std::io::Read as _;

fn main() {
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => boxfence_cni::invoke(|name| std::env::var(name).ok(), &stdin),
        Err(error) => boxfence_cni::Outcome {
            stdout: Some(
                boxfence_cni::CniError::Io(format!("reading stdin: {error}")).to_json("1.1.0"),
            ),
            status: 1,
        },
    };
    if let Some(value) = outcome.stdout {
        println!("{value}");
    }
    std::process::exit(outcome.status);
}
