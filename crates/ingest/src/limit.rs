//! Appends per principal: a token bucket each, so that no caller can take
//! the whole log's throughput from the others.
//!
//! A unary caller over its rate is told when to come back
//! (`RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`); a stream is held
//! back instead: its next request is read only once the bucket has a token,
//! and HTTP/2 flow control slows the client. Off unless configured.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tonic::Status;

/// Buckets kept before idle, full ones are forgotten: a full bucket is the
/// same as no bucket, so forgetting it changes no answer.
const TRACKED: usize = 10_000;

/// A rate of appends for each principal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Appends per second, sustained.
    pub per_second: f64,
    /// Appends a principal may make at once after being idle.
    pub burst: u32,
}

impl RateLimit {
    /// A limit of `per_second` appends, with bursts of `burst` (at least 1).
    pub fn new(per_second: f64, burst: u32) -> Result<Self, String> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "the rate per principal must be a positive number of appends per second, not {per_second}"
            ));
        }
        Ok(RateLimit {
            per_second,
            burst: burst.max(1),
        })
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every principal seen recently.
pub struct PrincipalLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl PrincipalLimiter {
    /// Buckets for `limit`, every principal starting with a full burst.
    pub fn new(limit: RateLimit) -> Self {
        PrincipalLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for one append by `principal`, or says how long until
    /// one is there.
    pub fn take(&self, principal: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(self.limit.burst);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= TRACKED && !buckets.contains_key(principal) {
            let rate = self.limit.per_second;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(principal.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refilled = now.duration_since(bucket.at).as_secs_f64() * self.limit.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.limit.per_second;
            Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
        }
    }

    /// A unary append: a token now, or `RESOURCE_EXHAUSTED` saying when to
    /// retry.
    pub fn admit(&self, principal: &str) -> Result<(), Status> {
        self.take(principal)
            .map_err(|wait| over_rate(principal, wait))
    }

    /// A streamed append: waits for a token.
    pub async fn wait(&self, principal: &str) {
        while let Err(wait) = self.take(principal) {
            tokio::time::sleep(wait).await;
        }
    }
}

fn over_rate(principal: &str, wait: Duration) -> Status {
    let ms = wait.as_millis().max(1);
    let mut status = Status::resource_exhausted(format!(
        "{principal} is over its append rate; retry in {ms} ms"
    ));
    if let Ok(value) = ms.to_string().parse() {
        status
            .metadata_mut()
            .insert("grpc-retry-pushback-ms", value);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_needs_a_positive_rate() {
        assert!(RateLimit::new(0.0, 5).is_err());
        assert!(RateLimit::new(-1.0, 5).is_err());
        assert!(RateLimit::new(f64::NAN, 5).is_err());
        assert_eq!(RateLimit::new(2.0, 0).expect("limit").burst, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate_and_each_principal_apart() {
        let limiter = PrincipalLimiter::new(RateLimit::new(10.0, 3).expect("limit"));
        for _ in 0..3 {
            limiter.admit("alice").expect("within the burst");
        }
        let refused = limiter.admit("alice").expect_err("over the burst");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let pushback = refused
            .metadata()
            .get("grpc-retry-pushback-ms")
            .expect("pushback")
            .to_str()
            .expect("text")
            .parse::<u64>()
            .expect("ms");
        assert_eq!(pushback, 100);
        // Another principal is not held back by alice.
        limiter.admit("bob").expect("bob has his own bucket");
        tokio::time::advance(Duration::from_millis(100)).await;
        limiter.admit("alice").expect("one token back after 100 ms");
        assert!(limiter.admit("alice").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_waits_for_its_token() {
        let limiter = PrincipalLimiter::new(RateLimit::new(4.0, 1).expect("limit"));
        let started = Instant::now();
        for _ in 0..5 {
            limiter.wait("alice").await;
        }
        // One at once, then four more at 250 ms each.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(990) && took < Duration::from_millis(1010),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn forgetting_full_buckets_keeps_the_busy_ones() {
        let limiter = PrincipalLimiter::new(RateLimit::new(1.0, 1).expect("limit"));
        limiter.admit("busy").expect("first");
        for n in 0..TRACKED {
            let _ = limiter.take(&format!("p{n}"));
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.admit("newcomer").expect("newcomer");
        let tracked = limiter.buckets.lock().expect("lock").len();
        assert!(tracked < TRACKED, "{tracked} buckets kept");
        // busy was refilled by now too, so it is forgotten; a fresh bucket
        // is full, which is the same answer.
        limiter.admit("busy").expect("refilled");
    }
}
