//! A stored response's age (RFC 9111 §4.2.3): how old it already was when it arrived, so that
//! the `Age` a hit carries counts the time spent in caches upstream of this one and on the
//! wire, not only the time spent here (an upstream `Age: 30` must not become `Age: 3`).
//!
//! Pure: the request and response times are parameters.

use std::time::{Duration, SystemTime};

use http::header::DATE;
use http::HeaderMap;

use crate::runtime::ttl;

/// Largest delta-seconds value a cache must handle; larger ones count as this (RFC 9111 §1.2.2).
const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// When this cache sent the request and received the response's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// `request_time`: when the request was sent to the target.
    pub request_time: SystemTime,
    /// `response_time`: when the response (or the 304 that revalidated it) arrived.
    pub response_time: SystemTime,
}

/// RFC 9111 §4.2.3 `corrected_initial_age`: the larger of the apparent age (`response_time −
/// Date`, never negative) and the `Age` the response carried plus the time the exchange took
/// (`response_delay`, which covers the response's time on the wire). Whole seconds, as `Age`
/// is: a `Date` is truncated to the second, so a sub-second apparent age says nothing.
pub fn corrected_initial_age(headers: &HeaderMap, exchange: Exchange) -> Duration {
    let apparent = headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(ttl::parse_http_date)
        .and_then(|date| exchange.response_time.duration_since(date).ok())
        .unwrap_or_default();
    let delay = exchange
        .response_time
        .duration_since(exchange.request_time)
        .unwrap_or_default();
    let corrected = Duration::from_secs(ttl::age_value(headers).unwrap_or(0)) + delay;
    let secs = apparent.max(corrected).as_secs().min(DELTA_SECONDS_MAX);
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn corrected_initial_age_takes_the_larger_estimate() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let exchange = Exchange {
            request_time: t0,
            response_time: t0 + Duration::from_secs(2),
        };
        let date = |secs_before: u64| {
            crate::util::http_date(exchange.response_time - Duration::from_secs(secs_before))
        };
        // Age plus the exchange's delay.
        let h = headers(&[("age", "30"), ("date", &date(0))]);
        assert_eq!(corrected_initial_age(&h, exchange).as_secs(), 32);
        // A Date far in the past wins over a small Age.
        let h = headers(&[("age", "1"), ("date", &date(100))]);
        assert_eq!(corrected_initial_age(&h, exchange).as_secs(), 100);
        // A Date in the future never makes it negative.
        let h = headers(&[(
            "date",
            &crate::util::http_date(t0 + Duration::from_secs(60)),
        )]);
        assert_eq!(corrected_initial_age(&h, exchange).as_secs(), 2);
        // Nothing at all: only the delay.
        assert_eq!(
            corrected_initial_age(&HeaderMap::new(), exchange).as_secs(),
            2
        );
        // An invalid Age is ignored.
        let h = headers(&[("age", "abc")]);
        assert_eq!(corrected_initial_age(&h, exchange).as_secs(), 2);
    }
}
