//! Unit tests of `ttl.rs` (kept apart so the module itself stays short).

use std::collections::HashMap;

use http::HeaderValue;

use super::*;
use crate::util::http_date;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2024-03-10 12:00:00 UTC.
const NOON: u64 = 1_710_072_000;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn value<T>(reference: Option<&str>, literal: Option<T>) -> ValueOrRef<T> {
    ValueOrRef {
        reference: reference.map(str::to_owned),
        literal,
    }
}

fn date(month: u8, day: u8, year: u16) -> ExpiryDate {
    ExpiryDate { month, day, year }
}

fn tod(hour: u8, minute: u8, second: u8) -> TimeOfDay {
    TimeOfDay {
        hour,
        minute,
        second,
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, v) in pairs {
        map.append(*name, HeaderValue::from_str(v).unwrap());
    }
    map
}

#[test]
fn timeout_literal_ref_and_fallback() {
    let none = HashMap::new();
    let now = at(NOON);
    let lit = Expiry::Timeout(value(None, Some(300)));
    assert_eq!(expiry_ttl(&lit, &none, now), Some(Duration::from_secs(300)));
    let both = Expiry::Timeout(value(Some("ttl"), Some(300)));
    assert_eq!(
        expiry_ttl(&both, &vars(&[("ttl", " 60 ")]), now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        expiry_ttl(&both, &none, now),
        Some(Duration::from_secs(300))
    );
    for bad in ["abc", "-5", "1.5", ""] {
        assert_eq!(
            expiry_ttl(&both, &vars(&[("ttl", bad)]), now),
            Some(Duration::from_secs(300)),
            "{bad}"
        );
    }
    let ref_only = Expiry::Timeout(value(Some("ttl"), None));
    assert_eq!(expiry_ttl(&ref_only, &none, now), None);
    assert_eq!(expiry_ttl(&ref_only, &vars(&[("ttl", "x")]), now), None);
    assert_eq!(
        expiry_ttl(&ref_only, &vars(&[("ttl", "0")]), now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        expiry_ttl(&Expiry::Timeout(value(None, None)), &none, now),
        None
    );
}

#[test]
fn expiry_date_ends_at_next_midnight_utc() {
    let none = HashMap::new();
    // 2024-03-10 12:00 → end of 2024-03-10 is 12 h away.
    let today = Expiry::Date(value(None, Some(date(3, 10, 2024))));
    assert_eq!(
        expiry_ttl(&today, &none, at(NOON)),
        Some(Duration::from_secs(12 * 3600))
    );
    let tomorrow = Expiry::Date(value(None, Some(date(3, 11, 2024))));
    assert_eq!(
        expiry_ttl(&tomorrow, &none, at(NOON)),
        Some(Duration::from_secs(36 * 3600))
    );
    let past = Expiry::Date(value(None, Some(date(3, 9, 2024))));
    assert_eq!(expiry_ttl(&past, &none, at(NOON)), Some(Duration::ZERO));
    // Exactly at the end of the day: over.
    assert_eq!(
        expiry_ttl(&today, &none, at(NOON + 12 * 3600)),
        Some(Duration::ZERO)
    );
}

#[test]
fn expiry_date_leap_years() {
    let none = HashMap::new();
    let midnight = |s: &str| parse_http_date(s).unwrap();
    // 2024-02-28 00:00 → end of 2024-02-29 (leap day) is 2 days away.
    let leap = Expiry::Date(value(None, Some(date(2, 29, 2024))));
    let now = midnight("Wed, 28 Feb 2024 00:00:00 GMT");
    assert_eq!(
        expiry_ttl(&leap, &none, now),
        Some(Duration::from_secs(2 * DAY_SECS))
    );
    // End of Feb 28 in a leap year is Feb 29 00:00, not Mar 1.
    let feb28 = Expiry::Date(value(None, Some(date(2, 28, 2024))));
    assert_eq!(
        expiry_ttl(&feb28, &none, now),
        Some(Duration::from_secs(DAY_SECS))
    );
    // 2000 is a leap year, 1900 and 2100 are not.
    assert!(parse_expiry_date("02-29-2000").is_some());
    assert!(parse_expiry_date("02-29-1900").is_none());
    assert!(parse_expiry_date("02-29-2100").is_none());
    assert!(parse_expiry_date("02-29-2023").is_none());
    // Across a year end: 2023-12-31 12:00 → end of 2024-01-01.
    let new_year = Expiry::Date(value(None, Some(date(1, 1, 2024))));
    let now = midnight("Sun, 31 Dec 2023 12:00:00 GMT");
    assert_eq!(
        expiry_ttl(&new_year, &none, now),
        Some(Duration::from_secs(36 * 3600))
    );
}

#[test]
fn expiry_date_ref_parsing() {
    let e = Expiry::Date(value(Some("d"), Some(date(3, 10, 2024))));
    let now = at(NOON);
    assert_eq!(
        expiry_ttl(&e, &vars(&[("d", "03-11-2024")]), now),
        Some(Duration::from_secs(36 * 3600))
    );
    assert_eq!(
        expiry_ttl(&e, &vars(&[("d", "3-11-2024")]), now),
        Some(Duration::from_secs(36 * 3600))
    );
    for bad in [
        "2024-03-11",
        "13-01-2024",
        "04-31-2024",
        "03-11-24",
        "03/11/2024",
        "x",
    ] {
        assert_eq!(
            expiry_ttl(&e, &vars(&[("d", bad)]), now),
            Some(Duration::from_secs(12 * 3600)),
            "{bad}"
        );
    }
    let ref_only = Expiry::Date(value(Some("d"), None));
    assert_eq!(expiry_ttl(&ref_only, &HashMap::new(), now), None);
    // An invalid literal (the parser should have refused it) gives no TTL, not a panic.
    let invalid = Expiry::Date(value(None, Some(date(2, 30, 2024))));
    assert_eq!(expiry_ttl(&invalid, &HashMap::new(), now), None);
}

#[test]
fn time_of_day_next_occurrence() {
    let none = HashMap::new();
    let later = Expiry::TimeOfDay(value(None, Some(tod(13, 30, 0))));
    assert_eq!(
        expiry_ttl(&later, &none, at(NOON)),
        Some(Duration::from_secs(5400))
    );
    // Already passed today → tomorrow's.
    let earlier = Expiry::TimeOfDay(value(None, Some(tod(11, 0, 0))));
    assert_eq!(
        expiry_ttl(&earlier, &none, at(NOON)),
        Some(Duration::from_secs(23 * 3600))
    );
    // Exactly now → tomorrow's.
    let exact = Expiry::TimeOfDay(value(None, Some(tod(12, 0, 0))));
    assert_eq!(
        expiry_ttl(&exact, &none, at(NOON)),
        Some(Duration::from_secs(DAY_SECS))
    );
    // Sub-second precision: half a second past → almost a day.
    let now = at(NOON) + Duration::from_millis(500);
    assert_eq!(
        expiry_ttl(&exact, &none, now),
        Some(Duration::from_secs(DAY_SECS) - Duration::from_millis(500))
    );
    // Wraparound over midnight: 23:59:59 → 00:00:01 is 2 s away.
    let just_after_midnight = Expiry::TimeOfDay(value(None, Some(tod(0, 0, 1))));
    let before_midnight = at(NOON + 12 * 3600 - 1);
    assert_eq!(
        expiry_ttl(&just_after_midnight, &none, before_midnight),
        Some(Duration::from_secs(2))
    );
    let midnight = Expiry::TimeOfDay(value(None, Some(tod(0, 0, 0))));
    assert_eq!(
        expiry_ttl(&midnight, &none, before_midnight),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn time_of_day_ref_parsing() {
    let e = Expiry::TimeOfDay(value(Some("t"), Some(tod(13, 0, 0))));
    let now = at(NOON);
    assert_eq!(
        expiry_ttl(&e, &vars(&[("t", "12:00:30")]), now),
        Some(Duration::from_secs(30))
    );
    for bad in [
        "24:00:00", "12:60:00", "12:00:60", "12:00", "12.00.30", "a:b:c", "",
    ] {
        assert_eq!(
            expiry_ttl(&e, &vars(&[("t", bad)]), now),
            Some(Duration::from_secs(3600)),
            "{bad}"
        );
    }
    let ref_only = Expiry::TimeOfDay(value(Some("t"), None));
    assert_eq!(expiry_ttl(&ref_only, &HashMap::new(), now), None);
}

#[test]
fn header_ttl_precedence() {
    let now = at(NOON);
    let expires = http_date(at(NOON + 900));
    let all = headers(&[
        ("cache-control", "max-age=60, s-maxage=120"),
        ("expires", &expires),
    ]);
    assert_eq!(
        response_header_ttl(&all, now),
        Some(Duration::from_secs(120))
    );
    let max_age = headers(&[("cache-control", "max-age=60"), ("expires", &expires)]);
    assert_eq!(
        response_header_ttl(&max_age, now),
        Some(Duration::from_secs(60))
    );
    let only_expires = headers(&[("expires", &expires)]);
    assert_eq!(
        response_header_ttl(&only_expires, now),
        Some(Duration::from_secs(900))
    );
    assert_eq!(response_header_ttl(&HeaderMap::new(), now), None);
    let unrelated = headers(&[("cache-control", "public"), ("date", &http_date(now))]);
    assert_eq!(response_header_ttl(&unrelated, now), None);
}

#[test]
fn header_ttl_expires_minus_date() {
    let now = at(NOON);
    // Origin clock is 100 s behind: Expires − Date, not Expires − now.
    let h = headers(&[
        ("date", &http_date(at(NOON - 100))),
        ("expires", &http_date(at(NOON + 500))),
    ]);
    assert_eq!(response_header_ttl(&h, now), Some(Duration::from_secs(600)));
    // Invalid Date → now.
    let h = headers(&[
        ("date", "yesterday"),
        ("expires", &http_date(at(NOON + 500))),
    ]);
    assert_eq!(response_header_ttl(&h, now), Some(Duration::from_secs(500)));
    // Expires before Date.
    let h = headers(&[
        ("date", &http_date(now)),
        ("expires", &http_date(at(NOON - 1))),
    ]);
    assert_eq!(response_header_ttl(&h, now), Some(Duration::ZERO));
    // Invalid Expires ("0", "-1", garbage) = already expired.
    for bad in ["0", "-1", "soon", ""] {
        let h = headers(&[("expires", bad)]);
        assert_eq!(response_header_ttl(&h, now), Some(Duration::ZERO), "{bad}");
    }
    // A malformed max-age makes the response stale (RFC 9111 §4.2.1); Expires does not count.
    let h = headers(&[
        ("cache-control", "max-age=abc"),
        ("expires", &http_date(at(NOON + 30))),
    ]);
    assert_eq!(response_header_ttl(&h, now), Some(Duration::ZERO));
}

#[test]
fn http_date_formats() {
    let expected = Some(at(784_111_777));
    assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
    assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
    assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
    // Names are case-insensitive (RFC 9111 §4.2); surrounding whitespace is not the value.
    assert_eq!(
        parse_http_date("  sun, 06 nov 1994 08:49:37 gmt "),
        expected
    );
    assert_eq!(parse_http_date("SUN NOV 06 08:49:37 1994"), expected);
    assert_eq!(
        parse_http_date("Thursday, 01-Jan-05 00:00:00 GMT"),
        parse_http_date("Sat, 01 Jan 2005 00:00:00 GMT")
    );
    assert_eq!(
        parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
        Some(UNIX_EPOCH)
    );
    assert_eq!(
        parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT"),
        UNIX_EPOCH.checked_sub(Duration::from_secs(1))
    );
    assert_eq!(
        parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
        Some(at(1_709_164_800))
    );
}

#[test]
fn http_date_rejects_invalid() {
    for bad in [
        "",
        "0",
        "-1",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 PST",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 2023 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT extra",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov  6 08:49:37",
        "Sun Nov  6 08:49:37 1994 GMT",
        "1, 06 Nov 1994 08:49:37 GMT",
        ", 06 Nov 1994 08:49:37 GMT",
        // cache-tests freshness-expires-invalid-*.
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 AEST",
        "Sun, 06  Nov 1994 08:49:37 GMT",
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994  08:49:37 GMT",
        "Sun 06 Nov 1994 08:49:37 GMT",
        "Sun, 06-Nov-1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08.49.37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 gmt+1",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Foo, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT\tx",
        // rfc850 needs the long day name, dashes, a two-digit year, GMT.
        "Sun, 06-Nov-94 08:49:37 GMT",
        "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 UTC",
        "Sunday, 6-Nov-94 08:49:37 GMT",
        // asctime: exact spacing, no zone.
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov   6 08:49:37 1994",
        "Sun  Nov  6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov 6  08:49:37 1994",
        "Sunday Nov  6 08:49:37 1994",
        // Non-ASCII.
        "Sun, 06 Nov 1994 08:49:37 GMT\u{a0}",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad:?}");
    }
}

#[test]
fn http_date_rfc850_century_is_relative_to_now() {
    // Now = 2026-12-08: 76 is at most 50 years ahead (2076); 77 would be 2077 → 1977.
    let now = at(1_796_688_000);
    let year = |yy: &str| {
        parse_http_date_at(&format!("Friday, 01-Jan-{yy} 00:00:00 GMT"), now)
            .map(year_of)
            .unwrap_or_default()
    };
    assert_eq!(year("76"), 2076);
    assert_eq!(year("77"), 1977);
    assert_eq!(year("00"), 2000);
    assert_eq!(year("99"), 1999);
    assert_eq!(year("26"), 2026);
    // In 1994, 94 is 1994 and 44 is 2044.
    let then = at(784_111_777);
    assert_eq!(year_of(then), 1994);
    assert_eq!(
        parse_http_date_at("Sunday, 06-Nov-94 08:49:37 GMT", then),
        Some(then)
    );
    assert_eq!(
        parse_http_date_at("Sunday, 06-Nov-44 08:49:37 GMT", then).map(year_of),
        Some(2044)
    );
    assert_eq!(year_of(UNIX_EPOCH), 1970);
    assert_eq!(year_of(at(1_704_067_199)), 2023);
    assert_eq!(year_of(at(1_704_067_200)), 2024);
}

#[test]
fn asctime_day_forms() {
    let expected = Some(at(785_321_377));
    // 1994-11-20: `Nov 20`, and a one-digit day padded with a space or (leniently) a zero.
    assert_eq!(parse_http_date("Sun Nov 20 08:49:37 1994"), expected);
    assert_eq!(
        parse_http_date("Sun Nov  6 08:49:37 1994"),
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    assert_eq!(
        parse_http_date("Sun Nov 06 08:49:37 1994"),
        parse_http_date("Sun Nov  6 08:49:37 1994")
    );
}

/// cache-tests freshness-expires-*: accepted forms (far future, 32-bit overflow, case).
#[test]
fn expires_valid_forms() {
    let now = at(NOON);
    for ok in [
        "Thu, 01 Jan 2099 00:00:00 GMT",
        "Fri, 01 Jan 2038 00:00:00 GMT",
        "thu, 01 jan 2099 00:00:00 gmt",
        "THU, 01 JAN 2099 00:00:00 GMT",
        "Thursday, 01-Jan-69 00:00:00 GMT",
        "Thu Jan  1 00:00:00 2099",
    ] {
        let h = headers(&[("expires", ok)]);
        let ttl = response_header_ttl(&h, now).unwrap_or_default();
        assert!(ttl > Duration::from_secs(86_400), "{ok}: {ttl:?}");
    }
}

/// cache-tests freshness-expires-invalid-*: an invalid Expires is already expired, and of two
/// Expires lines the first one counts.
#[test]
fn expires_invalid_means_expired() {
    let now = at(NOON);
    for bad in [
        "Thu, 01 Jan 2099 00:00:00 UTC",
        "Thu, 01 Jan 2099 00:00:00 AEST",
        "Thu, 01 Jan 99 00:00:00 GMT",
        "Thu 01 Jan 2099 00:00:00 GMT",
        "Thu, 01  Jan 2099 00:00:00 GMT",
        "Thu, 01-Jan-2099 00:00:00 GMT",
        "Thu, 01 Jan 2099 00.00.00 GMT",
        "Thu, 01 Jan 2099 0:00:00 GMT",
    ] {
        let h = headers(&[("expires", bad)]);
        assert_eq!(response_header_ttl(&h, now), Some(Duration::ZERO), "{bad}");
    }
    let future = http_date(at(NOON + 600));
    let h = headers(&[("expires", &future), ("expires", "0")]);
    assert_eq!(response_header_ttl(&h, now), Some(Duration::from_secs(600)));
    let h = headers(&[("expires", "0"), ("expires", &future)]);
    assert_eq!(response_header_ttl(&h, now), Some(Duration::ZERO));
}

/// cache-tests age-parse-*: delta-seconds, the first member of a list, the first line.
#[test]
fn age_parsing() {
    let age = |lines: &[&str]| {
        let pairs: Vec<(&'static str, &str)> = lines.iter().map(|l| ("age", *l)).collect();
        age_value(&headers(&pairs))
    };
    assert_eq!(age(&[]), None);
    assert_eq!(age(&["7200"]), Some(7200));
    assert_eq!(age(&[" 7200 "]), Some(7200));
    assert_eq!(age(&["0"]), Some(0));
    assert_eq!(age(&["007"]), Some(7));
    // -suffix / -prefix: the first member.
    assert_eq!(age(&["7200, 0"]), Some(7200));
    assert_eq!(age(&["0, 7200"]), Some(0));
    assert_eq!(age(&["7200,0"]), Some(7200));
    // -suffix-twoline / -prefix-twoline / -dup-0-twoline: the first line.
    assert_eq!(age(&["7200", "0"]), Some(7200));
    assert_eq!(age(&["0", "7200"]), Some(0));
    assert_eq!(age(&["0", "0"]), Some(0));
    // -large-minus-one, -large, -larger: clamped at 2^31.
    assert_eq!(age(&["2147483647"]), Some(2_147_483_647));
    assert_eq!(age(&["2147483648"]), Some(2_147_483_648));
    assert_eq!(age(&["2147483649"]), Some(2_147_483_648));
    assert_eq!(age(&["99999999999999999999999"]), Some(2_147_483_648));
    // -nonnumeric, -negative, -float, -parameter: ignored.
    for bad in [
        "abc",
        "-7200",
        "7200.0",
        "1.5",
        "+5",
        "7200;foo=bar",
        "7200 s",
        "",
        " ",
        "0x10",
        "7 200",
    ] {
        assert_eq!(age(&[bad]), None, "{bad:?}");
    }
    // A bad first line is not rescued by a second one.
    assert_eq!(age(&["abc", "7200"]), None);
}

#[test]
fn http_date_round_trips() {
    for secs in [
        0,
        1,
        784_111_777,
        951_782_400,
        1_709_164_800,
        1_795_502_305,
        4_102_444_799,
    ] {
        let t = at(secs);
        assert_eq!(parse_http_date(&http_date(t)), Some(t), "{secs}");
    }
    // Every day across a leap-year boundary.
    for day in 0..800u64 {
        let t = at(1_704_067_200 + day * DAY_SECS + 3_723);
        assert_eq!(parse_http_date(&http_date(t)), Some(t));
    }
}

#[test]
fn capping() {
    assert_eq!(cap(Duration::from_secs(60)), Duration::from_secs(60));
    assert_eq!(
        cap(Duration::from_secs(MAX_TTL_SECS)),
        Duration::from_secs(MAX_TTL_SECS)
    );
    assert_eq!(
        cap(Duration::from_secs(86_400)),
        Duration::from_secs(MAX_TTL_SECS)
    );
    assert_eq!(cap(Duration::MAX), Duration::from_secs(MAX_TTL_SECS));
}

#[test]
fn a_past_expiry_date_is_recognised() {
    assert!(date_has_passed(date(3, 9, 2024), at(NOON)));
    assert!(!date_has_passed(date(3, 10, 2024), at(NOON)));
    assert!(!date_has_passed(date(12, 31, 2099), at(NOON)));
}

#[test]
fn policy_ttls_are_capped_at_the_policy_maximum() {
    assert_eq!(
        cap_policy(Duration::from_secs(600)),
        Duration::from_secs(600)
    );
    assert_eq!(
        cap_policy(Duration::from_secs(40 * 86_400)),
        Duration::from_secs(POLICY_MAX_TTL_SECS)
    );
    // A date 20 days ahead: exact before the cap, so the cap is all that shortens it.
    let ttl = expiry_ttl(
        &Expiry::Date(value(None, Some(date(3, 30, 2024)))),
        &vars(&[]),
        at(NOON),
    );
    assert_eq!(ttl, Some(Duration::from_secs(20 * 86_400 + 12 * 3600)));
}
