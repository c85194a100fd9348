//! A token bucket: a steady rate with bursts of twice that.

use std::time::Instant;

/// One box's query budget. The rate is the resolver's setting, given on
/// each take, so a box needs no rate of its own.
#[derive(Debug)]
pub struct RateLimit {
    tokens: f64,
    at: Instant,
}

impl Default for RateLimit {
    /// A full bucket, whatever the rate.
    fn default() -> Self {
        Self {
            tokens: f64::INFINITY,
            at: Instant::now(),
        }
    }
}

impl RateLimit {
    /// Takes one token at `rate` events per second on average, bursts of
    /// `2 * rate`; false when none is left.
    pub fn take(&mut self, rate: u32) -> bool {
        let per_second = f64::from(rate);
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * per_second;
        self.tokens = (self.tokens + refill).min(per_second * 2.0);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_of_twice_the_rate_then_refused() {
        let mut bucket = RateLimit::default();
        let admitted = (0..100).filter(|_| bucket.take(10)).count();
        assert_eq!(admitted, 20);
    }
}
