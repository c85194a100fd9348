//! The name checker (issue 19): reads the first payload a box sends on a
//! flow a domain authorised, from the ruleset's NFQUEUE, and asks the
//! policy core whether the name it claims (TLS SNI, HTTP Host) is allowed.
//! Only those first packets leave the kernel; the verdict's mark makes the
//! ruleset let the flow's later packets pass in the kernel, or reset it.
//!
//! A packet is held until the flow's first bytes say enough (a ClientHello
//! spread over segments): the server never receives a byte of a flow
//! whose name is refused. A flow that says too little for too long is
//! refused too. Should the checker be down, the queue has no reader and
//! the kernel drops those packets: such flows stall, none passes unchecked.

mod flows;
mod parse;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use boxfence_dataplane::nfqueue::{Nfqueue, PacketVerdict, parse_segment};
use boxfence_dataplane::ruleset::NameCheck;
use boxfence_policy::{
    Claim, Direction, Flow, FlowEvent, FlowEventKind, Protocol, check_name, refusal,
};

use crate::flowlog::{AttemptKey, now_ms};
use crate::linux::LinuxEngine;
use flows::{Flows, Held, Judged, Key};
use parse::Parsed;

/// How long a flow may hold its first bytes back before it is refused.
const PATIENCE: Duration = Duration::from_secs(5);

/// The checker's state: whether it reads its queue, and whether it is
/// asked to leave it (a test of the checker being down).
#[derive(Debug, Default)]
pub(crate) struct CheckerState(AtomicU8);

const WAITING: u8 = 0;
const BOUND: u8 = 1;
const ASKED_TO_LEAVE: u8 = 2;
const LEFT: u8 = 3;

impl CheckerState {
    fn get(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::SeqCst);
    }

    /// Waits up to `limit` for `state`.
    fn wait_for(&self, state: u8, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.get() != state {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

impl LinuxEngine {
    /// Runs `f` while the name checker has left its queue, as if it had
    /// died: packets queued meanwhile are dropped by the kernel. Then
    /// waits for the checker to read the queue again. For tests of
    /// failure modes; false when the checker did not leave or come back.
    pub fn without_name_checker<T>(&self, f: impl FnOnce() -> T) -> (T, bool) {
        let limit = Duration::from_secs(10);
        let _ = self.name_checker.wait_for(BOUND, limit);
        self.name_checker.set(ASKED_TO_LEAVE);
        let left = self.name_checker.wait_for(LEFT, limit);
        let value = f();
        self.name_checker.set(WAITING);
        let back = self.name_checker.wait_for(BOUND, limit);
        (value, left && back)
    }
    /// Judges the name checks' queue on a thread of its own, in the host
    /// namespace, until the engine is gone. Until the queue is bound (an
    /// earlier daemon may still hold it), its packets are dropped: flows
    /// that need a check wait, none passes unchecked.
    pub(crate) fn spawn_name_checker(self: &Arc<Self>, marks: NameCheck) -> std::io::Result<()> {
        let engine: Weak<Self> = Arc::downgrade(self);
        let host = self.host().clone();
        std::thread::Builder::new()
            .name("boxfence-names".into())
            .spawn(move || {
                if host.enter().is_err() {
                    eprintln!("boxfence: the name checker cannot enter the host namespace");
                    return;
                }
                let mut warned = false;
                loop {
                    let Some(state) = engine.upgrade().map(|e| e.name_checker.get()) else {
                        return;
                    };
                    if state != WAITING {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    match Nfqueue::bind(marks.queue) {
                        Ok(queue) => {
                            check_loop(queue, &engine, marks);
                            // A socket that failed: bind again.
                            if let Some(engine) = engine.upgrade() {
                                let _ = engine.name_checker.0.compare_exchange(
                                    BOUND,
                                    WAITING,
                                    Ordering::SeqCst,
                                    Ordering::SeqCst,
                                );
                            }
                            warned = false;
                        }
                        Err(error) if !warned => {
                            eprintln!(
                                "boxfence: name checks wait for their queue ({error}); \
                                 domain-authorised flows wait meanwhile"
                            );
                            warned = true;
                        }
                        Err(_) => {}
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })?;
        Ok(())
    }
}

/// Reads the queue until the engine is gone, the socket fails, or the
/// checker is asked to leave (then the queue is unbound on return).
fn check_loop(mut queue: Nfqueue, engine: &Weak<LinuxEngine>, marks: NameCheck) {
    let mut flows = Flows::default();
    if let Some(engine) = engine.upgrade() {
        engine.name_checker.set(BOUND);
    }
    loop {
        let Ok(packets) = queue.read() else { return };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if engine.name_checker.get() == ASKED_TO_LEAVE {
            // Unbound before it says so.
            drop(queue);
            engine.name_checker.set(LEFT);
            return;
        }
        let mut verdicts = Vec::new();
        for packet in packets {
            let Some(segment) = parse_segment(&packet.packet) else {
                // Not TCP over IP: the ruleset queues nothing else.
                verdicts.push((packet.id, PacketVerdict::Drop));
                continue;
            };
            if segment.payload.is_empty() {
                verdicts.push((packet.id, PacketVerdict::Accept));
                continue;
            }
            let key = Key::of(&segment);
            let held = Held {
                id: packet.id,
                mark: packet.mark,
            };
            if let Some(outcome) = flows.judged(key, segment.seq) {
                verdicts.push((held.id, verdict(held, outcome)));
                continue;
            }
            if let Some(judged) = flows.add(key, held, segment.seq, segment.payload) {
                verdicts.extend(decide(&engine, &mut flows, marks, judged));
            }
        }
        for (key, parsed) in flows.overdue(PATIENCE) {
            verdicts.extend(decide(&engine, &mut flows, marks, (key, parsed)));
        }
        for (id, verdict) in verdicts {
            // A lost verdict leaves the packet queued until the queue
            // closes, and the flow held back: fail closed.
            let _ = queue.verdict(id, verdict);
        }
    }
}

/// Judges a flow whose first bytes are in, records a refusal, and returns
/// the verdicts of its held packets.
fn decide(
    engine: &LinuxEngine,
    flows: &mut Flows,
    marks: NameCheck,
    (key, parsed): Judged,
) -> Vec<(u32, PacketVerdict)> {
    let claim = match &parsed {
        Parsed::Sni(name) => Claim::Sni(name),
        Parsed::Host(name) => Claim::Host(name),
        Parsed::NoSni => Claim::NoSni,
        Parsed::Unrecognised | Parsed::NeedMore => Claim::Unrecognised,
    };
    // Not a box of this engine's (`None`): another table queued it.
    let outcome = judge(engine, key, claim).map(|allowed| {
        if allowed {
            marks.verdict_ok()
        } else {
            marks.verdict_deny()
        }
    });
    flows
        .settle(key, outcome)
        .into_iter()
        .map(|held| (held.id, verdict(held, outcome)))
        .collect()
}

/// The verdict of a held packet of a judged flow: through the chain again
/// with the judgement's bit, or on as it is.
fn verdict(held: Held, outcome: Option<u32>) -> PacketVerdict {
    match outcome {
        Some(bit) => PacketVerdict::Repeat {
            mark: held.mark | bit,
        },
        None => PacketVerdict::Accept,
    }
}

/// Whether the box `key.src` belongs to may claim `claim` on this flow;
/// a refusal goes to its flow log. `None` when no box has that address.
fn judge(engine: &LinuxEngine, key: Key, claim: Claim<'_>) -> Option<bool> {
    let entry = engine.directory().lookup(key.src)?;
    let flow = Flow {
        direction: Direction::Egress,
        protocol: Protocol::Tcp,
        port: Some(key.dport),
        ip: Some(key.dst),
        domain: None,
        source: Some(key.src),
    };
    let check = check_name(&entry.policy, &flow, claim);
    if check.allowed() {
        return Some(true);
    }
    let event = FlowEvent {
        direction: Some(Direction::Egress),
        protocol: Some(Protocol::Tcp),
        src: Some(key.src),
        sport: Some(key.sport),
        dst: Some(key.dst),
        dport: Some(key.dport),
        domain: entry.authorised_by(key.dst),
        claimed: claim.name().map(str::to_owned),
        layer: Some(check.layer),
        ..FlowEvent::new(
            now_ms(),
            entry.id.clone(),
            FlowEventKind::Connection,
            "deny",
            refusal(claim, &check),
        )
    };
    let attempt = AttemptKey {
        protocol: Protocol::Tcp,
        src: (key.src, Some(key.sport)),
        dst: (key.dst, Some(key.dport)),
    };
    engine.flow_log().record(event, Some(attempt));
    Some(false)
}
