//! Per-client limit on submissions (`POST /api/jobs`, `POST /analyses`): a token bucket per
//! client address (the `governor` crate's GCRA), `SUBMIT_BURST` at once, refilled at
//! `SUBMIT_RATE_PER_MINUTE`. Over the limit a client gets `429` with `Retry-After` and nothing is
//! written. Reading other things (status, events, downloads) is not limited: polling is cheap.
//!
//! The client is the connection's peer address, or, behind a router that appends the address it
//! saw to `X-Forwarded-For` (Heroku's does), the last address of that header when
//! `TRUST_FORWARDED_FOR` is set; earlier entries are whatever the client wrote and are ignored.
//! IPv6 clients are limited per /56, the block a customer usually gets. Buckets live in each
//! web process: with N web processes a client may submit up to N times the rate.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::errors::ApiError;
use crate::config::Config;

/// How often (in checks) buckets of clients that are full again are dropped.
const FORGET_EVERY: u64 = 4096;

#[derive(Debug)]
pub struct SubmitLimit {
    /// None: no limit (`SUBMIT_RATE_PER_MINUTE=0`).
    buckets: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded_for: bool,
    checks: AtomicU64,
}

impl SubmitLimit {
    pub fn new(config: &Config) -> SubmitLimit {
        let buckets = NonZeroU32::new(config.limits.submit_rate_per_minute).map(|rate| {
            let burst = NonZeroU32::new(config.limits.submit_burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        SubmitLimit {
            buckets,
            trust_forwarded_for: config.http.trust_forwarded_for,
            checks: AtomicU64::new(0),
        }
    }

    /// Take one submission from the client's bucket, or say how long to wait.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        }
        let client = self.client(req);
        buckets.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::info!(client = %client, retry_after_secs, "submission refused: rate limit");
            ApiError::RateLimited {
                retry_after_secs: retry_after_secs.max(1),
            }
        })
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limit(rate: u32, burst: u32, trust: bool) -> SubmitLimit {
        let mut config = Config::default();
        config.limits.submit_rate_per_minute = rate;
        config.limits.submit_burst = burst;
        config.http.trust_forwarded_for = trust;
        SubmitLimit::new(&config)
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
            assert!(l.check(&from("10.0.0.1:1000", None)).is_ok());
        }
        match l.check(&from("10.0.0.1:2000", None)) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(l.check(&from("10.0.0.2:1000", None)).is_ok());
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted_and_only_its_last_address() {
        let trusted = limit(60, 1, true);
        assert!(
            trusted
                .check(&from("10.9.9.9:1", Some("1.1.1.1, 2.2.2.2")))
                .is_ok()
        );
        // The client may write anything before the router's entry: it does not matter.
        assert!(
            trusted
                .check(&from("10.9.9.9:1", Some("3.3.3.3, 2.2.2.2")))
                .is_err()
        );
        assert!(trusted.check(&from("10.9.9.9:1", Some("4.4.4.4"))).is_ok());
        let untrusted = limit(60, 1, false);
        assert!(
            untrusted
                .check(&from("10.9.9.9:1", Some("1.1.1.1")))
                .is_ok()
        );
        assert!(
            untrusted
                .check(&from("10.9.9.9:1", Some("5.5.5.5")))
                .is_err()
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_56_block() {
        let l = limit(60, 1, false);
        assert!(l.check(&from("[2001:db8:1:2ff::1]:1", None)).is_ok());
        assert!(l.check(&from("[2001:db8:1:2aa::9]:1", None)).is_err());
        assert!(l.check(&from("[2001:db8:1:300::1]:1", None)).is_ok());
    }

    #[test]
    fn a_rate_of_zero_means_no_limit() {
        let l = limit(0, 1, false);
        for _ in 0..1000 {
            assert!(l.check(&from("10.0.0.1:1", None)).is_ok());
        }
    }
}
