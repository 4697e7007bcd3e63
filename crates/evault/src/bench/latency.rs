//! Latencies in bounded memory, whatever a run's length.
//!
//! A duration-bound run may answer millions of calls, so latencies are not
//! kept one by one: each goes into a log-linear bucket (128 buckets per
//! power of two of microseconds). A percentile is read back as its
//! bucket's upper bound, so it is never below the true value and at most
//! 1/128 (0.8 %) above it; values under 256 µs are exact. The maximum is
//! kept exactly.

use std::time::Duration;

/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any `u32` of microseconds (over an hour).
const BUCKETS: usize = (32 - SUB_BITS as usize + 1) * SUB;

/// A histogram of latencies.
#[derive(Clone, Debug)]
pub(super) struct Latencies {
    counts: Vec<u64>,
    total: u64,
    max_us: u32,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

/// The bucket of `us`: exact below `2 * SUB`, then `SUB` buckets per power
/// of two.
fn bucket(us: u32) -> usize {
    if (us as usize) < 2 * SUB {
        return us as usize;
    }
    let shift = 31 - us.leading_zeros() - SUB_BITS;
    ((shift as usize + 1) << SUB_BITS) + ((us >> shift) as usize - SUB)
}

/// The largest value that falls in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    if index < 2 * SUB {
        return index as u64;
    }
    let shift = (index >> SUB_BITS) - 1;
    let low = ((index & (SUB - 1)) + SUB) as u64;
    ((low + 1) << shift) - 1
}

/// Percentiles of a run, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Summary {
    pub(super) p50: f64,
    pub(super) p90: f64,
    pub(super) p99: f64,
    pub(super) max: f64,
}

impl Latencies {
    /// Counts one latency; anything beyond `u32::MAX` µs counts as that.
    pub(super) fn record(&mut self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    pub(super) fn merge(&mut self, other: &Latencies) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The latency at quantile `q` (nearest rank), in microseconds.
    fn quantile_us(&self, q: f64) -> u64 {
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                // The bucket's bound may exceed every value in it.
                return upper_bound(index).min(u64::from(self.max_us));
            }
        }
        u64::from(self.max_us)
    }

    /// p50, p90, p99 and max; `None` when nothing was recorded.
    pub(super) fn summary(&self) -> Option<Summary> {
        (self.total > 0).then(|| {
            let ms = |us: u64| us as f64 / 1e3;
            Summary {
                p50: ms(self.quantile_us(0.50)),
                p90: ms(self.quantile_us(0.90)),
                p99: ms(self.quantile_us(0.99)),
                max: ms(u64::from(self.max_us)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_that_bounds_it_within_one_128th() {
        let mut us = 0u32;
        loop {
            let index = bucket(us);
            assert!(index < BUCKETS, "{us}");
            let bound = upper_bound(index);
            assert!(bound >= u64::from(us), "{us}");
            assert!(bound - u64::from(us) <= u64::from(us) / 128, "{us}");
            if index > 0 {
                assert!(upper_bound(index - 1) < u64::from(us), "{us}");
            }
            if us == u32::MAX {
                break;
            }
            us = us.saturating_add(1 + us / 1000);
        }
    }

    #[test]
    fn percentiles_are_ordered_and_near_the_exact_ones() {
        let mut latencies = Latencies::default();
        for us in 1..=10_000u64 {
            latencies.record(Duration::from_micros(us * 7));
        }
        let s = latencies.summary().expect("recorded");
        let near = |got: f64, exact_us: f64| {
            assert!(got * 1e3 >= exact_us && got * 1e3 <= exact_us * (1.0 + 1.0 / 128.0));
        };
        near(s.p50, 5_000.0 * 7.0);
        near(s.p90, 9_000.0 * 7.0);
        near(s.p99, 9_900.0 * 7.0);
        assert_eq!(s.max, 70.0);
        assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max);
    }

    #[test]
    fn small_values_and_merges_are_exact() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        a.record(Duration::from_micros(3));
        b.record(Duration::from_micros(200));
        a.merge(&b);
        let s = a.summary().expect("recorded");
        assert_eq!(s.p50, 0.003);
        assert_eq!(s.p99, 0.2);
        assert_eq!(s.max, 0.2);
        assert!(Latencies::default().summary().is_none());
    }

    #[test]
    fn a_percentile_never_exceeds_the_maximum() {
        let mut latencies = Latencies::default();
        latencies.record(Duration::from_micros(100_001));
        let s = latencies.summary().expect("recorded");
        assert_eq!(s.p50, 100.001);
        assert_eq!(s.max, 100.001);
    }
}
