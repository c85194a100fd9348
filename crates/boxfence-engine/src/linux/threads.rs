//! The threads the engine's blocking work runs on, apart from tokio's
//! blocking pool: that pool is shared by every request kind, so a flood
//! of one kind (long execs) could hold every thread of it while a policy
//! change waits its turn (issue 18). Changes run on one thread of their
//! own, the watchdog on another, and each exec on a fresh thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::EngineError;

type Job = Box<dyn FnOnce() + Send>;

/// One thread that runs jobs in the order they come. Changes need no
/// more: they are serialised by the engine's lock anyway. Its queue stays
/// short because the server holds an app's lock across each change, so at
/// most one change of each app waits here: another app's change waits for
/// at most one change per app, whatever one app sends.
#[derive(Debug)]
pub(super) struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread `name`; it ends when the worker is dropped.
    pub(super) fn start(name: &str) -> Result<Self, EngineError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .map_err(|error| EngineError::Kernel(format!("cannot start thread {name}: {error}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` on this worker's thread once the jobs before it are done.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let (job, answer) = answered(work);
        self.jobs
            .send(job)
            .map_err(|_| EngineError::Kernel("the data plane's thread has stopped".into()))?;
        wait(answer).await
    }
}

/// Runs `work` on a fresh thread `name` (one exec: it may take as long as
/// its timeout, and the server caps how many run at once).
pub(super) async fn on_own_thread<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    let (job, answer) = answered(work);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(job)
        .map_err(|error| EngineError::Exec(format!("cannot start a thread: {error}")))?;
    wait(answer).await
}

/// `work` as a job that answers through the returned receiver. A panic
/// ends the job, not the thread: the caller gets an error, and the next
/// job runs (the engine's lock ignores poisoning; the watchdog repairs a
/// half-made change).
fn answered<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> (Job, oneshot::Receiver<Result<T, EngineError>>) {
    let (answer, answered) = oneshot::channel();
    let job = Box::new(move || {
        if let Ok(result) = catch_unwind(AssertUnwindSafe(work)) {
            let _ = answer.send(result);
        }
    });
    (job, answered)
}

async fn wait<T>(answer: oneshot::Receiver<Result<T, EngineError>>) -> Result<T, EngineError> {
    answer
        .await
        .map_err(|_| EngineError::Kernel("data plane task failed (it panicked)".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    #[test]
    fn jobs_run_in_order_on_the_worker_thread_and_survive_a_panic() {
        let worker = Worker::start("test-worker").expect("worker");
        let runtime = runtime();
        let name = runtime
            .block_on(worker.run(|| Ok(std::thread::current().name().map(str::to_owned))))
            .expect("answer");
        assert_eq!(name.as_deref(), Some("test-worker"));
        let panicked =
            runtime.block_on(worker.run(|| -> Result<(), EngineError> { panic!("a job panics") }));
        assert!(panicked.is_err(), "a panic is an error to its caller");
        let after = runtime.block_on(worker.run(|| Ok(7)));
        assert_eq!(after.expect("the next job still runs"), 7);
    }

    #[test]
    fn own_thread_answers() {
        let runtime = runtime();
        let name = runtime
            .block_on(on_own_thread("test-exec", || {
                Ok(std::thread::current().name().map(str::to_owned))
            }))
            .expect("answer");
        assert_eq!(name.as_deref(), Some("test-exec"));
    }
}
