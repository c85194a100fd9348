//! The watchdog: a cheap check every few seconds that restores a flushed
//! ruleset at once and an altered one after a listing, without holding
//! the engine's lock while it lists.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use boxfence_dataplane::HostNetns;
use boxfence_dataplane::features::BoxLinkPath;
use boxfence_dataplane::nft_watch::NftWatch;
use boxfence_dataplane::ruleset::Ruleset;

use super::{LinuxEngine, State, kernel};
use crate::EngineError;

/// The watchdog's memory.
#[derive(Debug)]
pub(super) struct Watch {
    nft: NftWatch,
    /// The nf_tables generation at which the table was last found as the
    /// engine left it: while the kernel reports it, nothing was committed.
    verified: Option<u32>,
    /// When the last listing of the table started and how long it took.
    last_listing: Option<(Instant, Duration)>,
}

impl Watch {
    pub(super) fn new(nft: NftWatch) -> Self {
        Self {
            nft,
            verified: None,
            last_listing: None,
        }
    }
}

impl LinuxEngine {
    /// The watchdog's periodic check; true when it repaired something.
    ///
    /// Every call asks the kernel for its nf_tables generation, which
    /// does not grow with the table: unchanged since the table was last
    /// verified means nothing was committed by anyone, and nothing is
    /// listed. A missing table is restored at once. Otherwise (the
    /// engine, the resolver's learned addresses or someone else committed)
    /// the table is listed and compared, but no more often than keeps the
    /// comparison under a twentieth of the time, since the resolver commits
    /// all the time (at 1,000 boxes a listing takes 1.3 s; after the
    /// engine's own changes, with the model built apart, about 6 s).
    pub fn check(&self) -> Result<bool, EngineError> {
        let mut watch = self
            .watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = watch.nft.generation().map_err(kernel)?;
        if watch.verified == Some(generation) {
            return Ok(false);
        }
        if !watch.nft.table_exists(&self.config.table).map_err(kernel)? {
            watch.verified = None;
            return self.restore(&mut self.lock()).map(|()| true);
        }
        if let Some((at, took)) = watch.last_listing
            && at.elapsed() < (took * LISTING_SHARE).max(WATCHDOG_PERIOD)
        {
            return Ok(false);
        }
        let started = Instant::now();
        let outcome = self.compare();
        watch.last_listing = Some((started, started.elapsed()));
        match outcome? {
            Comparison::Intact => {
                watch.verified = Some(generation);
                Ok(false)
            }
            Comparison::Repaired => Ok(true),
            Comparison::Busy => Ok(false),
        }
    }

    /// Lists the table and re-applies the whole ruleset if it is gone or
    /// someone else altered it (a rule, chain, set or element other than
    /// the resolver's learned addresses). Returns true when it repaired
    /// something.
    pub fn repair(&self) -> Result<bool, EngineError> {
        Ok(self.compare()? == Comparison::Repaired)
    }

    fn compare(&self) -> Result<Comparison, EngineError> {
        let table = &self.config.table;
        let (generation, expected) = {
            let state = self.lock();
            let expected = match state.seen {
                Some((seen, digest)) if seen == state.generation => Expected::Digest(digest),
                // The engine changed the table since it last looked: what
                // it should hold now is its model.
                _ => Expected::Model(Box::new(state.ruleset.clone())),
            };
            (state.generation, expected)
        };
        // Listed and built without the lock, so API changes never wait.
        let live = digest(&self.config.host, table);
        let expected = match expected {
            Expected::Digest(digest) => Some(digest),
            Expected::Model(model) => model_digest(&model.whole().to_text(), table),
        };
        let mut state = self.lock();
        if state.generation != generation {
            // The engine changed the table meanwhile: next time.
            return Ok(Comparison::Busy);
        }
        match (live, expected) {
            (Some(live), Some(expected)) if live == expected => {
                state.seen = Some((generation, live));
                Ok(Comparison::Intact)
            }
            // The model could not be built apart (no namespace could be
            // made): nothing to compare with, so nothing is concluded.
            (Some(_), None) => Ok(Comparison::Busy),
            _ => {
                self.restore(&mut state)?;
                Ok(Comparison::Repaired)
            }
        }
    }

    /// Re-applies the whole ruleset; the next listing is compared with the
    /// model.
    pub(super) fn restore(&self, state: &mut State) -> Result<(), EngineError> {
        self.metrics
            .repairs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        state.generation += 1;
        state.seen = None;
        state.flows.clear();
        if self.paths.box_link == BoxLinkPath::LinkFirst {
            // The table hooks chains only on devices that exist here: a
            // box link someone deleted is made again first.
            let errors = self.repair_links(state.links.values());
            if !errors.is_empty() {
                return Err(EngineError::Kernel(errors.join("; ")));
            }
        }
        self.config
            .host
            .nft(&state.ruleset.full().to_text())
            .map_err(kernel)?;
        // The learned elements went with the old table.
        self.directory.forget_written();
        Ok(())
    }
}

/// A digest of the table without counter values, handles and the
/// elements of timeout sets (the resolver adds those all the time).
/// Elements are sorted, and objects sorted by kind and name (rules
/// keep their order within a chain), so equal tables hash alike
/// whatever order the kernel lists them in.
fn digest(host: &HostNetns, table: &str) -> Option<u64> {
    let json = host
        .run("nft", &["-j", "-s", "list", "table", "inet", table], None)
        .ok()?;
    let mut listing: serde_json::Value = serde_json::from_str(&json).ok()?;
    let objects = listing.get_mut("nftables")?.as_array_mut()?;
    objects.retain(|object| object.get("metainfo").is_none());
    for object in objects.iter_mut() {
        canonical(object);
    }
    objects.sort_by_cached_key(|object| {
        let (kind, body) = object
            .as_object()
            .and_then(|o| o.iter().next())
            .map_or((String::new(), &serde_json::Value::Null), |(k, v)| {
                (k.clone(), v)
            });
        let name = |key: &str| body.get(key).map(ToString::to_string).unwrap_or_default();
        let chain = if kind == "rule" {
            name("chain")
        } else {
            name("name")
        };
        (kind, chain)
    });
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&listing.to_string(), &mut hasher);
    Some(std::hash::Hasher::finish(&hasher))
}

/// The digest of the table the batch `text` makes, built in a throwaway
/// namespace (the host's table is not touched); `None` if that failed.
fn model_digest(text: &str, table: &str) -> Option<u64> {
    HostNetns::throwaway(|here| {
        here.nft(text).ok()?;
        digest(here, table)
    })
    .ok()
    .flatten()
}

/// What the listed table should match.
enum Expected {
    /// The digest of the table the last time it matched.
    Digest(u64),
    /// The model (a copy, rendered after the lock is released).
    Model(Box<Ruleset>),
}

/// What one listing of the table found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// As the engine left it (or as the engine takes it after its changes).
    Intact,
    /// Gone or altered: the whole ruleset was re-applied.
    Repaired,
    /// The engine changed the table during the listing: no verdict.
    Busy,
}

/// How often the watchdog checks.
const WATCHDOG_PERIOD: Duration = Duration::from_secs(2);
/// Listings are at least this many times their own duration apart.
const LISTING_SHARE: u32 = 20;

/// Drops what changes without anyone altering the table (counter values,
/// handles, learned elements) and sorts set and map elements.
fn canonical(object: &mut serde_json::Value) {
    let Some((kind, body)) = object.as_object_mut().and_then(|o| o.iter_mut().next()) else {
        return;
    };
    let Some(body) = body.as_object_mut() else {
        return;
    };
    body.remove("handle");
    match kind.as_str() {
        "counter" => {
            body.remove("packets");
            body.remove("bytes");
        }
        "set" | "map" => {
            let learned = body
                .get("flags")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|flags| flags.iter().any(|f| f == "timeout"));
            if learned {
                body.remove("elem");
            } else if let Some(elements) = body
                .get_mut("elem")
                .and_then(serde_json::Value::as_array_mut)
            {
                elements.sort_by_cached_key(ToString::to_string);
            }
        }
        _ => {}
    }
}

/// Checks the ruleset every few seconds and restores it if someone flushed
/// or altered it, for as long as the engine lives.
pub(super) async fn watchdog(engine: Weak<LinuxEngine>) {
    loop {
        tokio::time::sleep(WATCHDOG_PERIOD).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let checked = Arc::clone(&engine);
        let _ = engine.checks.run(move || checked.check()).await;
    }
}
