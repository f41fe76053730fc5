//! TTL arithmetic: a policy's `<ExpirySettings>`, the upstream's freshness headers (RFC 9111),
//! and the caps (AWS's 3600 s for stage caching; the policy maximum, see `POLICY_MAX_TTL_SECS`).
//!
//! Everything here is pure: the current time is a parameter, so every branch is testable
//! (`parse_http_date` reads the clock for an rfc850 date's century; `parse_http_date_at` takes it).
//! cachegate interprets `<ExpiryDate>` and `<TimeOfDay>` in UTC (Apigee uses the time zone of the
//! machine the policy runs on, which a gateway should not depend on).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AGE, DATE, EXPIRES};
use http::HeaderMap;

use crate::runtime::cache_control::delta_seconds;
pub use crate::runtime::cache_control::{cache_control, CacheControlFlags};
use crate::runtime::flow::Variables;

/// A calendar date from `<ExpiryDate>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryDate {
    /// 1–12.
    pub month: u8,
    /// 1–31 (checked against the month).
    pub day: u8,
    /// Four-digit year.
    pub year: u16,
}

/// A time of day from `<TimeOfDay>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
}

/// `<ExpirySettings>` compiled: how an entry expires (no parse positions; `config` compiles it
/// from the policy model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// `<TimeoutInSeconds>`: seconds after storing.
    Timeout(ValueOrRef<u64>),
    /// `<ExpiryDate>` `mm-dd-yyyy`: the end of that day (UTC).
    Date(ValueOrRef<ExpiryDate>),
    /// `<TimeOfDay>` `hh:mm:ss`: daily at that time (UTC).
    TimeOfDay(ValueOrRef<TimeOfDay>),
}

/// A value written literally or read from a flow variable, the literal being the fallback when
/// the variable does not resolve (Apigee's `<TimeoutInSeconds ref="x">300</…>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueOrRef<T> {
    /// `ref` attribute (a flow variable), if any.
    pub reference: Option<String>,
    /// The literal value, if any.
    pub literal: Option<T>,
}

/// AWS API Gateway's default cache TTL; also the TTL of a policy without ExpirySettings on a
/// stage whose own TTL is 0 (see `engine::plan::ttl_for`).
pub const DEFAULT_TTL_SECS: u64 = 300;
/// AWS API Gateway's maximum cache TTL: it bounds stage caching (`[cache] ttl`, overrides,
/// `mode = "http"`), not Apigee policies.
pub const MAX_TTL_SECS: u64 = 3600;
/// Apigee's maximum TTL (30 days).
pub const APIGEE_MAX_TTL_SECS: u64 = 2_592_000;
/// The longest TTL an Apigee policy gets (ExpirySettings, or the response's headers with
/// `UseResponseCacheHeaders`): Apigee's 30 days. Purge records (`cache::purge`) must outlive
/// every entry they may cover, so a cache that such a policy writes to keeps its records that
/// long; every other cache keeps them a day and two hours ([`may_exceed_hour`]).
pub const POLICY_MAX_TTL_SECS: u64 = APIGEE_MAX_TTL_SECS;

/// Whether ExpirySettings may give a TTL over an hour: a literal over 3600 s, a `ref` (its value
/// is only known per request), an ExpiryDate, a TimeOfDay (up to a day). Without ExpirySettings
/// the stage TTL applies, which is at most an hour.
pub fn may_exceed_hour(expiry: Option<&Expiry>) -> bool {
    match expiry {
        None => false,
        Some(Expiry::Timeout(v)) => {
            v.reference.is_some() || v.literal.is_some_and(|s| s > MAX_TTL_SECS)
        }
        Some(Expiry::Date(_) | Expiry::TimeOfDay(_)) => true,
    }
}

/// Seconds in a day.
const DAY_SECS: u64 = 86_400;

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

/// Time left at `now` until the end of `date` (UTC), for validation's warnings.
pub fn date_ttl_at(date: ExpiryDate, now: SystemTime) -> Option<Duration> {
    date_ttl(date, now)
}

/// Whether the whole day of `date` (UTC) is over at `now`: an entry given that ExpiryDate would
/// expire as soon as it is stored (validation warns).
pub fn date_has_passed(date: ExpiryDate, now: SystemTime) -> bool {
    date_ttl(date, now).is_some_and(|left| left.is_zero())
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
/// §4.2.1): see [`explicit_lifetime`], with the response's own `Cache-Control`.
pub fn response_header_ttl(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    explicit_lifetime(&cache_control(headers), headers, now)
}

/// Explicit freshness lifetime (RFC 9111 §4.2.1): `s-maxage` (a shared cache's own) over
/// `max-age` over `Expires` minus `Date` (or minus `now` when `Date` is missing or invalid).
/// `cc` is what the response's directives say — its `Cache-Control`, or a targeted field
/// (RFC 9213), in which case `Expires` is ignored. An `Expires` that is not an HTTP-date means
/// "already expired" (§5.3) → `Some(ZERO)`; of several `Expires` lines the first counts (as for
/// `Age`, §4.2.1). `None` when nothing applies, so the policy's `<ExpirySettings>`, the stage
/// TTL or the heuristic decides. This is the lifetime, not the remaining freshness: `Age` is
/// not subtracted. Does not look at `no-store`/`private`.
pub fn explicit_lifetime(
    cc: &CacheControlFlags,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(secs));
    }
    if cc.targeted {
        return None;
    }
    let expires = headers.get(EXPIRES)?;
    let Some(expires) = parse_http_date_at(&String::from_utf8_lossy(expires.as_bytes()), now)
    else {
        return Some(Duration::ZERO);
    };
    let date = headers
        .get(DATE)
        .and_then(|d| parse_http_date_at(&String::from_utf8_lossy(d.as_bytes()), now))
        .unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The `Age` a response arrived with (RFC 9111 §5.1), in seconds: the first field line, and of
/// a list (`7200, 0`) its first member — a recipient cannot tell two lines from one list —
/// trimmed; delta-seconds only (digits; over 2^31 counts as 2^31). `None` (the value is ignored,
/// as §5.1 says and the public cache-tests expect) for anything else: `-5`, `1.5`, `abc`,
/// `7200;x=y`.
pub fn age_value(headers: &HeaderMap) -> Option<u64> {
    let line = headers.get(AGE)?.as_bytes();
    let first = line.split(|&b| b == b',').next().unwrap_or_default();
    let first = std::str::from_utf8(first).ok()?;
    delta_seconds(first.trim_matches([' ', '\t']))
}

/// Caps a stage-caching TTL at AWS API Gateway's 3600 s (`MAX_TTL_SECS`): no stage setting or
/// upstream header can keep an entry of stage caching longer.
pub fn cap(ttl: Duration) -> Duration {
    ttl.min(Duration::from_secs(MAX_TTL_SECS))
}

/// Caps the TTL an Apigee policy asks for (`POLICY_MAX_TTL_SECS`).
pub fn cap_policy(ttl: Duration) -> Duration {
    ttl.min(Duration::from_secs(POLICY_MAX_TTL_SECS))
}

/// Parses an HTTP-date exactly as RFC 9110 §5.6.7 defines it: IMF-fixdate
/// `Sun, 06 Nov 1994 08:49:37 GMT` (single spaces, two-digit day, four-digit year, `GMT` and
/// nothing else), and the obsolete forms a recipient must accept, rfc850
/// `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994` (day `SP DIGIT` or
/// two digits). Names are matched case-insensitively (RFC 9111 §4.2); the weekday must be a
/// weekday name but is not checked against the date; a leap second 60 is accepted. An rfc850
/// two-digit year more than 50 years ahead of now is the previous century's. Anything else —
/// `UTC` or another zone, doubled spaces, a one-digit hour, dashes in an IMF date — is `None`
/// (for `Expires`: already expired, RFC 9111 §5.3). Not for Apigee's `<ExpiryDate>`, which has
/// its own format (`parse_expiry_date`).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    parse_http_date_at(s, SystemTime::now())
}

/// [`parse_http_date`] with the current time a parameter (it decides an rfc850 date's century).
pub fn parse_http_date_at(s: &str, now: SystemTime) -> Option<SystemTime> {
    let s = s.trim_matches([' ', '\t']);
    if !s.is_ascii() {
        return None;
    }
    if let Some((day_name, rest)) = s.split_once(", ") {
        if day_name.len() == 3 {
            imf_fixdate(day_name, rest)
        } else {
            rfc850(day_name, rest, now)
        }
    } else {
        asctime(s)
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` after the day name and `", "`.
fn imf_fixdate(day_name: &str, rest: &str) -> Option<SystemTime> {
    // "06 Nov 1994 08:49:37 GMT"
    let b = rest.as_bytes();
    if b.len() != 24 || [b[2], b[6], b[11], b[20]] != [b' '; 4] {
        return None;
    }
    short_day(day_name)?;
    gmt(&rest[21..])?;
    let day = digits(&rest[0..2], 2, 2)?;
    let month = month_number(&rest[3..6])?;
    let year = i64::from(digits(&rest[7..11], 4, 4)?);
    date_time(year, month, day, &rest[12..20])
}

/// `Sunday, 06-Nov-94 08:49:37 GMT` after the day name and `", "`.
fn rfc850(day_name: &str, rest: &str, now: SystemTime) -> Option<SystemTime> {
    // "06-Nov-94 08:49:37 GMT"
    const LONG: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let b = rest.as_bytes();
    if b.len() != 22 || [b[2], b[6], b[9], b[18]] != [b'-', b'-', b' ', b' '] {
        return None;
    }
    if !LONG.iter().any(|d| d.eq_ignore_ascii_case(day_name)) {
        return None;
    }
    gmt(&rest[19..])?;
    let day = digits(&rest[0..2], 2, 2)?;
    let month = month_number(&rest[3..6])?;
    let year = two_digit_year(digits(&rest[7..9], 2, 2)?, now);
    date_time(year, month, day, &rest[10..18])
}

/// `Sun Nov  6 08:49:37 1994` (or `Nov 06`).
fn asctime(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 24 || [b[3], b[7], b[10], b[19]] != [b' '; 4] {
        return None;
    }
    short_day(&s[0..3])?;
    let month = month_number(&s[4..7])?;
    let day = match &s[8..10] {
        padded if padded.starts_with(' ') => digits(&padded[1..], 1, 1)?,
        two => digits(two, 2, 2)?,
    };
    let year = i64::from(digits(&s[20..24], 4, 4)?);
    date_time(year, month, day, &s[11..19])
}

/// `Mon`…`Sun`, case-insensitive.
fn short_day(s: &str) -> Option<()> {
    const SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    SHORT
        .iter()
        .any(|d| d.eq_ignore_ascii_case(s))
        .then_some(())
}

/// The only zone an HTTP-date has (case-insensitive, RFC 9111 §4.2).
fn gmt(s: &str) -> Option<()> {
    s.eq_ignore_ascii_case("GMT").then_some(())
}

/// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the future is the
/// most recent past year with those digits. The year chosen is the one with those last two
/// digits in the 100 years up to 50 years from now.
fn two_digit_year(yy: u32, now: SystemTime) -> i64 {
    let current = year_of(now);
    let year = current - current.rem_euclid(100) + i64::from(yy);
    if year > current + 50 {
        year - 100
    } else if year <= current - 50 {
        year + 100
    } else {
        year
    }
}

/// The UTC calendar year of `t` (a clock before 1970 counts as 1970).
fn year_of(t: SystemTime) -> i64 {
    let days = t.duration_since(UNIX_EPOCH).map_or(0, |d| {
        i64::try_from(d.as_secs() / DAY_SECS).unwrap_or(i64::MAX / 2)
    });
    // 366-day years give a lower bound; step up to the year that contains `days`.
    let mut year = 1970 + days / 366;
    while days_from_civil(year + 1, 1, 1) <= days {
        year += 1;
    }
    year
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
#[path = "ttl_tests.rs"]
mod tests;
