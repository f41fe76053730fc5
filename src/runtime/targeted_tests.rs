//! Unit tests of `targeted.rs`; the names in comments are cache-tests ids
//! (`cdn-cache-control.mjs`).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::runtime::ttl::explicit_lifetime;

fn targets() -> Vec<HeaderName> {
    DEFAULT_TARGETS
        .iter()
        .map(|&n| HeaderName::from_static(n))
        .collect()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, v) in pairs {
        map.append(*name, HeaderValue::from_str(v).unwrap());
    }
    map
}

fn cdn(value: &str) -> Option<CacheControlFlags> {
    select(&targets(), &headers(&[("cdn-cache-control", value)]))
}

/// cdn-max-age, -max, -max-plus, -0, -extension: Integer delta-seconds, clamped at 2^31;
/// unknown directives and parameters are ignored.
#[test]
fn max_age_is_an_integer() {
    let f = cdn("max-age=3600").unwrap();
    assert_eq!(f.max_age, Some(3600));
    assert!(f.targeted);
    assert_eq!(cdn("max-age=0").unwrap().max_age, Some(0));
    assert_eq!(
        cdn("max-age=2147483648").unwrap().max_age,
        Some(DELTA_SECONDS_MAX)
    );
    assert_eq!(
        cdn("max-age=99999999999999").unwrap().max_age,
        Some(DELTA_SECONDS_MAX)
    );
    let f = cdn("foo=bar, max-age=60;x=1, baz").unwrap();
    assert_eq!(f.max_age, Some(60));
    let f = cdn("s-maxage=10, stale-while-revalidate=5, stale-if-error=7").unwrap();
    assert_eq!(
        (f.s_maxage, f.stale_while_revalidate, f.stale_if_error),
        (Some(10), Some(5), Some(7))
    );
}

/// cdn-cc-invalid-sh-type-unknown, -wrong, -case-insensitive, -space-before/after-equals: a
/// field that does not parse, or a delta-seconds value of the wrong type, ignores the field.
#[test]
fn invalid_fields_are_ignored() {
    for bad in [
        "max-age=10000, &&&&&",
        "max-age=\"10000\"",
        "max-age=1.5",
        "max-age=-1",
        "max-age=?1",
        "max-age=(1 2)",
        "MaX-aGe=10000",
        "max-age =10000",
        "max-age= 10000",
        "s-maxage=abc",
        "stale-if-error=\"5\"",
        "",
        "   ",
    ] {
        assert_eq!(cdn(bad), None, "{bad:?}");
    }
    // Non-ASCII bytes.
    let mut h = HeaderMap::new();
    h.append(
        "cdn-cache-control",
        HeaderValue::from_bytes(b"max-age=5, \xff").unwrap(),
    );
    assert_eq!(select(&targets(), &h), None);
}

/// cdn-private, cdn-no-cache, cdn-no-store-cc-fresh: Booleans; `?0` is off; a field list
/// (String, Token or Inner List) qualifies `private` / `no-cache`.
#[test]
fn boolean_and_list_directives() {
    let f = cdn("no-store, private, no-cache, must-revalidate").unwrap();
    assert!(f.no_store && f.private && f.no_cache && f.must_revalidate);
    let f = cdn("no-store=?0, private=?0, max-age=5").unwrap();
    assert!(!f.no_store && !f.private);
    let f = cdn("private=\"X-A, x-b\", no-cache=(\"x-c\" x-d), max-age=5").unwrap();
    assert!(!f.private && !f.no_cache);
    assert_eq!(f.private_fields, ["x-a", "x-b"]);
    assert_eq!(f.no_cache_fields, ["x-c", "x-d"]);
    // A value the cache cannot read as a list: the unqualified, restrictive meaning.
    assert!(cdn("private=5").unwrap().private);
    assert!(cdn("no-cache=\"a b\"").unwrap().no_cache);
    // Duplicate keys: a dictionary keeps the last (RFC 8941).
    assert_eq!(cdn("max-age=5, max-age=10").unwrap().max_age, Some(10));
}

/// The first listed field present and valid wins; lines of one field are one dictionary.
#[test]
fn target_list_order() {
    let h = headers(&[
        ("cdn-cache-control", "max-age=60"),
        ("cachegate-cache-control", "max-age=5"),
    ]);
    assert_eq!(select(&targets(), &h).unwrap().max_age, Some(5));
    // An invalid own field falls back to CDN-Cache-Control.
    let h = headers(&[
        ("cdn-cache-control", "max-age=60"),
        ("cachegate-cache-control", "max-age=\"5\""),
    ]);
    assert_eq!(select(&targets(), &h).unwrap().max_age, Some(60));
    // Not on the list: no effect.
    let only_cdn = [HeaderName::from_static("cdn-cache-control")];
    let h = headers(&[("cachegate-cache-control", "max-age=5")]);
    assert_eq!(select(&only_cdn, &h), None);
    assert_eq!(
        select(&[], &headers(&[("cdn-cache-control", "max-age=5")])),
        None
    );
    // Two lines.
    let h = headers(&[
        ("cdn-cache-control", "max-age=60"),
        ("cdn-cache-control", "no-store"),
    ]);
    let f = select(&targets(), &h).unwrap();
    assert!(f.no_store);
    assert_eq!(f.max_age, Some(60));
}

/// cdn-max-age-expires, cdn-max-age-cc-max-age-invalid-expires, cdn-max-age-0-expires: with a
/// targeted field, Expires does not count (nor does Cache-Control, which `select` replaces).
#[test]
fn expires_is_ignored_with_a_targeted_field() {
    let now = SystemTime::now();
    let h = headers(&[
        ("cdn-cache-control", "no-store=?0"),
        ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
    ]);
    let f = select(&targets(), &h).unwrap();
    assert_eq!(explicit_lifetime(&f, &h, now), None);
    let h = headers(&[("cdn-cache-control", "max-age=60"), ("expires", "garbage")]);
    let f = select(&targets(), &h).unwrap();
    assert_eq!(
        explicit_lifetime(&f, &h, now),
        Some(Duration::from_secs(60))
    );
}

#[test]
fn own_field_is_the_first_unless_cdn() {
    assert_eq!(
        own_field(&targets()).map(HeaderName::as_str),
        Some(OWN_FIELD)
    );
    let cdn_first = [
        HeaderName::from_static("cdn-cache-control"),
        HeaderName::from_static(OWN_FIELD),
    ];
    assert_eq!(own_field(&cdn_first), None);
    assert_eq!(own_field(&[]), None);
}
