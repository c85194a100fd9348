//! Which box a query comes from, read without a lock: the engine swaps in
//! a new directory on every change; queries read a snapshot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

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
    /// Names the box's learned addresses came from (kept across policy
    /// updates of the same box).
    learned: Arc<Mutex<HashMap<IpAddr, (String, Instant)>>>,
}

impl BoxEntry {
    /// A box allowed `rate` queries per second (bursts of twice that).
    pub fn new(id: String, ifname: String, policy: EffectivePolicy, rate: u32) -> Self {
        Self {
            id,
            ifname,
            policy,
            rate: Mutex::new(RateLimit::new(rate)),
            learned: Arc::default(),
        }
    }

    /// Records that `addresses` were learned from `name`.
    pub fn remember(&self, name: &str, addresses: &[(IpAddr, std::time::Duration)]) {
        if let Ok(mut learned) = self.learned.lock() {
            let now = Instant::now();
            learned.retain(|_, (_, until)| *until > now);
            for (ip, keep) in addresses {
                learned.insert(*ip, (name.to_owned(), now + *keep));
            }
        }
    }

    /// The name an address was learned from, while it is authorised.
    pub fn domain_of(&self, ip: IpAddr) -> Option<String> {
        let learned = self.learned.lock().ok()?;
        learned
            .get(&ip)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(name, _)| name.clone())
    }

    /// Every address learned and still authorised, with its name.
    pub fn learned(&self) -> Vec<(IpAddr, String)> {
        let now = Instant::now();
        self.learned
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|(_, (_, until))| *until > now)
                    .map(|(ip, (name, _))| (*ip, name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes one query from the box's budget; false when it is spent.
    pub fn admit(&self) -> bool {
        // Per-box lock: boxes never contend with each other.
        self.rate
            .lock()
            .map(|mut bucket| bucket.take())
            .unwrap_or(false)
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
