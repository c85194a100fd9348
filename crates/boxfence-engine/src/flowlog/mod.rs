//! The flow log: one event per denied connection attempt and per refused
//! DNS query, with its reason; rate-limited per box (with an explicit
//! "N suppressed" event), a bounded history per box, kept on disk across
//! restarts ([`disk`]), and a live stream that never waits for a slow
//! reader.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use boxfence_dataplane::conntrack::TrackedFlow;
use boxfence_policy::{Finding, Flow, FlowEvent, FlowEventKind, Protocol, Reason};
use boxfence_resolver::rate::RateLimit;
use tokio::sync::broadcast;

/// Events kept per box (about 300 bytes each: ~300 KB per box at most).
pub const HISTORY_PER_BOX: usize = 1000;
/// Events per second a box may produce (bursts of twice that).
pub const EVENTS_PER_SECOND_PER_BOX: u32 = 20;
/// Packets of one flow within this window are one connection attempt
/// (SYN retransmissions, a UDP client's retries).
const SAME_ATTEMPT: Duration = Duration::from_secs(10);
/// Most flows remembered for that; older ones are forgotten first.
const MAX_RECENT: usize = 100_000;

/// Identifies a connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    /// Its transport.
    pub protocol: Protocol,
    /// Source address and port.
    pub src: (IpAddr, Option<u16>),
    /// Destination address and port.
    pub dst: (IpAddr, Option<u16>),
}

mod disk;

#[derive(Debug)]
struct BoxLog {
    history: VecDeque<FlowEvent>,
    /// Where its events are appended on disk.
    segment: disk::Segment,
    rate: RateLimit,
    suppressed: u64,
    /// Denied connection attempts and refused queries, ever.
    totals: (u64, u64),
}

#[derive(Debug, Default)]
struct Hub {
    boxes: HashMap<String, BoxLog>,
    recent: HashMap<AttemptKey, Instant>,
    /// The log on disk; none: in memory only.
    disk: Option<disk::Disk>,
    /// Set once a disk error was reported (it is reported once).
    disk_failed: bool,
    /// Boxes whose allowed connections were logged when the log was
    /// opened.
    allowed: HashSet<String>,
}

impl BoxLog {
    fn new(history: VecDeque<FlowEvent>, segment: disk::Segment) -> Self {
        Self {
            history,
            segment,
            rate: RateLimit::default(),
            suppressed: 0,
            totals: (0, 0),
        }
    }
}

impl Hub {
    /// Reports a disk error, the first one only: the log goes on in
    /// memory and tries the disk again with each event.
    fn disk_error(&mut self, what: &str, error: &std::io::Error) {
        if !std::mem::replace(&mut self.disk_failed, true) {
            eprintln!("boxfence: flow log on disk: {what}: {error}");
        }
    }
}

impl AttemptKey {
    /// The attempt `flow` belongs to.
    pub fn of(flow: &TrackedFlow) -> Self {
        Self {
            protocol: flow.protocol,
            src: (flow.src, flow.sport),
            dst: (flow.dst, flow.dport),
        }
    }
}

/// The event of a connection attempt of `machine_id`: its flow as the box
/// saw it (`asked`), and what the layer that decided found, if known.
pub(crate) fn connection_event(
    machine_id: &str,
    verdict: &str,
    flow: &TrackedFlow,
    asked: Flow,
    deciding: Option<&Finding<'_>>,
) -> FlowEvent {
    let mut event = FlowEvent {
        direction: Some(asked.direction),
        protocol: Some(flow.protocol),
        src: Some(flow.src),
        sport: flow.sport,
        dst: Some(flow.dst),
        dport: flow.dport,
        domain: asked.domain,
        ..FlowEvent::new(
            now_ms(),
            machine_id.to_owned(),
            FlowEventKind::Connection,
            verdict,
            String::new(),
        )
    };
    if let Some(finding) = deciding {
        event.layer = Some(finding.layer);
        event.reason = finding.reason.to_string();
        if let Reason::RuleMatched {
            policy_id,
            policy_name,
            rule_index,
            ..
        } = finding.reason
        {
            event.policy_id = policy_id.map(str::to_owned);
            event.policy_name = Some(policy_name.to_owned());
            event.rule_index = Some(rule_index);
        }
    }
    event
}

/// What was recorded, for the event stream and metrics.
#[derive(Debug)]
pub struct FlowLog {
    hub: Mutex<Hub>,
    live: broadcast::Sender<FlowEvent>,
}

impl Default for FlowLog {
    fn default() -> Self {
        Self {
            hub: Mutex::default(),
            live: broadcast::channel(4096).0,
        }
    }
}

impl FlowLog {
    /// The log kept in `dir` too, with what an earlier run left there;
    /// in memory alone (said once on stderr) when `dir` cannot be used.
    pub fn persistent(dir: &Path) -> Self {
        let log = Self::default();
        {
            let mut hub = log
                .hub
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match disk::Disk::open(dir) {
                Ok((disk, found)) => {
                    hub.boxes = (found.boxes.into_iter())
                        .map(|(id, (history, segment))| (id, BoxLog::new(history, segment)))
                        .collect();
                    hub.allowed = found.allowed;
                    hub.disk = Some(disk);
                }
                Err(error) => hub.disk_error(&format!("cannot open {}", dir.display()), &error),
            }
        }
        log
    }

    /// The boxes whose allowed connections were logged when the log was
    /// opened (a restart logs them again).
    pub fn allowed_at_open(&self) -> HashSet<String> {
        let hub = self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hub.allowed.clone()
    }

    /// Keeps whether the box's allowed connections are logged.
    pub fn set_allowed(&self, machine_id: &str, on: bool) {
        let mut hub = self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(Err(error)) = hub.disk.as_ref().map(|d| d.set_allowed(machine_id, on)) {
            hub.disk_error("cannot keep logAllowed", &error);
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl FlowLog {
    /// Records `event`, unless it is another packet of an attempt already
    /// recorded (`attempt`) or the box is over its rate (then it is
    /// counted, and reported as suppressed with the box's next event).
    pub fn record(&self, event: FlowEvent, attempt: Option<AttemptKey>) {
        let mut hub = self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some(key) = attempt {
            if hub
                .recent
                .get(&key)
                .is_some_and(|seen| now.duration_since(*seen) < SAME_ATTEMPT)
            {
                return;
            }
            if hub.recent.len() >= MAX_RECENT {
                hub.recent
                    .retain(|_, seen| now.duration_since(*seen) < SAME_ATTEMPT);
                if hub.recent.len() >= MAX_RECENT {
                    hub.recent.clear();
                }
            }
            hub.recent.insert(key, now);
        }
        let hub = &mut *hub;
        let log = hub
            .boxes
            .entry(event.machine_id.clone())
            .or_insert_with(|| BoxLog::new(VecDeque::new(), disk::Segment::default()));
        match event.kind {
            FlowEventKind::Connection => log.totals.0 += 1,
            FlowEventKind::DnsQuery => log.totals.1 += 1,
            FlowEventKind::Suppressed => {}
        }
        if !log.rate.take(EVENTS_PER_SECOND_PER_BOX) {
            log.suppressed += 1;
            return;
        }
        let mut out = Vec::with_capacity(2);
        if log.suppressed > 0 {
            out.push(FlowEvent {
                suppressed: Some(std::mem::take(&mut log.suppressed)),
                ..FlowEvent::new(
                    event.time_ms,
                    event.machine_id.clone(),
                    FlowEventKind::Suppressed,
                    &event.verdict,
                    "rate limit of this box's flow log".into(),
                )
            });
        }
        out.push(event);
        let mut failed = None;
        for event in out {
            if log.history.len() == HISTORY_PER_BOX {
                log.history.pop_front();
            }
            if let Some(disk) = &hub.disk
                && let Err(error) = disk.append(&mut log.segment, &event)
            {
                failed = Some(error);
            }
            log.history.push_back(event.clone());
            // No receiver, or a lagging one, is fine: the stream never waits.
            let _ = self.live.send(event);
        }
        if let Some(error) = failed {
            hub.disk_error("cannot append", &error);
        }
    }

    /// The box's recent events, oldest first, at or after `since_ms`, of
    /// `verdict` when given, at most the last `limit`.
    pub fn history(
        &self,
        machine_id: &str,
        since_ms: Option<u64>,
        verdict: Option<&str>,
        limit: usize,
    ) -> Vec<FlowEvent> {
        let hub = self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(log) = hub.boxes.get(machine_id) else {
            return Vec::new();
        };
        let matching: Vec<&FlowEvent> = log
            .history
            .iter()
            .filter(|e| since_ms.is_none_or(|since| e.time_ms >= since))
            .filter(|e| verdict.is_none_or(|v| e.verdict == v))
            .collect();
        matching[matching.len().saturating_sub(limit)..]
            .iter()
            .map(|e| (*e).clone())
            .collect()
    }

    /// Every event from now on, of every box.
    pub fn subscribe(&self) -> broadcast::Receiver<FlowEvent> {
        self.live.subscribe()
    }

    /// Denied connection attempts and refused queries of a box, ever
    /// (counted before the rate limit).
    pub fn totals(&self, machine_id: &str) -> (u64, u64) {
        let hub = self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hub.boxes.get(machine_id).map_or((0, 0), |log| log.totals)
    }

    /// Drops a deleted box's history.
    pub fn forget(&self, machine_id: &str) {
        let mut hub = self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hub.boxes.remove(machine_id);
        hub.allowed.remove(machine_id);
        if let Some(Err(error)) = hub.disk.as_ref().map(|d| d.forget(machine_id)) {
            hub.disk_error("cannot remove a deleted box's log", &error);
        }
    }

    /// Events kept in memory, over all boxes (for the memory bound).
    pub fn len(&self) -> usize {
        let hub = self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hub.boxes.values().map(|log| log.history.len()).sum()
    }

    /// True when no event is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(machine: &str, dport: u16) -> (FlowEvent, AttemptKey) {
        let dst: IpAddr = "198.51.100.10".parse().expect("ip");
        let src: IpAddr = "10.200.0.2".parse().expect("ip");
        let event = FlowEvent {
            time_ms: now_ms(),
            app: None,
            machine_id: machine.into(),
            kind: FlowEventKind::Connection,
            verdict: "deny".into(),
            direction: Some(boxfence_policy::Direction::Egress),
            protocol: Some(Protocol::Tcp),
            src: Some(src),
            sport: Some(40000),
            dst: Some(dst),
            dport: Some(dport),
            domain: None,
            claimed: None,
            layer: None,
            reason: "test".into(),
            policy_id: None,
            policy_name: None,
            rule_index: None,
            suppressed: None,
        };
        let key = AttemptKey {
            protocol: Protocol::Tcp,
            src: (src, Some(40000)),
            dst: (dst, Some(dport)),
        };
        (event, key)
    }

    #[test]
    fn retransmissions_are_one_attempt() {
        let log = FlowLog::default();
        for _ in 0..3 {
            let (e, k) = event("m1", 80);
            log.record(e, Some(k));
        }
        assert_eq!(log.history("m1", None, Some("deny"), 100).len(), 1);
    }

    #[test]
    fn a_flood_is_bounded_and_says_how_much_it_suppressed() {
        let log = FlowLog::default();
        let mut live = log.subscribe();
        let started = Instant::now();
        for port in 0..5000u16 {
            let (e, k) = event("m1", port);
            log.record(e, Some(k));
        }
        // What the flow log holds: events admitted, and how many were
        // suppressed between them.
        let count = || {
            let history = log.history("m1", None, None, usize::MAX);
            let suppressed: u64 = history.iter().filter_map(|e| e.suppressed).sum();
            let admitted = history
                .iter()
                .filter(|e| e.kind != FlowEventKind::Suppressed)
                .count();
            (u64::try_from(admitted).expect("small"), suppressed)
        };
        // The burst, plus what the rate refilled while the loop ran (on a
        // loaded machine the loop takes long enough to earn some).
        let refilled = started.elapsed().as_secs_f64() * f64::from(EVENTS_PER_SECOND_PER_BOX);
        let burst = u64::from(EVENTS_PER_SECOND_PER_BOX * 2);
        let (admitted, _) = count();
        assert!(
            (burst..=burst + refilled.ceil() as u64).contains(&admitted),
            "the burst: {admitted} admitted, {refilled:.1} refilled"
        );
        std::thread::sleep(Duration::from_millis(100));
        let (e, k) = event("m1", 6000);
        log.record(e, Some(k));
        let (admitted, suppressed) = count();
        assert!(suppressed > 0, "the suppressed are reported");
        assert_eq!(admitted + suppressed, 5001, "every event is told of");
        assert!(live.try_recv().is_ok(), "the live stream got events");
        let (e, k) = event("m2", 1);
        log.record(e, Some(k));
        assert!(log.len() <= 2 * HISTORY_PER_BOX);
    }
}
