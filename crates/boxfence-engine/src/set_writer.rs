//! Writes learned addresses into the kernel sets from a thread of its own:
//! the resolver's runtime thread hands over an answer's elements and goes
//! on with other queries; this thread commits whatever has queued up
//! meanwhile in one nf_tables transaction and then tells every waiter.

use std::sync::mpsc;

use boxfence_dataplane::nft_netlink::{NftSocket, SetElement};
use tokio::sync::oneshot;

/// Most requests in one transaction, so one batch never grows without
/// bound while answers wait on it.
const MAX_BATCH: usize = 256;

/// The outcome of a write: `Err` carries the kernel's refusal.
pub(crate) type Written = Result<(), String>;

/// Adds and removes set elements of one table through one netlink socket.
pub(crate) struct SetWriter {
    table: String,
    /// `None` only while dropping (closing it ends the thread).
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for SetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetWriter")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

struct Request {
    elements: Vec<SetElement>,
    add: bool,
    done: Done,
}

/// Who waits for a request.
enum Done {
    /// A resolver task.
    Task(oneshot::Sender<Written>),
    /// A blocked thread (the engine's policy updates).
    Thread(mpsc::SyncSender<Written>),
}

impl Done {
    fn send(self, written: Written) {
        // A waiter that gave up (its query timed out) needs no answer.
        let _ = match self {
            Self::Task(sender) => sender.send(written).map_err(drop),
            Self::Thread(sender) => sender.send(written).map_err(drop),
        };
    }
}

impl SetWriter {
    /// A writer for table `inet <table>` through `socket` (opened in the
    /// table's namespace). If its thread cannot start, every write fails
    /// (answers become SERVFAIL, never unauthorised).
    pub(crate) fn new(table: String, socket: NftSocket) -> Self {
        let (requests, queue) = mpsc::channel();
        let name = table.clone();
        let thread = std::thread::Builder::new()
            .name("boxfence-sets".into())
            .spawn(move || run(&name, socket, &queue));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(error) => {
                eprintln!("boxfence: set writer thread did not start: {error}");
                None
            }
        };
        Self {
            table,
            requests: Some(requests),
            thread,
        }
    }

    /// Adds `elements`; the receiver hears once they are committed.
    pub(crate) fn add(&self, elements: Vec<SetElement>) -> oneshot::Receiver<Written> {
        let (sender, receiver) = oneshot::channel();
        self.submit(elements, true, Done::Task(sender));
        receiver
    }

    /// Adds (`add`) or removes `elements` and waits for the commit.
    pub(crate) fn write(&self, elements: Vec<SetElement>, add: bool) -> Written {
        if elements.is_empty() {
            return Ok(());
        }
        let (sender, receiver) = mpsc::sync_channel(1);
        self.submit(elements, add, Done::Thread(sender));
        receiver
            .recv()
            .unwrap_or_else(|_| Err("set writer stopped".into()))
    }

    fn submit(&self, elements: Vec<SetElement>, add: bool, done: Done) {
        let request = Request {
            elements,
            add,
            done,
        };
        let Some(requests) = &self.requests else {
            return request.done.send(Err("set writer stopped".into()));
        };
        if let Err(mpsc::SendError(request)) = requests.send(request) {
            request.done.send(Err("set writer stopped".into()));
        }
    }
}

impl Drop for SetWriter {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: one transaction per run of queued requests of the
/// same kind (additions and removals stay in order).
fn run(table: &str, mut socket: NftSocket, queue: &mpsc::Receiver<Request>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        let mut batch = batch.into_iter().peekable();
        while let Some(first) = batch.next() {
            let add = first.add;
            let mut same = vec![first];
            while let Some(next) = batch.next_if(|r| r.add == add) {
                same.push(next);
            }
            commit(table, &mut socket, same);
        }
    }
}

/// Commits `requests` (all additions or all removals) together and acks
/// each. If the kernel refuses the transaction, each request is retried
/// alone, so one bad request (a box deleted meanwhile) fails only itself.
fn commit(table: &str, socket: &mut NftSocket, requests: Vec<Request>) {
    let add = requests.first().is_some_and(|r| r.add);
    let elements: Vec<SetElement> = requests
        .iter()
        .flat_map(|r| r.elements.iter().cloned())
        .collect();
    let together = apply(table, socket, &elements, add);
    if together.is_ok() || requests.len() == 1 {
        for request in requests {
            request.done.send(together.clone());
        }
        return;
    }
    for request in requests {
        let alone = apply(table, socket, &request.elements, add);
        request.done.send(alone);
    }
}

fn apply(table: &str, socket: &mut NftSocket, elements: &[SetElement], add: bool) -> Written {
    // Removal tolerates elements already gone (expired).
    let result = if add {
        socket.add_elements(table, elements)
    } else {
        socket.remove_elements(table, elements)
    };
    result.map_err(|e| e.to_string())
}
