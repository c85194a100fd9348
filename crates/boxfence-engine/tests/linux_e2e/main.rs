//! End to end, in a sealed lab: boxes made by the Linux engine, policies
//! enforced by the lab host's kernel, seen from inside the box.
//!
//! This test binary is also the engine's exec helper (as the `boxfence`
//! binary is in production), so it has its own `main`: the helper
//! subcommands must run before any thread exists.

use boxfence_dataplane::exec::{HELPER_SUBCOMMAND, INIT_SUBCOMMAND, helper_main, init_main};
use boxfence_lab::harness::run_tests;
use boxfence_lab::require_root;

mod enforcement;
#[path = "../support/lab_config.rs"]
mod lab_config;
mod lifecycle;
mod resolver;
mod resolver_flood;
mod rig;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(HELPER_SUBCOMMAND) => std::process::exit(helper_main(&args[2..])),
        Some(INIT_SUBCOMMAND) => std::process::exit(init_main(&args[2..])),
        _ => {}
    }
    let tests: Vec<(&str, rig::Test)> = [
        enforcement::TESTS,
        resolver::TESTS,
        resolver_flood::TESTS,
        lifecycle::TESTS,
    ]
    .concat();
    run_tests(
        "linux_e2e",
        &args[1..],
        &tests,
        || require_root("linux_e2e"),
        |test| test(&rig::Rig::new()),
    );
}
