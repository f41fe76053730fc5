//! TTL arithmetic: a policy's `<ExpirySettings>`, the upstream's freshness headers (RFC 9111),
//! and the stage maximum.
//!
//! Everything here is pure: the current time is a parameter, so every branch is testable.
//! cachegate interprets `<ExpiryDate>` and `<TimeOfDay>` in UTC (Apigee uses the time zone of the
//! machine the policy runs on, which a gateway should not depend on).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{CACHE_CONTROL, DATE, EXPIRES};
use http::HeaderMap;

use crate::policy::model::{Expiry, ExpiryDate, TimeOfDay, ValueOrRef};
use crate::runtime::flow::Variables;

/// AWS API Gateway's default cache TTL; also the TTL of a policy without ExpirySettings on a
/// stage whose own TTL is 0 (see `engine::plan::ttl_for`).
pub const DEFAULT_TTL_SECS: u64 = 300;
/// AWS API Gateway's maximum cache TTL; every policy TTL is bounded by it.
pub const MAX_TTL_SECS: u64 = 3600;

/// Seconds in a day.
const DAY_SECS: u64 = 86_400;
/// RFC 9111 §1.2.2: a delta-seconds value too large to represent is taken as 2^31.
const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// The TTL of an entry stored now under a policy's `<ExpirySettings>`. A `ref` is read from the
/// request's variables and parsed like the literal (integer seconds, `mm-dd-yyyy`, `hh:mm:ss`);
/// an unresolved or unparsable ref falls back to the literal; `None` when neither gives a value
/// (the caller then uses the stage TTL).
///
/// - Timeout: that many seconds.
/// - ExpiryDate: the entry lives until the end of that day, i.e. midnight UTC starting the next
///   day; a date already over gives `Some(ZERO)` (not cacheable).
/// - TimeOfDay: until the next occurrence of that UTC time; if it is exactly now or already
///   passed today, tomorrow's.
pub fn expiry_ttl(expiry: &Expiry, vars: &dyn Variables, now: SystemTime) -> Option<Duration> {
    match expiry {
        Expiry::Timeout(v) => resolve(v, vars, parse_seconds).map(Duration::from_secs),
        Expiry::Date(v) => resolve(v, vars, parse_expiry_date).and_then(|d| date_ttl(d, now)),
        Expiry::TimeOfDay(v) => {
            resolve(v, vars, parse_time_of_day).map(|t| time_of_day_ttl(t, now))
        }
    }
}

/// The ref's parsed value, else the literal.
fn resolve<T: Copy>(
    v: &ValueOrRef<T>,
    vars: &dyn Variables,
    parse: fn(&str) -> Option<T>,
) -> Option<T> {
    v.reference
        .as_deref()
        .and_then(|name| vars.get(name))
        .and_then(|value| parse(&value))
        .or(v.literal)
}

/// Non-negative integer seconds (surrounding whitespace tolerated).
fn parse_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `mm-dd-yyyy` (one- or two-digit month and day, four-digit year), checked against the calendar.
fn parse_expiry_date(s: &str) -> Option<ExpiryDate> {
    let mut parts = s.trim().split('-');
    let month = digits(parts.next()?, 1, 2)?;
    let day = digits(parts.next()?, 1, 2)?;
    let year = digits(parts.next()?, 4, 4)?;
    if parts.next().is_some() {
        return None;
    }
    let date = ExpiryDate {
        month: u8::try_from(month).ok()?,
        day: u8::try_from(day).ok()?,
        year: u16::try_from(year).ok()?,
    };
    valid_date(
        i64::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
    .then_some(date)
}

/// `hh:mm:ss` (24 h; one- or two-digit fields).
fn parse_time_of_day(s: &str) -> Option<TimeOfDay> {
    let mut parts = s.trim().split(':');
    let hour = digits(parts.next()?, 1, 2)?;
    let minute = digits(parts.next()?, 1, 2)?;
    let second = digits(parts.next()?, 1, 2)?;
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(TimeOfDay {
        hour: u8::try_from(hour).ok()?,
        minute: u8::try_from(minute).ok()?,
        second: u8::try_from(second).ok()?,
    })
}

/// An ASCII decimal of `min..=max` digits.
fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Time left until midnight UTC after `date`; zero when that is not in the future.
fn date_ttl(date: ExpiryDate, now: SystemTime) -> Option<Duration> {
    let (year, month, day) = (
        i64::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    );
    if !valid_date(year, month, day) {
        return None;
    }
    let end_of_day = (days_from_civil(year, month, day) + 1) * 86_400;
    let end = unix_time(end_of_day)?;
    Some(end.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Time left until the next occurrence of `time` (UTC), strictly in the future.
fn time_of_day_ttl(time: TimeOfDay, now: SystemTime) -> Duration {
    // A clock before 1970 is broken; treat it as the epoch rather than failing.
    let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let today = now.as_secs() - now.as_secs() % DAY_SECS;
    let target = u64::from(time.hour) * 3600 + u64::from(time.minute) * 60 + u64::from(time.second);
    let mut at = Duration::from_secs(today + target);
    if at <= now {
        at += Duration::from_secs(DAY_SECS);
    }
    at - now
}

/// Freshness lifetime from the upstream's headers (`<UseResponseCacheHeaders>`, RFC 9111
/// §4.2.1): `s-maxage` (a shared cache's own) over `max-age` over `Expires` minus `Date` (or
/// minus `now` when `Date` is missing or invalid). An invalid `Expires` means "already expired"
/// (§5.3) → `Some(ZERO)`. `None` when the response carries none of them, so the policy's
/// `<ExpirySettings>` or the stage TTL applies. This is the lifetime, not the remaining
/// freshness: `Age` is not subtracted. Does not look at `no-store`/`private`: see
/// [`cache_control`].
pub fn response_header_ttl(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let cc = cache_control(headers);
    if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(secs));
    }
    let expires = headers.get(EXPIRES)?;
    let Some(expires) = parse_http_date(&String::from_utf8_lossy(expires.as_bytes())) else {
        return Some(Duration::ZERO);
    };
    let date = headers
        .get(DATE)
        .and_then(|d| parse_http_date(&String::from_utf8_lossy(d.as_bytes())))
        .unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// What the upstream's `Cache-Control` says, for deciding whether (and how long) a shared cache
/// may keep a response. `no_store` or `private` forbid storing; `no_cache` allows storing but
/// every reuse must be revalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheControlFlags {
    /// `no-store`: never store.
    pub no_store: bool,
    /// `private` (with or without field names): not for shared caches.
    pub private: bool,
    /// `no-cache` (with or without field names): store, but revalidate before each reuse.
    pub no_cache: bool,
    /// `must-revalidate` (or `proxy-revalidate`, its shared-cache twin): never serve stale.
    pub must_revalidate: bool,
    /// `s-maxage` seconds.
    pub s_maxage: Option<u64>,
    /// `max-age` seconds.
    pub max_age: Option<u64>,
    /// `stale-while-revalidate` seconds (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` seconds (RFC 5861).
    pub stale_if_error: Option<u64>,
}

impl CacheControlFlags {
    /// Whether a shared cache must not store the response (`no-store` or `private`).
    pub fn forbids_shared_storage(&self) -> bool {
        self.no_store || self.private
    }
}

/// Parses every `Cache-Control` field line as one comma-separated list (RFC 9110 §5.3).
/// Directive names are case-insensitive; quoted values are tolerated (`max-age="60"`), including
/// quoted field-name lists containing commas (`private="a, b"`). Unknown directives are ignored;
/// a malformed number (`max-age=abc`, `max-age=-1`) ignores that directive, while a number too
/// large to represent counts as 2^31 (RFC 9111 §1.2.2). A duplicated directive is resolved to the
/// most restrictive value (RFC 9111 §4.2.1 allows this or "stale"): the smallest number wins.
pub fn cache_control(headers: &HeaderMap) -> CacheControlFlags {
    let mut flags = CacheControlFlags::default();
    for line in headers.get_all(CACHE_CONTROL) {
        let line = String::from_utf8_lossy(line.as_bytes());
        for directive in split_list(&line) {
            apply_directive(&mut flags, directive);
        }
    }
    flags
}

/// Records one `name[=value]` directive.
fn apply_directive(flags: &mut CacheControlFlags, directive: &str) {
    let (name, value) = match directive.split_once('=') {
        Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
        None => (directive.trim(), None),
    };
    let seconds = || value.as_deref().and_then(parse_delta_seconds);
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "no-store" => flags.no_store = true,
        "private" => flags.private = true,
        "no-cache" => flags.no_cache = true,
        "must-revalidate" | "proxy-revalidate" => flags.must_revalidate = true,
        "s-maxage" => keep_smallest(&mut flags.s_maxage, seconds()),
        "max-age" => keep_smallest(&mut flags.max_age, seconds()),
        "stale-while-revalidate" => keep_smallest(&mut flags.stale_while_revalidate, seconds()),
        "stale-if-error" => keep_smallest(&mut flags.stale_if_error, seconds()),
        _ => {}
    }
}

/// Keeps the smaller of the current and the new value (the most restrictive).
fn keep_smallest(slot: &mut Option<u64>, new: Option<u64>) {
    if let Some(new) = new {
        *slot = Some(slot.map_or(new, |old| old.min(new)));
    }
}

/// RFC 9111 delta-seconds: ASCII digits only; overflow saturates at 2^31.
fn parse_delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX)),
    )
}

/// Strips one pair of surrounding double quotes and backslash escapes inside them.
fn unquote(s: &str) -> Cow<'_, str> {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return Cow::Borrowed(s);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            c
        });
    }
    Cow::Owned(out)
}

/// Splits a comma-separated list, ignoring commas inside quoted strings; empty elements dropped.
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(s.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(s.get(start..).unwrap_or_default());
    items.into_iter().map(str::trim).filter(|i| !i.is_empty())
}

/// Caps a TTL at the stage maximum (AWS API Gateway's 3600 s, `MAX_TTL_SECS`): no policy or
/// upstream header can keep an entry longer.
pub fn cap(ttl: Duration) -> Duration {
    ttl.min(Duration::from_secs(MAX_TTL_SECS))
}

/// Parses an HTTP date (RFC 9110 §5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, and the
/// obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`
/// forms. Lenient where harmless (weekday not checked against the date, names case-insensitive,
/// `UTC` accepted for `GMT`, a leap second 60 accepted). RFC 850 two-digit years 70–99 are 19xx,
/// 00–69 are 20xx. `None` when invalid.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (weekday, rest) = match s.split_once(',') {
        Some((weekday, rest)) => (weekday, rest),
        None => return parse_asctime(s),
    };
    if weekday.is_empty() || !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut tokens = rest.split_ascii_whitespace();
    let first = tokens.next()?;
    let (year, month, day, time) = if first.contains('-') {
        // RFC 850: 06-Nov-94 08:49:37 GMT
        let mut dmy = first.split('-');
        let day = digits(dmy.next()?, 1, 2)?;
        let month = month_number(dmy.next()?)?;
        let year = two_digit_year(digits(dmy.next()?, 2, 2)?);
        if dmy.next().is_some() {
            return None;
        }
        (year, month, day, tokens.next()?)
    } else {
        // IMF-fixdate: 06 Nov 1994 08:49:37 GMT
        let day = digits(first, 1, 2)?;
        let month = month_number(tokens.next()?)?;
        let year = i64::from(digits(tokens.next()?, 4, 4)?);
        (year, month, day, tokens.next()?)
    };
    let zone = tokens.next()?;
    if !(zone.eq_ignore_ascii_case("GMT") || zone.eq_ignore_ascii_case("UTC")) {
        return None;
    }
    if tokens.next().is_some() {
        return None;
    }
    date_time(year, month, day, time)
}

/// asctime: `Sun Nov  6 08:49:37 1994`.
fn parse_asctime(s: &str) -> Option<SystemTime> {
    let mut tokens = s.split_ascii_whitespace();
    let weekday = tokens.next()?;
    if !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let month = month_number(tokens.next()?)?;
    let day = digits(tokens.next()?, 1, 2)?;
    let time = tokens.next()?;
    let year = i64::from(digits(tokens.next()?, 4, 4)?);
    if tokens.next().is_some() {
        return None;
    }
    date_time(year, month, day, time)
}

/// RFC 850 years: 70–99 → 19xx, 00–69 → 20xx.
fn two_digit_year(yy: u32) -> i64 {
    let yy = i64::from(yy);
    if yy >= 70 {
        1900 + yy
    } else {
        2000 + yy
    }
}

/// `Jan`…`Dec` (case-insensitive) → 1…12.
fn month_number(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(s))?;
    u32::try_from(index).ok().map(|i| i + 1)
}

/// A validated UTC calendar date and `hh:mm:ss` time as a `SystemTime`.
fn date_time(year: i64, month: u32, day: u32, time: &str) -> Option<SystemTime> {
    if !valid_date(year, month, day) {
        return None;
    }
    let mut hms = time.split(':');
    let hour = digits(hms.next()?, 2, 2)?;
    let minute = digits(hms.next()?, 2, 2)?;
    let second = digits(hms.next()?, 2, 2)?;
    if hms.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second);
    unix_time(secs)
}

/// Seconds since the epoch (possibly negative) as a `SystemTime`.
fn unix_time(secs: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// Whether `year-month-day` exists in the proleptic Gregorian calendar.
fn valid_date(year: i64, month: u32, day: u32) -> bool {
    (1..=12).contains(&month) && day >= 1 && day <= crate::util::days_in_month(year, month)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm; the inverse of the one in
/// `crate::util::http_date`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use http::HeaderValue;

    use super::*;
    use crate::diag::Pos;
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
            pos: Pos::default(),
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
        // A malformed max-age is ignored: Expires decides.
        let h = headers(&[
            ("cache-control", "max-age=abc"),
            ("expires", &http_date(at(NOON + 30))),
        ]);
        assert_eq!(response_header_ttl(&h, now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn max_age_zero_private() {
        let h = headers(&[("cache-control", "max-age=0, private")]);
        let cc = cache_control(&h);
        assert!(cc.private);
        assert!(cc.forbids_shared_storage());
        assert_eq!(cc.max_age, Some(0));
        assert_eq!(response_header_ttl(&h, at(NOON)), Some(Duration::ZERO));
    }

    #[test]
    fn cache_control_directives() {
        let cc = cache_control(&headers(&[(
            "cache-control",
            "No-Store, NO-CACHE=\"set-cookie\", Must-Revalidate, S-MaxAge=\"30\", \
             stale-while-revalidate=10, stale-if-error=20, private=\"a, b\", x-ext=\"q,r\"",
        )]));
        assert_eq!(
            cc,
            CacheControlFlags {
                no_store: true,
                private: true,
                no_cache: true,
                must_revalidate: true,
                s_maxage: Some(30),
                max_age: None,
                stale_while_revalidate: Some(10),
                stale_if_error: Some(20),
            }
        );
        assert!(cache_control(&headers(&[("cache-control", "proxy-revalidate")])).must_revalidate);
        assert_eq!(
            cache_control(&HeaderMap::new()),
            CacheControlFlags::default()
        );
        assert!(!CacheControlFlags::default().forbids_shared_storage());
    }

    #[test]
    fn multiple_cache_control_headers() {
        let h = headers(&[
            ("cache-control", "public"),
            ("cache-control", "max-age=300"),
            ("cache-control", "no-cache"),
        ]);
        let cc = cache_control(&h);
        assert_eq!(cc.max_age, Some(300));
        assert!(cc.no_cache);
        assert!(!cc.private);
    }

    #[test]
    fn duplicate_directives_keep_most_restrictive() {
        let h = headers(&[
            ("cache-control", "max-age=300, max-age=60"),
            ("cache-control", "max-age=120, s-maxage=10, s-maxage=5"),
        ]);
        let cc = cache_control(&h);
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(5));
    }

    #[test]
    fn malformed_cache_control() {
        let cc = cache_control(&headers(&[(
            "cache-control",
            "max-age=-1, s-maxage=1.5, stale-if-error=, stale-while-revalidate=abc, ,,, =, max-age",
        )]));
        assert_eq!(cc, CacheControlFlags::default());
        // Too large to represent: 2^31 (RFC 9111 §1.2.2), not ignored.
        let cc = cache_control(&headers(&[(
            "cache-control",
            "max-age=99999999999999999999999, s-maxage=4294967296",
        )]));
        assert_eq!(cc.max_age, Some(DELTA_SECONDS_MAX));
        assert_eq!(cc.s_maxage, Some(DELTA_SECONDS_MAX));
        // Unterminated quote: the rest is one element, nothing panics.
        let cc = cache_control(&headers(&[("cache-control", "max-age=\"5, private")]));
        assert!(!cc.private);
        // Non-UTF-8 bytes are tolerated.
        let mut h = HeaderMap::new();
        h.append(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=7, \xffx").unwrap(),
        );
        assert_eq!(cache_control(&h).max_age, Some(7));
    }

    #[test]
    fn unquote_and_split() {
        assert_eq!(unquote("\"a\\\"b\""), "a\"b");
        assert_eq!(unquote("\"ab\""), "ab");
        assert_eq!(unquote("\"ab"), "\"ab");
        assert_eq!(unquote("\"\\"), "\"\\");
        let items: Vec<&str> = split_list("a, b=\"x,\\\"y\", c").collect();
        assert_eq!(items, ["a", "b=\"x,\\\"y\"", "c"]);
    }

    #[test]
    fn http_date_formats() {
        let expected = Some(at(784_111_777));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(
            parse_http_date("  sun, 06 nov 1994 08:49:37 utc "),
            expected
        );
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
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
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
}
