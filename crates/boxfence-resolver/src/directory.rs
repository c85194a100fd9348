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

/// Addresses learned for a box.
#[derive(Debug, Default)]
struct Learned {
    addresses: HashMap<IpAddr, LearnedAddress>,
    /// Size after the last sweep of expired entries; the next sweep waits
    /// until the map has doubled, so answers do not pay for it each time.
    swept_at: usize,
}

#[derive(Debug)]
struct LearnedAddress {
    name: String,
    until: Instant,
    kept_for: Duration,
    generation: u64,
}

impl BoxEntry {
    /// A box allowed `rate` queries per second (bursts of twice that).
    pub fn new(id: String, ifname: String, policy: EffectivePolicy, rate: u32) -> Self {
        Self {
            id,
            ifname,
            policy,
            rate: Mutex::new(RateLimit::new(rate)),
            generation: 0,
            learned: Arc::default(),
        }
    }

    /// Takes one query from the box's budget; false when it is spent.
    pub fn admit(&self) -> bool {
        // Per-box lock: boxes never contend with each other.
        self.rate
            .lock()
            .map(|mut bucket| bucket.take())
            .unwrap_or(false)
    }

    /// Of `addresses`, those the kernel must be told again: not learned
    /// under the current policy, or with less than half their time left.
    pub fn to_write(&self, addresses: &[(IpAddr, Duration)]) -> Vec<(IpAddr, Duration)> {
        let Ok(learned) = self.learned.lock() else {
            return addresses.to_vec();
        };
        let now = Instant::now();
        addresses
            .iter()
            .filter(|(ip, _)| {
                learned.addresses.get(ip).is_none_or(|known| {
                    known.generation != self.generation
                        || known.until.saturating_duration_since(now) < known.kept_for / 2
                })
            })
            .copied()
            .collect()
    }

    /// Records that `addresses` were learned from `name` and written.
    pub fn remember(&self, name: &str, addresses: &[(IpAddr, Duration)]) {
        let Ok(mut learned) = self.learned.lock() else {
            return;
        };
        let now = Instant::now();
        if learned.addresses.len() >= (2 * learned.swept_at).max(64) {
            learned.addresses.retain(|_, known| known.until > now);
            learned.swept_at = learned.addresses.len();
        }
        for (ip, keep) in addresses {
            let address = LearnedAddress {
                name: name.to_owned(),
                until: now + *keep,
                kept_for: *keep,
                generation: self.generation,
            };
            learned.addresses.insert(*ip, address);
        }
    }

    /// The name an address was learned from, while it is authorised.
    pub fn domain_of(&self, ip: IpAddr) -> Option<String> {
        let learned = self.learned.lock().ok()?;
        let known = learned.addresses.get(&ip)?;
        (known.until > Instant::now()).then(|| known.name.clone())
    }

    /// Every address learned and still authorised, with its name.
    pub fn learned(&self) -> Vec<(IpAddr, String)> {
        let now = Instant::now();
        self.learned
            .lock()
            .map(|learned| {
                learned
                    .addresses
                    .iter()
                    .filter(|(_, known)| known.until > now)
                    .map(|(ip, known)| (*ip, known.name.clone()))
                    .collect()
            })
            .unwrap_or_default()
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

    /// Adds or replaces a box under each of its addresses; a replaced box
    /// keeps its learned names.
    pub fn insert(&self, addresses: &[IpAddr], mut entry: BoxEntry) {
        if let Some(existing) = addresses
            .iter()
            .find_map(|a| self.lookup(*a))
            .filter(|e| e.id == entry.id)
        {
            entry.learned = Arc::clone(&existing.learned);
            entry.generation = existing.generation + 1;
        }
        let entry = Arc::new(entry);
        self.boxes.rcu(|current| {
            let mut next: HashMap<IpAddr, Arc<BoxEntry>> = current.as_ref().clone();
            next.retain(|_, existing| existing.id != entry.id);
            for address in addresses {
                next.insert(*address, Arc::clone(&entry));
            }
            next
        });
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
