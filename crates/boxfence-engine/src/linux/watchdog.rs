//! The watchdog: a cheap check every few seconds that restores a flushed
//! ruleset at once and an altered one after reading the table back,
//! without holding the engine's lock while it reads.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use boxfence_dataplane::features::FastPath;
use boxfence_dataplane::nft::Listing;
use boxfence_dataplane::nft_watch::NftWatch;

use super::{LinuxEngine, State, kernel, present};
use crate::EngineError;

/// The watchdog's memory.
#[derive(Debug)]
pub(super) struct Watch {
    nft: NftWatch,
    /// The nf_tables generation at which the table was last found as the
    /// engine left it: while the kernel reports it, nothing was committed.
    verified: Option<u32>,
    /// When the last reading of the table started and how long it took.
    last_listing: Option<(Instant, Duration)>,
    /// What the table should hold, and the engine generation it was made
    /// at (made again only after the engine's own changes).
    expected: Option<(u64, Listing)>,
}

impl Watch {
    pub(super) fn new(nft: NftWatch) -> Self {
        Self {
            nft,
            verified: None,
            last_listing: None,
            expected: None,
        }
    }
}

impl LinuxEngine {
    /// The watchdog's periodic check; true when it repaired something.
    ///
    /// Every call asks the kernel for its nf_tables generation, which
    /// does not grow with the table: unchanged since the table was last
    /// verified means nothing was committed by anyone, and nothing is
    /// read. A missing table is restored at once. Otherwise (the engine,
    /// the resolver's learned addresses or someone else committed) the
    /// table is read back and compared, but no more often than keeps the
    /// comparison under a twentieth of the time, since the resolver
    /// commits all the time.
    pub fn check(&self) -> Result<bool, EngineError> {
        self.follow_uplinks()?;
        let mut watch = self.watch();
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
        let outcome = self.compare(&mut watch);
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

    /// Reads the table back and re-applies the whole ruleset if it is gone
    /// or differs from the model (a rule, chain, set, element other than
    /// the resolver's learned addresses, counter, hook). Returns true when
    /// it repaired something.
    pub fn repair(&self) -> Result<bool, EngineError> {
        let mut watch = self.watch();
        Ok(self.compare(&mut watch)? == Comparison::Repaired)
    }

    /// Keeps the flowtable on the uplinks there are now: one that came
    /// after the start (or came back) is added in place; one that went
    /// the kernel already dropped, and the model forgets it, or the next
    /// comparison would call its absence an alteration and a restore
    /// would name a device the kernel refuses.
    fn follow_uplinks(&self) -> Result<(), EngineError> {
        if self.paths.forwarding != FastPath::Flowtable {
            return Ok(());
        }
        let Some(present) = present(&self.config.host, &self.config.uplinks) else {
            return Ok(());
        };
        let mut state = self.lock();
        let Some(batch) = state.ruleset.follow_uplinks(present) else {
            return Ok(());
        };
        state.generation += 1;
        if batch.is_empty() {
            return Ok(());
        }
        state.commit(&batch).map_err(EngineError::Kernel)
    }

    fn watch(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn compare(&self, watch: &mut Watch) -> Result<Comparison, EngineError> {
        let (generation, model) = {
            let state = self.lock();
            let cached = matches!(&watch.expected, Some((at, _)) if *at == state.generation);
            // A copy is cheap (boxes share their compiled objects); it is
            // lowered after the lock is released.
            (state.generation, (!cached).then(|| state.ruleset.clone()))
        };
        if let Some(model) = model {
            let listing = model.listing().map_err(kernel)?;
            watch.expected = Some((generation, listing));
        }
        // Read without the lock, so API changes never wait.
        let found = watch.nft.list_table(&self.config.table);
        let mut state = self.lock();
        if state.generation != generation {
            // The engine changed the table meanwhile (a set the dump was
            // reading may be gone): next time.
            return Ok(Comparison::Busy);
        }
        let Some((_, expected)) = &watch.expected else {
            return Ok(Comparison::Busy);
        };
        let what = match found.map_err(kernel)? {
            Some(found) => {
                let differences = expected.differences(&found);
                let Some(first) = differences.first() else {
                    return Ok(Comparison::Intact);
                };
                match differences.len() - 1 {
                    0 => first.to_string(),
                    more => format!("{first} (and {more} more differences)"),
                }
            }
            None => "the table is gone".to_owned(),
        };
        eprintln!("boxfence: the nftables table is not the engine's: {what}; restoring it");
        self.restore(&mut state)?;
        Ok(Comparison::Repaired)
    }

    /// Re-applies the whole ruleset; the learned addresses go with the old
    /// table.
    pub(super) fn restore(&self, state: &mut State) -> Result<(), EngineError> {
        self.metrics
            .repairs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        state.generation += 1;
        state.flows.clear();
        if self.paths.links_before_table() {
            // The table hooks chains (or a flowtable) only on devices that
            // exist here: a box link someone deleted is made again first.
            let errors = self.repair_links(state.links.values());
            if !errors.is_empty() {
                return Err(EngineError::Kernel(errors.join("; ")));
            }
        }
        let full = state.ruleset.full();
        state.commit(&full).map_err(EngineError::Kernel)?;
        self.directory.forget_written();
        Ok(())
    }
}

/// What one reading of the table found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// As the model says.
    Intact,
    /// Gone or altered: the whole ruleset was re-applied.
    Repaired,
    /// The engine changed the table during the reading: no verdict.
    Busy,
}

/// How often the watchdog checks.
const WATCHDOG_PERIOD: Duration = Duration::from_secs(2);
/// Readings are at least this many times their own duration apart.
const LISTING_SHARE: u32 = 20;

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
