//! A token bucket: a steady rate with bursts of twice that.

use std::time::Instant;

/// Admits `rate` events per second on average, bursts of `2 * rate`.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// A full bucket for `rate` events per second.
    pub fn new(rate: u32) -> Self {
        let per_second = f64::from(rate);
        Self {
            per_second,
            tokens: per_second * 2.0,
            at: Instant::now(),
        }
    }

    /// Takes one token; false when none is left.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.per_second * 2.0);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
