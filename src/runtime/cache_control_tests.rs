//! Unit tests of `cache_control.rs`; the names in comments are cache-tests ids
//! (`http-tests/cache-tests`, `cc-parse.mjs`, `cc-freshness.mjs`, `headers.mjs`).

use http::{HeaderMap, HeaderValue};

use super::*;

fn cc(lines: &[&str]) -> CacheControlFlags {
    let mut map = HeaderMap::new();
    for line in lines {
        map.append(CACHE_CONTROL, HeaderValue::from_str(line).unwrap());
    }
    cache_control(&map)
}

#[test]
fn max_age_zero_private() {
    let f = cc(&["max-age=0, private"]);
    assert!(f.private);
    assert!(f.forbids_shared_storage());
    assert_eq!(f.max_age, Some(0));
}

#[test]
fn cache_control_directives() {
    let f = cc(&["No-Store, NO-CACHE, Must-Revalidate, S-MaxAge=\"30\", \
         stale-while-revalidate=10, stale-if-error=20, private, x-ext=\"q,r\""]);
    assert_eq!(
        f,
        CacheControlFlags {
            no_store: true,
            private: true,
            no_cache: true,
            must_revalidate: true,
            s_maxage: Some(30),
            max_age: None,
            stale_while_revalidate: Some(10),
            stale_if_error: Some(20),
            ..CacheControlFlags::default()
        }
    );
    assert!(cc(&["proxy-revalidate"]).must_revalidate);
    assert_eq!(cc(&[]), CacheControlFlags::default());
    assert!(!CacheControlFlags::default().forbids_shared_storage());
}

#[test]
fn multiple_cache_control_headers() {
    let f = cc(&["public", "max-age=300", "no-cache"]);
    assert_eq!(f.max_age, Some(300));
    assert!(f.no_cache);
    assert!(!f.private);
}

/// freshness-max-age-two-{fresh-stale,stale-fresh}-{sameline,sepline},
/// freshness-max-age-s-maxage-shared-longer-multiple: the first occurrence wins (§4.2.1).
#[test]
fn duplicate_directives_first_wins() {
    assert_eq!(cc(&["max-age=3600, max-age=0"]).max_age, Some(3600));
    assert_eq!(cc(&["max-age=0, max-age=3600"]).max_age, Some(0));
    assert_eq!(cc(&["max-age=3600", "max-age=0"]).max_age, Some(3600));
    assert_eq!(cc(&["max-age=0", "max-age=3600"]).max_age, Some(0));
    let f = cc(&[
        "max-age=300, max-age=60",
        "max-age=120, s-maxage=10, s-maxage=5, stale-if-error=9, stale-if-error=1",
    ]);
    assert_eq!(f.max_age, Some(300));
    assert_eq!(f.s_maxage, Some(10));
    assert_eq!(f.stale_if_error, Some(9));
    // An invalid first occurrence still is the first: stale, not the later value.
    assert_eq!(cc(&["max-age=abc, max-age=60"]).max_age, Some(0));
}

/// freshness-max-age-ignore-quoted, -ignore-quoted-rev: a directive inside another directive's
/// quoted string is not a directive.
#[test]
fn quoted_strings_hide_nothing() {
    let f = cc(&["foo=\"max-age=8\", max-age=3600"]);
    assert_eq!(f.max_age, Some(3600));
    let f = cc(&["max-age=3600, foo=\"max-age=8\""]);
    assert_eq!(f.max_age, Some(3600));
    let f = cc(&["foo=\"a, max-age=0, private\""]);
    assert_eq!(f, CacheControlFlags::default());
    let f = cc(&["foo=\"x\\\", max-age=0\", max-age=60"]);
    assert_eq!(f.max_age, Some(60));
}

/// freshness-max-age-{negative, single-quoted, a100, 100a, decimal-*, space-*-equals}: only
/// `1*DIGIT` is delta-seconds; an invalid max-age is stale (§4.2.1), an invalid stale window is
/// none; a space around `=` makes the name not `max-age`.
#[test]
fn delta_seconds_are_exact() {
    for bad in [
        "-1", "+5", "5.0", "1.5", "a100", "100a", "'3600'", "", "\"\"", "0x10", "1 0",
    ] {
        let f = cc(&[&format!(
            "max-age={bad}, s-maxage={bad}, stale-while-revalidate={bad}"
        )]);
        assert_eq!(f.max_age, Some(0), "{bad:?}");
        assert_eq!(f.s_maxage, Some(0), "{bad:?}");
        assert_eq!(f.stale_while_revalidate, Some(0), "{bad:?}");
    }
    assert_eq!(cc(&["max-age"]).max_age, Some(0));
    assert_eq!(cc(&["max-age= 60"]).max_age, Some(0));
    assert_eq!(cc(&["max-age =60"]).max_age, None);
    // -leading-zero, quoted (recipients accept both forms), -max, -max-plus.
    assert_eq!(cc(&["max-age=0003600"]).max_age, Some(3600));
    assert_eq!(cc(&["max-age=\"3600\""]).max_age, Some(3600));
    assert_eq!(cc(&["max-age=2147483648"]).max_age, Some(DELTA_SECONDS_MAX));
    assert_eq!(cc(&["max-age=2147483649"]).max_age, Some(DELTA_SECONDS_MAX));
    let f = cc(&["max-age=99999999999999999999999, s-maxage=4294967296"]);
    assert_eq!(f.max_age, Some(DELTA_SECONDS_MAX));
    assert_eq!(f.s_maxage, Some(DELTA_SECONDS_MAX));
    assert_eq!(delta_seconds("2147483647"), Some(2_147_483_647));
}

#[test]
fn malformed_cache_control() {
    // Nothing recognisable: nothing set, nothing panics.
    assert_eq!(cc(&[",,, =, \"x\", =5"]), CacheControlFlags::default());
    // Unterminated quote: the rest is one element.
    let f = cc(&["max-age=\"5, private"]);
    assert!(!f.private);
    // Non-UTF-8 bytes are tolerated.
    let mut h = HeaderMap::new();
    h.append(
        CACHE_CONTROL,
        HeaderValue::from_bytes(b"max-age=7, \xffx").unwrap(),
    );
    assert_eq!(cache_control(&h).max_age, Some(7));
}

/// headers-omit-headers-listed-in-Cache-Control-no-cache(-single), and qualified `private`:
/// the listed fields, lower-cased; quoted or a bare token.
#[test]
fn qualified_private_and_no_cache() {
    let f = cc(&["no-cache=\"a, B\", max-age=3600"]);
    assert!(!f.no_cache);
    assert_eq!(f.no_cache_fields, ["a", "b"]);
    assert_eq!(f.max_age, Some(3600));
    let f = cc(&["no-cache=a"]);
    assert_eq!(
        (f.no_cache, f.no_cache_fields.as_slice()),
        (false, &["a".to_owned()][..])
    );
    let f = cc(&[
        "private=\"X-Secret\"",
        "private=x-other, private=\"x-secret\"",
    ]);
    assert!(!f.private);
    assert!(!f.forbids_shared_storage());
    assert_eq!(f.private_fields, ["x-secret", "x-other"]);
    assert_eq!(
        f.fields_not_stored().collect::<Vec<_>>(),
        ["x-secret", "x-other"]
    );
    // Unqualified and qualified together: the unqualified (most restrictive) meaning.
    let f = cc(&["private=\"a\", private"]);
    assert!(f.private);
    let f = cc(&["no-cache, no-cache=\"a\""]);
    assert!(f.no_cache);
    // An empty or unreadable list is read as unqualified.
    for v in ["\"\"", "\"a b\"", "\"a, @\"", "\" , \""] {
        let f = cc(&[&format!("private={v}, no-cache={v}")]);
        assert!(f.private && f.no_cache, "{v}");
        assert!(
            f.private_fields.is_empty() && f.no_cache_fields.is_empty(),
            "{v}"
        );
    }
}

#[test]
fn unquote_and_split() {
    assert_eq!(unquote("\"a\\\"b\""), "a\"b");
    assert_eq!(unquote("\"ab\""), "ab");
    assert_eq!(unquote("\"ab"), "\"ab");
    assert_eq!(unquote("\"\\"), "\"\\");
    let items: Vec<&str> = split_list("a, b=\"x,\\\"y\", c").collect();
    assert_eq!(items, ["a", "b=\"x,\\\"y\"", "c"]);
    assert_eq!(field_names(" a ,B,, c"), ["a", "b", "c"]);
    assert!(field_names("a b").is_empty());
}
