//! Running a program with bounded output and a deadline: the runtime's
//! `exec` for a command in a box. Output is read until the command ends;
//! a process it left in the background may keep the pipes open, so once
//! the command has exited, what arrived within [`DRAIN`] is what is
//! returned (the background process lives on, as in a machine).

use std::io::{Read, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Most bytes of stdout and of stderr kept; the rest is read and dropped.
pub const MAX_OUTPUT: usize = 1 << 20;
/// Exit code when the timeout killed the command (as timeout(1) does).
pub const TIMED_OUT: i32 = 124;
/// How long output is still read after the command exited, for a
/// background process that holds the pipes.
const DRAIN: Duration = Duration::from_millis(100);

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// Exit code; 128 + signal when killed; [`TIMED_OUT`] on timeout.
    pub exit_code: i32,
    /// Standard output, at most [`MAX_OUTPUT`] bytes.
    pub stdout: Vec<u8>,
    /// Standard error, at most [`MAX_OUTPUT`] bytes.
    pub stderr: Vec<u8>,
}

/// Runs `command` with `stdin` as its input until it exits or `timeout`
/// passes; then it and every process descended from it are killed (a
/// runtime's `exec` is the parent of the process it starts in the box).
pub(crate) fn run_bounded(
    command: &mut Command,
    stdin: &[u8],
    timeout: Duration,
) -> std::io::Result<ExecResult> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().map(Reader::start);
    let stderr = child.stderr.take().map(Reader::start);
    if let Some(mut pipe) = child.stdin.take() {
        let input = stdin.to_vec();
        // A command that does not read its input must not hold us up.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let status = match wait_until(&mut child, timeout)? {
        Some(status) => exit_code(status),
        None => {
            kill_tree(child.id());
            child.wait()?;
            TIMED_OUT
        }
    };
    let collect = |reader: Option<Reader>| reader.map(Reader::finish).unwrap_or_default();
    Ok(ExecResult {
        exit_code: status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// A pipe read on a thread of its own, into a bounded buffer.
struct Reader {
    kept: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Reader {
    fn start(mut pipe: impl Read + Send + 'static) -> Self {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let buffer = Arc::clone(&kept);
        thread::spawn(move || {
            let mut chunk = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                let mut kept = buffer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
            let _ = tx.send(());
        });
        Self { kept, done }
    }

    /// What was read by the end of the pipe, or by [`DRAIN`] from now.
    fn finish(self) -> Vec<u8> {
        let _ = self.done.recv_timeout(DRAIN);
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.clone()
    }
}

/// Waits for `child` at most `timeout`; `None` when the time is up.
fn wait_until(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        // Short at first: most commands end within milliseconds.
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(TIMED_OUT)
}

/// Kills `pid` and every process descended from it (read from
/// /proc/PID/task/TID/children), over a few rounds for those forked
/// meanwhile.
fn kill_tree(pid: u32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for _ in 0..10 {
        let tree = descendants(i32::try_from(pid).unwrap_or(i32::MAX));
        if tree.is_empty() {
            return;
        }
        for &p in &tree {
            let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
        }
        for p in tree {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

/// `pid` and its descendants that exist now.
fn descendants(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        found.push(p);
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_bounded_and_the_exit_code_kept() {
        let mut command = Command::new("sh");
        command.args(["-c", "head -c 3000000 /dev/zero; echo err >&2; exit 3"]);
        let result = run_bounded(&mut command, b"", Duration::from_secs(10)).expect("ran");
        assert_eq!(result.exit_code, 3);
        assert_eq!(result.stdout.len(), MAX_OUTPUT);
        assert_eq!(result.stderr, b"err\n");
    }

    #[test]
    fn a_background_process_holding_the_pipes_does_not_hold_the_answer() {
        let mut command = Command::new("sh");
        command.args(["-c", "cat; sleep 30 & echo started"]);
        let started = Instant::now();
        let result = run_bounded(&mut command, b"in:", Duration::from_secs(10)).expect("ran");
        assert_eq!(result.exit_code, 0);
        assert_eq!(result.stdout, b"in:started\n");
        // Usually 100 ms (the drain); 5 s only proves it did not wait for sleep.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_timeout_kills_the_whole_tree() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 60 & echo $!; sleep 60"]);
        let result = run_bounded(&mut command, b"", Duration::from_millis(300)).expect("ran");
        assert_eq!(result.exit_code, TIMED_OUT);
        let pid = String::from_utf8_lossy(&result.stdout).trim().to_owned();
        assert!(!pid.is_empty(), "{result:?}");
        // Gone, or a zombie waiting for the reaper it was left to.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next());
        assert!(
            matches!(state, None | Some('Z')),
            "the background sleep lives: {stat}"
        );
    }
}
