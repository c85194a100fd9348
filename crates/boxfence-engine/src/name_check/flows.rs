//! The flows the checker holds packets of, their first bytes in order,
//! and the outcome of those recently judged (so a segment queued before
//! the judgement took effect gets the same verdict).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use boxfence_dataplane::nfqueue::Segment;

use super::parse::{MAX_BYTES, Parsed, parse};

/// How long a judgement is remembered for late segments of its flow.
const REMEMBER: Duration = Duration::from_secs(30);
/// How far past its first byte a late segment of a judged flow may start;
/// a new connection on the same ports starts elsewhere (a random ISN).
const LATE_WINDOW: u32 = 1 << 20;

/// A flow, as the box started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) sport: u16,
    pub(super) dport: u16,
}

impl Key {
    pub(super) fn of(segment: &Segment<'_>) -> Self {
        Self {
            src: segment.src,
            dst: segment.dst,
            sport: segment.sport,
            dport: segment.dport,
        }
    }
}

/// A packet waiting for its flow's judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Held {
    /// The queue's id of it.
    pub(super) id: u32,
    /// Its packet mark.
    pub(super) mark: u32,
}

/// A flow whose first bytes say enough, and what they say.
pub(super) type Judged = (Key, Parsed);

#[derive(Debug)]
struct Pending {
    held: Vec<Held>,
    bytes: Vec<u8>,
    first_seq: u32,
    next_seq: u32,
    since: Instant,
}

/// A judged flow: its outcome, where its bytes started, when.
#[derive(Debug, Clone, Copy)]
struct Settled {
    outcome: Outcome,
    first_seq: u32,
    at: Instant,
}

/// What became of a judged flow: the verdict bit its packets get, or
/// `None` when they are accepted as they are (not a box of this engine).
pub(super) type Outcome = Option<u32>;

/// Every flow the checker is holding or has just judged.
#[derive(Debug, Default)]
pub(super) struct Flows {
    pending: HashMap<Key, Pending>,
    judged: HashMap<Key, Settled>,
}

impl Flows {
    /// The outcome of the flow a segment of `key` at `seq` belongs to, if
    /// it was judged lately (a later connection reusing the ports is
    /// another flow).
    pub(super) fn judged(&self, key: Key, seq: u32) -> Option<Outcome> {
        self.judged
            .get(&key)
            .filter(|s| seq.wrapping_sub(s.first_seq) < LATE_WINDOW)
            .map(|s| s.outcome)
    }

    /// Holds a packet of `key` with `payload` at `seq`; returns what the
    /// flow's first bytes say once they say enough. What a segment adds
    /// past the bytes so far counts (a retransmission may carry both the
    /// held bytes and new ones: after a timeout the kernel collapses the
    /// segments it resends); one after a gap is held without its bytes.
    pub(super) fn add(&mut self, key: Key, held: Held, seq: u32, payload: &[u8]) -> Option<Judged> {
        let pending = self.pending.entry(key).or_insert_with(|| Pending {
            held: Vec::new(),
            bytes: Vec::new(),
            first_seq: seq,
            next_seq: seq,
            since: Instant::now(),
        });
        pending.held.push(held);
        // Bytes of this segment already in (sequence numbers wrap).
        let known = pending.next_seq.wrapping_sub(seq) as usize;
        if known < payload.len() && pending.bytes.len() < MAX_BYTES {
            pending.bytes.extend_from_slice(&payload[known..]);
            pending.next_seq = seq.wrapping_add(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        }
        match parse(&pending.bytes) {
            Parsed::NeedMore => None,
            parsed => Some((key, parsed)),
        }
    }

    /// Ends holding `key`'s packets, remembering `outcome` for late ones.
    pub(super) fn settle(&mut self, key: Key, outcome: Outcome) -> Vec<Held> {
        let Some(pending) = self.pending.remove(&key) else {
            return Vec::new();
        };
        let settled = Settled {
            outcome,
            first_seq: pending.first_seq,
            at: Instant::now(),
        };
        self.judged.insert(key, settled);
        pending.held
    }

    /// Flows held longer than `patience` (judged as saying nothing), and
    /// forgets old judgements.
    pub(super) fn overdue(&mut self, patience: Duration) -> Vec<Judged> {
        self.judged.retain(|_, s| s.at.elapsed() < REMEMBER);
        self.pending
            .iter()
            .filter(|(_, p)| p.since.elapsed() > patience)
            .map(|(key, _)| (*key, Parsed::Unrecognised))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name_check::parse::tests::client_hello_record;

    fn key() -> Key {
        Key {
            src: "10.200.0.2".parse().expect("ip"),
            dst: "203.0.113.10".parse().expect("ip"),
            sport: 40000,
            dport: 443,
        }
    }

    fn held(id: u32) -> Held {
        Held { id, mark: 1 }
    }

    #[test]
    fn a_hello_in_two_segments_is_judged_once_whole_and_retransmissions_are_held() {
        let hello = client_hello_record(Some("registry.npmjs.org"));
        let (first, second) = hello.split_at(30);
        let mut flows = Flows::default();
        assert_eq!(flows.add(key(), held(1), 1000, first), None);
        // The first segment again: held, its bytes not counted twice.
        assert_eq!(flows.add(key(), held(2), 1000, first), None);
        let seq = 1000 + u32::try_from(first.len()).expect("small");
        let judged = flows.add(key(), held(3), seq, second).expect("judged");
        assert_eq!(judged, (key(), Parsed::Sni("registry.npmjs.org".into())));
        let ids: Vec<u32> = flows.settle(key(), Some(8)).iter().map(|h| h.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(flows.judged(key(), 1000 + 40), Some(Some(8)));
        assert_eq!(
            flows.judged(key(), 1000u32.wrapping_sub(5)),
            None,
            "a new connection on the same ports"
        );
        assert!(flows.overdue(Duration::ZERO).is_empty());
    }

    #[test]
    fn a_collapsed_retransmission_completes_the_hello_and_a_gap_does_not() {
        let hello = client_hello_record(Some("github.com"));
        let mut flows = Flows::default();
        let start = u32::MAX - 10; // the sequence numbers wrap inside it
        assert_eq!(flows.add(key(), held(1), start, &hello[..20]), None);
        let after_gap = start.wrapping_add(40);
        assert_eq!(flows.add(key(), held(2), after_gap, &hello[40..]), None);
        let judged = flows.add(key(), held(3), start, &hello).expect("judged");
        assert_eq!(judged.1, Parsed::Sni("github.com".into()));
    }

    #[test]
    fn a_flow_that_says_too_little_is_overdue() {
        let mut flows = Flows::default();
        assert_eq!(flows.add(key(), held(1), 5, &[22, 3]), None);
        assert_eq!(
            flows.overdue(Duration::ZERO),
            [(key(), Parsed::Unrecognised)]
        );
        assert!(flows.overdue(Duration::from_secs(60)).is_empty());
    }
}
