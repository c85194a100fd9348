//! Which box a query comes from, read without a lock: the engine swaps in
//! a new directory on every change; queries read a snapshot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use arc_swap::ArcSwap;
use boxfence_policy::EffectivePolicy;

use crate::rate::RateLimit;

/// A box as the resolver knows it.
#[derive(Debug)]
pub struct BoxEntry {
    /// The machine id.
    pub id: String,
    /// Its host-side interface (keys the app rules' learned sets).
    pub ifname: String,
    /// Its effective policy.
    pub policy: EffectivePolicy,
    rate: Mutex<RateLimit>,
    /// Bumped each time the box's policy is replaced: what was learned
    /// under an older one must be written to the kernel again.
    generation: u64,
    /// Names the box's learned addresses came from (kept across policy
    /// updates of the same box).
    learned: Arc<Mutex<Learned>>,
}

/// Records of a learned address are kept after it expires, so a flow
/// opened while it was authorised is still judged by the name that
/// authorised it (DESIGN.md 1.6: open connections outlive the expiry),
/// until the map holds this many; then expired records go. A flow whose
/// record went is judged without a name (cut if its policy needs one).
const KEEP_EXPIRED_UP_TO: usize = 4096;

/// Addresses learned for a box.
#[derive(Debug, Default)]
struct Learned {
    /// The generation of the box's current policy: an answer decided under
    /// an older one may no longer write.
    generation: u64,
    addresses: HashMap<IpAddr, LearnedAddress>,
    /// Size after the last sweep of expired entries; the next sweep waits
    /// until the map has doubled, so answers do not pay for it each time.
    swept_at: usize,
    /// Addresses written before this may be gone from the kernel (the
    /// table was restored): they count as never written.
    lost_before: Option<Instant>,
}

#[derive(Debug)]
struct LearnedAddress {
    name: String,
    written: Instant,
    until: Instant,
    generation: u64,
}

impl BoxEntry {
    /// A box with a full query budget and nothing learned.
    pub fn new(id: String, ifname: String, policy: EffectivePolicy) -> Self {
        Self {
            id,
            ifname,
            policy,
            rate: Mutex::default(),
            generation: 0,
            learned: Arc::default(),
        }
    }

    /// Takes one query from the box's budget of `rate` queries per second
    /// (bursts of twice that); false when it is spent.
    pub fn admit(&self, rate: u32) -> bool {
        // Per-box lock: boxes never contend with each other.
        self.rate
            .lock()
            .map(|mut bucket| bucket.take(rate))
            .unwrap_or(false)
    }

    /// Of `addresses` from an answer for `name` (each with how long the
    /// kernel is to keep it), those the kernel must be told. Skipped: an
    /// address written for the same name under the current policy (so for
    /// the same sets) whose element outlives the new one less `slack`.
    /// With `slack` under the grace, the box's cached answer still expires
    /// before the element does.
    pub fn to_write(
        &self,
        name: &str,
        addresses: &[(IpAddr, Duration)],
        slack: Duration,
    ) -> Vec<(IpAddr, Duration)> {
        let Ok(learned) = self.learned.lock() else {
            return addresses.to_vec();
        };
        let now = Instant::now();
        addresses
            .iter()
            .filter(|(ip, keep)| {
                learned.addresses.get(ip).is_none_or(|known| {
                    known.generation != self.generation
                        || learned.lost_before.is_some_and(|lost| known.written < lost)
                        || known.name != name
                        || known.until + slack < now + *keep
                })
            })
            .copied()
            .collect()
    }

    /// Records that `addresses` were learned from `name` and written.
    pub fn remember(&self, name: &str, addresses: &[(IpAddr, Duration)]) {
        if let Ok(mut learned) = self.learned.lock() {
            self.record(&mut learned, name, addresses);
        }
    }

    fn record(&self, learned: &mut Learned, name: &str, addresses: &[(IpAddr, Duration)]) {
        let now = Instant::now();
        if learned.addresses.len() >= (2 * learned.swept_at).max(KEEP_EXPIRED_UP_TO) {
            learned.addresses.retain(|_, known| known.until > now);
            learned.swept_at = learned.addresses.len();
        }
        for (ip, keep) in addresses {
            let address = LearnedAddress {
                name: name.to_owned(),
                written: now,
                until: now + *keep,
                generation: self.generation,
            };
            learned.addresses.insert(*ip, address);
        }
    }

    /// Has `write` authorise `addresses` learned from `name` and records
    /// them, both under the box's lock, but only while this entry's policy
    /// is still the box's: `None` when a newer policy replaced it (decide
    /// again under that one). Because [`Directory::insert`] switches
    /// policies under the same lock, a write started here is either seen
    /// by the switch (which then retracts what the new policy refuses) or
    /// never started, so no answer decided under an old policy can add an
    /// address after the new one is enforced. `write` must only start the
    /// write (queue it), not wait for it.
    pub fn learn<W>(
        &self,
        name: &str,
        addresses: &[(IpAddr, Duration)],
        write: impl FnOnce() -> W,
    ) -> Option<W> {
        let mut learned = self.learned.lock().ok()?;
        if learned.generation != self.generation {
            return None;
        }
        let started = write();
        self.record(&mut learned, name, addresses);
        Some(started)
    }

    /// Forgets `addresses` learned from `name` whose write failed, so the
    /// next answer writes them again.
    pub fn unlearn(&self, name: &str, addresses: &[(IpAddr, Duration)]) {
        if let Ok(mut learned) = self.learned.lock() {
            for (ip, _) in addresses {
                if learned
                    .addresses
                    .get(ip)
                    .is_some_and(|known| known.name == name)
                {
                    learned.addresses.remove(ip);
                }
            }
        }
    }

    /// Whether this entry still holds the box's current policy.
    pub fn is_current(&self) -> bool {
        self.learned
            .lock()
            .is_ok_and(|learned| learned.generation == self.generation)
    }

    /// The kernel lost what was written so far (its table was restored):
    /// the next answers write their addresses again.
    pub fn forget_written(&self) {
        if let Ok(mut learned) = self.learned.lock() {
            learned.lost_before = Some(Instant::now());
        }
    }

    /// The name an address was learned from, while it is authorised.
    pub fn domain_of(&self, ip: IpAddr) -> Option<String> {
        let learned = self.learned.lock().ok()?;
        let known = learned.addresses.get(&ip)?;
        (known.until > Instant::now()).then(|| known.name.clone())
    }

    /// The name an address was learned from, also after its expiry (while
    /// its record is kept): what authorised a flow opened to it.
    pub fn authorised_by(&self, ip: IpAddr) -> Option<String> {
        let learned = self.learned.lock().ok()?;
        learned.addresses.get(&ip).map(|known| known.name.clone())
    }
}

/// Boxes by their addresses.
#[derive(Debug, Default)]
pub struct Directory {
    boxes: ArcSwap<HashMap<IpAddr, Arc<BoxEntry>>>,
}

impl Directory {
    /// The box that owns `source`, if any.
    pub fn lookup(&self, source: IpAddr) -> Option<Arc<BoxEntry>> {
        self.boxes.load().get(&source).cloned()
    }

    /// Adds or replaces a box under each of its addresses. A replaced box
    /// keeps its learned names but those `still_answered` rejects; returns
    /// what was learned and not yet expired at the moment of the switch
    /// (the caller retracts from the kernel what the new policy no longer
    /// authorises). Answers decided under the old policy that had not
    /// started their write by then never will ([`BoxEntry::learn`]).
    pub fn insert(
        &self,
        addresses: &[IpAddr],
        mut entry: BoxEntry,
        still_answered: impl Fn(&str) -> bool,
    ) -> Vec<(IpAddr, String)> {
        let existing = addresses
            .iter()
            .find_map(|a| self.lookup(*a))
            .filter(|e| e.id == entry.id);
        let Some(existing) = existing else {
            self.publish(addresses, Arc::new(entry));
            return Vec::new();
        };
        entry.learned = Arc::clone(&existing.learned);
        entry.generation = existing.generation + 1;
        let entry = Arc::new(entry);
        let mut learned = entry
            .learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        learned.generation = entry.generation;
        let now = Instant::now();
        let live = learned
            .addresses
            .iter()
            .filter(|(_, known)| known.until > now)
            .map(|(ip, known)| (*ip, known.name.clone()))
            .collect();
        learned
            .addresses
            .retain(|_, known| still_answered(&known.name));
        self.publish(addresses, Arc::clone(&entry));
        live
    }

    fn publish(&self, addresses: &[IpAddr], entry: Arc<BoxEntry>) {
        self.boxes.rcu(|current| {
            let mut next: HashMap<IpAddr, Arc<BoxEntry>> = current.as_ref().clone();
            next.retain(|_, existing| existing.id != entry.id);
            for address in addresses {
                next.insert(*address, Arc::clone(&entry));
            }
            next
        });
    }

    /// After the kernel table was restored: every box writes its learned
    /// addresses again.
    pub fn forget_written(&self) {
        for entry in self.boxes.load().values() {
            entry.forget_written();
        }
    }

    /// Removes a box.
    pub fn remove(&self, id: &str) {
        self.boxes.rcu(|current| {
            let mut next: HashMap<IpAddr, Arc<BoxEntry>> = current.as_ref().clone();
            next.retain(|_, existing| existing.id != id);
            next
        });
    }
}

#[cfg(test)]
mod tests {
    use boxfence_policy::{AlwaysBlocked, BoxPolicy, Machine};
    use serde_json::json;

    use super::*;

    fn entry() -> BoxEntry {
        let machine = Machine {
            id: "m1".into(),
            network_policy: BoxPolicy::from_json(&json!({"mode": "allow-all"})).expect("policy"),
            ..Machine::default()
        };
        let policy =
            EffectivePolicy::from_policies(&machine, &[], Arc::new(AlwaysBlocked::default()));
        BoxEntry::new("m1".into(), "bf-m1".into(), policy)
    }

    #[test]
    fn an_address_is_written_again_only_when_it_could_expire_first() {
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let keep = Duration::from_secs(90);
        let slack = Duration::from_secs(15);
        let box_entry = entry();
        let answer = [(ip, keep)];
        assert_eq!(box_entry.to_write("a.example", &answer, slack), answer);
        box_entry.remember("a.example", &answer);
        assert!(box_entry.to_write("a.example", &answer, slack).is_empty());
        // Another name may map to other sets: written.
        assert_eq!(box_entry.to_write("b.example", &answer, slack), answer);
        // A longer life than the element has left, beyond the slack.
        let longer = [(ip, keep + slack + Duration::from_secs(1))];
        assert_eq!(box_entry.to_write("a.example", &longer, slack), longer);

        // A new policy for the box: everything is written again.
        let box_ip: IpAddr = "10.200.0.2".parse().expect("ip");
        let directory = Directory::default();
        directory.insert(&[box_ip], box_entry, |_| true);
        directory.insert(&[box_ip], entry(), |_| true);
        let replaced = directory.lookup(box_ip).expect("box");
        assert_eq!(replaced.domain_of(ip).as_deref(), Some("a.example"));
        assert_eq!(replaced.to_write("a.example", &answer, slack), answer);

        // The table was restored: written again, once.
        replaced.remember("a.example", &answer);
        assert!(replaced.to_write("a.example", &answer, slack).is_empty());
        directory.forget_written();
        assert_eq!(replaced.to_write("a.example", &answer, slack), answer);
        std::thread::sleep(Duration::from_millis(2));
        replaced.remember("a.example", &answer);
        assert!(replaced.to_write("a.example", &answer, slack).is_empty());
    }

    #[test]
    fn an_answer_decided_under_a_replaced_policy_writes_nothing() {
        let box_ip: IpAddr = "10.200.0.2".parse().expect("ip");
        let (kept, dropped): (IpAddr, IpAddr) = (
            "198.51.100.10".parse().expect("ip"),
            "203.0.113.10".parse().expect("ip"),
        );
        let keep = Duration::from_secs(60);
        let directory = Directory::default();
        directory.insert(&[box_ip], entry(), |_| true);
        let before = directory.lookup(box_ip).expect("box");
        assert_eq!(
            before.learn("a.example", &[(kept, keep)], || "written"),
            Some("written")
        );
        // An answer in flight for a name the next policy drops.
        let in_flight = directory.lookup(box_ip).expect("box");

        let live = directory.insert(&[box_ip], entry(), |name| name != "b.example");
        assert_eq!(
            live,
            vec![(kept, "a.example".to_owned())],
            "what the switch saw"
        );
        let mut writes = 0;
        let started = in_flight.learn("b.example", &[(dropped, keep)], || writes += 1);
        assert_eq!((started, writes), (None, 0), "no write after the switch");
        assert!(!in_flight.is_current());
        let after = directory.lookup(box_ip).expect("box");
        assert!(after.is_current());
        assert_eq!(after.authorised_by(dropped), None);

        // Learned before a switch that drops its name: returned, so the
        // caller retracts it, and forgotten.
        after
            .learn("b.example", &[(dropped, keep)], || ())
            .expect("current");
        let live = directory.insert(&[box_ip], entry(), |name| name != "b.example");
        assert!(live.contains(&(dropped, "b.example".to_owned())));
        let last = directory.lookup(box_ip).expect("box");
        assert_eq!(last.authorised_by(dropped), None);
        assert_eq!(last.authorised_by(kept).as_deref(), Some("a.example"));
    }

    #[test]
    fn the_name_of_an_expired_address_is_kept_for_its_open_flows() {
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let box_entry = entry();
        box_entry.remember("a.example", &[(ip, Duration::ZERO)]);
        assert_eq!(box_entry.domain_of(ip), None, "no longer authorised");
        assert_eq!(box_entry.authorised_by(ip).as_deref(), Some("a.example"));
        // Until the map is full of records: then expired ones go.
        for i in 0..KEEP_EXPIRED_UP_TO {
            let other = IpAddr::V6(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | i as u128));
            box_entry.remember("b.example", &[(other, Duration::ZERO)]);
        }
        box_entry.remember(
            "c.example",
            &[("203.0.113.8".parse().expect("ip"), Duration::ZERO)],
        );
        assert_eq!(box_entry.authorised_by(ip), None);
    }
}
