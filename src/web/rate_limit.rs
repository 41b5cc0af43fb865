//! Per-client limit on submissions (`POST /api/jobs`, `POST /analyses`): a token bucket per
//! client (GCRA), `SUBMIT_BURST` at once, refilled at `SUBMIT_RATE_PER_MINUTE`. Over the limit
//! a client gets `429` with `Retry-After` and nothing is written. Reading other things (status,
//! events, downloads) is not limited: polling is cheap.
//!
//! A request with an API key is limited per key, whatever address it comes from: at the key's
//! own `rate_per_minute` when it has one (else `SUBMIT_RATE_PER_MINUTE`; 0 is no limit), with a
//! burst of `SUBMIT_BURST` or the key's rate, whichever is smaller (a key allowed 10 a minute
//! does not get 100 at once). Its bucket is shared by every web process: in Redis when the
//! topology has Redis (one script that reads Redis's own clock, so processes on machines
//! whose clocks differ agree), in this process on the embedded default (one process serves
//! every request there). Should Redis not answer, the submission is let through and the
//! failure logged: the limit protects the service, it must not take submissions down with it.
//!
//! Any other request is limited per address, in each web process (the `governor` crate): the
//! connection's peer address, or, behind a router that appends the address it saw to
//! `X-Forwarded-For` (Heroku's does), the last address of that header when
//! `TRUST_FORWARDED_FOR` is set; earlier entries are whatever the client wrote and are ignored.
//! IPv6 clients are limited per /56, the block a customer usually gets. With N web processes an
//! anonymous client may submit up to N times the rate.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::errors::ApiError;
use crate::config::Config;
use crate::jobs::queue::RedisQueue;
use crate::keys::Authenticated;

/// How often (in checks) buckets of clients that are full again are dropped.
const FORGET_EVERY: u64 = 4096;

/// GCRA on a Redis key (`KEYS[1]`, holding the bucket's theoretical arrival time in
/// microseconds of Redis's clock): `ARGV[1]` microseconds per submission, `ARGV[2]` the burst.
/// Returns 0 when the submission is taken, else the milliseconds until one would be. The key
/// expires once its bucket is full again, so idle keys leave nothing behind.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat + interval - burst * interval - now
if wait > 0 then return math.ceil(wait / 1000) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
";

/// A rate and a burst.
type Rate = (NonZeroU32, NonZeroU32);

/// Buckets per API key.
enum KeyBuckets {
    /// In this process: one keyed limiter per distinct (rate, burst), keyed by key id.
    Local(Mutex<HashMap<Rate, Arc<DefaultKeyedRateLimiter<String>>>>),
    /// In Redis, under `{namespace}:rate:{key id}`, shared by every web process.
    Shared {
        redis: Box<RedisQueue>,
        script: redis::Script,
    },
}

impl std::fmt::Debug for KeyBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyBuckets::Local(_) => "KeyBuckets::Local",
            KeyBuckets::Shared { .. } => "KeyBuckets::Shared",
        })
    }
}

#[derive(Debug)]
pub struct SubmitLimit {
    /// Per address; None: no limit (`SUBMIT_RATE_PER_MINUTE=0`).
    buckets: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Per API key.
    keys: KeyBuckets,
    /// `SUBMIT_RATE_PER_MINUTE` and `SUBMIT_BURST`.
    default_rate: u32,
    burst: u32,
    trust_forwarded_for: bool,
    checks: AtomicU64,
}

impl SubmitLimit {
    /// The limits of `config`; keys' buckets in `shared` Redis when given, else in this process.
    pub fn new(config: &Config, shared: Option<RedisQueue>) -> SubmitLimit {
        let buckets = NonZeroU32::new(config.limits.submit_rate_per_minute).map(|rate| {
            let burst = NonZeroU32::new(config.limits.submit_burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        let keys = match shared {
            Some(redis) => KeyBuckets::Shared {
                redis: Box::new(redis),
                script: redis::Script::new(GCRA_SCRIPT),
            },
            None => KeyBuckets::Local(Mutex::default()),
        };
        SubmitLimit {
            buckets,
            keys,
            default_rate: config.limits.submit_rate_per_minute,
            burst: config.limits.submit_burst,
            trust_forwarded_for: config.http.trust_forwarded_for,
            checks: AtomicU64::new(0),
        }
    }

    /// Take one submission from the client's bucket (the key's, else the address's), or say
    /// how long to wait.
    pub async fn check(
        &self,
        req: &HttpRequest,
        key: Option<&Authenticated>,
    ) -> Result<(), ApiError> {
        let forget = self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1;
        match key {
            Some(key) => self.check_key(key, forget).await,
            None => self.check_address(req, forget),
        }
    }

    /// The address's bucket in this process.
    fn check_address(&self, req: &HttpRequest, forget: bool) -> Result<(), ApiError> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        let client = self.client(req);
        take(buckets, &client, forget).map_err(|retry_after_secs| {
            tracing::info!(client = %client, retry_after_secs, "submission refused: rate limit");
            ApiError::RateLimited { retry_after_secs }
        })
    }

    /// The rate and burst of `key`; None: no limit.
    fn rate_of(&self, key: &Authenticated) -> Option<Rate> {
        let rate = NonZeroU32::new(key.limits.rate_per_minute.unwrap_or(self.default_rate))?;
        let burst = NonZeroU32::new(self.burst.min(rate.get())).unwrap_or(NonZeroU32::MIN);
        Some((rate, burst))
    }

    /// The key's bucket, shared by every web process.
    async fn check_key(&self, key: &Authenticated, forget: bool) -> Result<(), ApiError> {
        let Some(rate) = self.rate_of(key) else {
            return Ok(());
        };
        let refused = match &self.keys {
            KeyBuckets::Local(limiters) => {
                let limiter = limiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(rate)
                    .or_insert_with(|| {
                        let (per_minute, burst) = rate;
                        Arc::new(RateLimiter::keyed(
                            Quota::per_minute(per_minute).allow_burst(burst),
                        ))
                    })
                    .clone();
                take(&limiter, &key.id, forget).err()
            }
            KeyBuckets::Shared { redis, script } => shared_take(redis, script, &key.id, rate).await,
        };
        match refused {
            None => Ok(()),
            Some(retry_after_secs) => {
                tracing::info!(key_id = %key.id, retry_after_secs, "submission refused: the API key's rate limit");
                Err(ApiError::KeyRateLimited { retry_after_secs })
            }
        }
    }

    /// The address a request comes from, as this limit tells clients apart.
    fn client(&self, req: &HttpRequest) -> IpAddr {
        let forwarded = self
            .trust_forwarded_for
            .then(|| {
                req.headers()
                    .get_all("x-forwarded-for")
                    .last()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit(',').next())
                    .and_then(|v| v.trim().parse::<IpAddr>().ok())
            })
            .flatten();
        let ip = forwarded
            .or_else(|| req.peer_addr().map(|a| a.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut octets = v6.octets();
                    octets[7..].fill(0);
                    IpAddr::from(octets)
                }
            },
            v4 => v4,
        }
    }
}

/// Take one from `key`'s bucket of a limiter in this process; Err: whole seconds to wait (at
/// least 1). Every [`FORGET_EVERY`] checks, buckets that are full again are dropped.
fn take<K: Clone + Hash + Eq>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    forget: bool,
) -> Result<(), u64> {
    if forget {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        whole_seconds(wait)
    })
}

/// `wait` rounded up to whole seconds, at least 1 (`Retry-After`).
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Take one from key `key_id`'s bucket in Redis; Some: whole seconds to wait. A Redis failure
/// lets the submission through (logged).
async fn shared_take(
    redis: &RedisQueue,
    script: &redis::Script,
    key_id: &str,
    (rate, burst): Rate,
) -> Option<u64> {
    let interval_us = 60_000_000u64 / u64::from(rate.get());
    let mut conn = redis.connection();
    let answer: Result<u64, redis::RedisError> = script
        .key(format!("{}:rate:{key_id}", redis.namespace()))
        .arg(interval_us.max(1))
        .arg(burst.get())
        .invoke_async(&mut conn)
        .await;
    match answer {
        Ok(0) => None,
        Ok(wait_ms) => Some(whole_seconds(Duration::from_millis(wait_ms))),
        Err(e) => {
            tracing::warn!(key_id, error = %e, "rate limit not checked (Redis): submission let through");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limit(rate: u32, burst: u32, trust: bool) -> SubmitLimit {
        let mut config = Config::default();
        config.limits.submit_rate_per_minute = rate;
        config.limits.submit_burst = burst;
        config.http.trust_forwarded_for = trust;
        SubmitLimit::new(&config, None)
    }

    fn from(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(f) = forwarded {
            r = r.insert_header(("X-Forwarded-For", f));
        }
        r.to_http_request()
    }

    #[test]
    fn a_client_gets_its_burst_then_a_retry_after_while_others_still_pass() {
        let l = limit(60, 3, false);
        for _ in 0..3 {
            assert!(l.check_address(&from("10.0.0.1:1000", None), false).is_ok());
        }
        match l.check_address(&from("10.0.0.1:2000", None), false) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(l.check_address(&from("10.0.0.2:1000", None), false).is_ok());
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted_and_only_its_last_address() {
        let trusted = limit(60, 1, true);
        assert!(
            trusted
                .check_address(&from("10.9.9.9:1", Some("1.1.1.1, 2.2.2.2")), false)
                .is_ok()
        );
        // The client may write anything before the router's entry: it does not matter.
        assert!(
            trusted
                .check_address(&from("10.9.9.9:1", Some("3.3.3.3, 2.2.2.2")), false)
                .is_err()
        );
        assert!(
            trusted
                .check_address(&from("10.9.9.9:1", Some("4.4.4.4")), false)
                .is_ok()
        );
        let untrusted = limit(60, 1, false);
        assert!(
            untrusted
                .check_address(&from("10.9.9.9:1", Some("1.1.1.1")), false)
                .is_ok()
        );
        assert!(
            untrusted
                .check_address(&from("10.9.9.9:1", Some("5.5.5.5")), false)
                .is_err()
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_56_block() {
        let l = limit(60, 1, false);
        assert!(
            l.check_address(&from("[2001:db8:1:2ff::1]:1", None), false)
                .is_ok()
        );
        assert!(
            l.check_address(&from("[2001:db8:1:2aa::9]:1", None), false)
                .is_err()
        );
        assert!(
            l.check_address(&from("[2001:db8:1:300::1]:1", None), false)
                .is_ok()
        );
    }

    #[test]
    fn a_rate_of_zero_means_no_limit() {
        let l = limit(0, 1, false);
        for _ in 0..1000 {
            assert!(l.check_address(&from("10.0.0.1:1", None), false).is_ok());
        }
    }

    fn key(id: &str, rate_per_minute: Option<u32>) -> Authenticated {
        Authenticated {
            id: id.into(),
            name: id.into(),
            limits: crate::keys::Limits {
                rate_per_minute,
                max_running: None,
            },
        }
    }

    #[tokio::test]
    async fn a_key_has_its_own_bucket_whatever_the_address_and_its_burst_is_at_most_its_rate() {
        let l = limit(60, 100, false);
        let slow = key("slow", Some(2));
        for peer in ["10.0.0.1:1", "10.0.0.2:1"] {
            assert!(l.check(&from(peer, None), Some(&slow)).await.is_ok());
        }
        match l.check(&from("10.0.0.3:1", None), Some(&slow)).await {
            Err(ApiError::KeyRateLimited { retry_after_secs }) => {
                assert!((29..=30).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected the key's refusal, got {other:?}"),
        }
        // Another key, and the same address without a key, have buckets of their own.
        assert!(
            l.check(&from("10.0.0.1:1", None), Some(&key("other", None)))
                .await
                .is_ok()
        );
        assert!(l.check(&from("10.0.0.1:1", None), None).await.is_ok());
        // A key's rate of 0 is no limit, even where the server has one.
        let free = key("free", Some(0));
        for _ in 0..500 {
            assert!(
                l.check(&from("10.0.0.1:1", None), Some(&free))
                    .await
                    .is_ok()
            );
        }
        // A key without a rate of its own gets the server's, with the server's burst.
        let plain = key("plain", None);
        for _ in 0..60 {
            assert!(
                l.check(&from("10.0.0.4:1", None), Some(&plain))
                    .await
                    .is_ok()
            );
        }
        assert!(
            l.check(&from("10.0.0.4:1", None), Some(&plain))
                .await
                .is_err()
        );
    }
}
