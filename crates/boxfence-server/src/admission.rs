//! Caps on what a tenant can hold at once: running execs (on the host,
//! per app, per box) and creates in progress (per app). Past a cap the
//! request is answered 429 at once with `Retry-After`; it never waits,
//! so one tenant's flood neither queues work nor delays anyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::ApiError;

/// Seconds a refused client is told to wait before it retries.
const RETRY_AFTER_SECONDS: u64 = 1;

/// How many execs may run at once, and for how long each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// On the whole host.
    pub max_concurrent: usize,
    /// In the boxes of one app.
    pub per_app: usize,
    /// In one box.
    pub per_box: usize,
    /// The longest `timeout` a request may ask for.
    pub max_timeout: Duration,
}

/// What one tenant may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Execs.
    pub exec: ExecLimits,
    /// Creates of one app in progress, running or waiting their turn
    /// (an app's changes run one at a time).
    pub creates_per_app: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            exec: ExecLimits {
                max_concurrent: 64,
                per_app: 16,
                per_box: 4,
                max_timeout: Duration::from_secs(600),
            },
            creates_per_app: 8,
        }
    }
}

/// What a slot is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Counter {
    Exec,
    ExecInApp(String),
    ExecInBox(String),
    CreateInApp(String),
}

/// A counter, its cap, and how to name both in a refusal.
struct Cap {
    counter: Counter,
    limit: usize,
    what: String,
}

/// Counts what is held, against [`Limits`].
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    held: Arc<Mutex<HashMap<Counter, usize>>>,
}

/// Held while the admitted work runs; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Slot {
    held: Arc<Mutex<HashMap<Counter, usize>>>,
    counters: Vec<Counter>,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            held: Arc::default(),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A place for one exec in box `id` of `app`.
    pub(crate) fn exec(&self, app: &str, id: &str) -> Result<Slot, ApiError> {
        let limits = self.limits.exec;
        self.take(vec![
            Cap {
                counter: Counter::ExecInBox(id.to_owned()),
                limit: limits.per_box,
                what: format!(
                    "box {id} runs {} execs, the most per box ([exec] per_box)",
                    limits.per_box
                ),
            },
            Cap {
                counter: Counter::ExecInApp(app.to_owned()),
                limit: limits.per_app,
                what: format!(
                    "app {app} runs {} execs, the most per app ([exec] per_app)",
                    limits.per_app
                ),
            },
            Cap {
                counter: Counter::Exec,
                limit: limits.max_concurrent,
                what: format!(
                    "this host runs {} execs, the most at once ([exec] max_concurrent)",
                    limits.max_concurrent
                ),
            },
        ])
    }

    /// A place for one create in `app`.
    pub(crate) fn create(&self, app: &str) -> Result<Slot, ApiError> {
        let limit = self.limits.creates_per_app;
        self.take(vec![Cap {
            counter: Counter::CreateInApp(app.to_owned()),
            limit,
            what: format!(
                "app {app} has {limit} creates in progress, the most per app ([create] per_app)"
            ),
        }])
    }

    /// Counts one against every cap, or against none if any is full.
    fn take(&self, caps: Vec<Cap>) -> Result<Slot, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(full) = caps
            .iter()
            .find(|cap| held.get(&cap.counter).copied().unwrap_or(0) >= cap.limit)
        {
            return Err(ApiError::TooManyRequests {
                message: format!("too many requests: {}; retry later", full.what),
                retry_after: RETRY_AFTER_SECONDS,
            });
        }
        let counters: Vec<Counter> = caps.into_iter().map(|cap| cap.counter).collect();
        for counter in &counters {
            *held.entry(counter.clone()).or_default() += 1;
        }
        Ok(Slot {
            held: Arc::clone(&self.held),
            counters,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        for counter in &self.counters {
            if let Some(count) = held.get_mut(counter) {
                *count -= 1;
                if *count == 0 {
                    // Boxes and apps come and go: keep no entry for them.
                    held.remove(counter);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_concurrent: usize, per_app: usize, per_box: usize) -> Admission {
        Admission::new(Limits {
            exec: ExecLimits {
                max_concurrent,
                per_app,
                per_box,
                max_timeout: Duration::from_secs(1),
            },
            creates_per_app: 2,
        })
    }

    fn refusal(result: Result<Slot, ApiError>) -> String {
        match result {
            Err(ApiError::TooManyRequests {
                message,
                retry_after,
            }) => {
                assert!(retry_after > 0);
                message
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn each_exec_cap_refuses_past_its_limit_and_names_itself() {
        let caps = admission(3, 2, 1);
        let _a1 = caps.exec("a", "box1").expect("first in box1");
        assert!(refusal(caps.exec("a", "box1")).contains("per_box"));
        let _a2 = caps.exec("a", "box2").expect("second in app a");
        assert!(refusal(caps.exec("a", "box3")).contains("per_app"));
        let _b1 = caps.exec("b", "box4").expect("third on the host");
        assert!(refusal(caps.exec("c", "box5")).contains("max_concurrent"));
    }

    #[test]
    fn a_refusal_takes_nothing_and_a_dropped_slot_frees_its_place() {
        let caps = admission(2, 2, 1);
        let first = caps.exec("a", "box1").expect("first");
        // Refused by the box cap: the app and host counts must not move.
        refusal(caps.exec("a", "box1"));
        let second = caps.exec("a", "box2").expect("app and host have room");
        refusal(caps.exec("b", "box3"));
        drop(first);
        let third = caps.exec("b", "box3").expect("room again");
        drop((second, third));
        assert!(
            caps.held.lock().expect("lock").is_empty(),
            "no stale entries"
        );
    }

    #[test]
    fn creates_are_capped_per_app() {
        let caps = admission(1, 1, 1);
        let _one = caps.create("a").expect("one");
        let _two = caps.create("a").expect("two");
        assert!(refusal(caps.create("a")).contains("[create] per_app"));
        let _other = caps.create("b").expect("another app has its own cap");
    }
}
