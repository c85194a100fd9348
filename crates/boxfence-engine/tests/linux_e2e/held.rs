//! A connection held open from a box across a change, judged by what the
//! box saw rather than by sleeps: the change starts once conntrack has the
//! connection established, and the box's program stamps every echo it
//! gets, so an echo after the change returned is seen whatever the speed
//! (under emulation, on the kernel matrix's VMs, a box's Python takes
//! seconds to start where it takes 0.1 s natively).

use std::time::SystemTime;

use crate::rig::*;

/// The lab's echo server's port.
const ECHO_PORT: u16 = 9000;

/// How a held connection fared.
#[derive(Debug)]
pub(crate) struct Held {
    /// The box program's output, for messages.
    pub(crate) output: ExecOutput,
    /// Echoes the box got after the change returned.
    pub(crate) echoes_after: usize,
    /// The connection failed (reset, closed or timed out) before the
    /// program's time was up.
    pub(crate) cut: bool,
}

/// Connects from `spec` to `address` (a Python expression) on the echo
/// port, then sends a line every 0.1 s for up to `secs` seconds or until
/// the connection fails; `change` runs once conntrack has the connection
/// established.
pub(crate) fn hold_across(
    rig: &Rig,
    spec: &MachineSpec,
    address: &str,
    secs: u32,
    change: impl FnOnce(),
) -> Held {
    let script = format!(
        "import socket,time\n\
         s=socket.create_connection(({address},{ECHO_PORT}),timeout=5)\n\
         end=time.time()+{secs}\n\
         try:\n\
         \x20 while time.time()<end:\n\
         \x20   s.sendall(b'one\\n')\n\
         \x20   if not s.recv(100): print('cut closed', flush=True); break\n\
         \x20   print('echo', time.time(), flush=True); time.sleep(0.1)\n\
         \x20 else: print('open')\n\
         except Exception as e: print('cut', type(e).__name__)\n"
    );
    std::thread::scope(|scope| {
        let held = scope.spawn(|| rig.exec(spec, &["python3", "-c", &script]));
        if !replied_flow(rig, spec, "tcp", ECHO_PORT) {
            let output = held.join().expect("exec thread");
            panic!("no connection from the box to port {ECHO_PORT} within 60 s: {output:?}");
        }
        change();
        let changed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let output = held.join().expect("exec thread");
        // The box shares the host's wall clock (time namespaces move only
        // the monotonic clocks).
        let echoes_after = output
            .stdout
            .lines()
            .filter_map(|line| line.strip_prefix("echo ")?.parse::<f64>().ok())
            .filter(|&at| at > changed)
            .count();
        let cut = output.stdout.lines().any(|line| line.starts_with("cut"));
        Held {
            output,
            echoes_after,
            cut,
        }
    })
}

/// Waits until conntrack has a flow of `protocol` (as conntrack names it)
/// from the box to `port` that saw a reply (a TCP one established): true
/// within 60 s (natively 0.1 s; under emulation a box's Python takes
/// seconds to start). The whole table is listed and searched here: how the
/// kernel filters a dump by address differs between versions (zones).
/// A flow offloaded to the flowtable (only established ones are) is listed
/// without its TCP state on Linux 6.1, just `[OFFLOAD]`.
pub(crate) fn replied_flow(rig: &Rig, spec: &MachineSpec, protocol: &str, port: u16) -> bool {
    let source = format!(" src={} ", spec.addresses.ipv4);
    let port = format!(" dport={port} ");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let listed = rig.host(&["conntrack", "-L"]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&listed.stdout),
            String::from_utf8_lossy(&listed.stderr)
        );
        let found = last.lines().any(|flow| {
            flow.starts_with(protocol)
                && flow.contains(&source)
                && flow.contains(&port)
                && !flow.contains("UNREPLIED")
                && (protocol != "tcp"
                    || flow.contains(" ESTABLISHED ")
                    || flow.contains("[OFFLOAD]"))
        });
        if found {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("no {protocol} flow from the box to{port}replied; conntrack -L listed:\n{last}");
    false
}
