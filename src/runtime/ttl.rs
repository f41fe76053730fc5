//! TTL arithmetic: a policy's `<ExpirySettings>`, the upstream's freshness headers (RFC 9111),
//! and the caps (AWS's 3600 s for stage caching; the policy maximum, see `POLICY_MAX_TTL_SECS`).
//!
//! Everything here is pure: the current time is a parameter, so every branch is testable.
//! cachegate interprets `<ExpiryDate>` and `<TimeOfDay>` in UTC (Apigee uses the time zone of the
//! machine the policy runs on, which a gateway should not depend on).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{CACHE_CONTROL, DATE, EXPIRES};
use http::HeaderMap;

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
    #[cfg(test)]
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

/// Caps a stage-caching TTL at AWS API Gateway's 3600 s (`MAX_TTL_SECS`): no stage setting or
/// upstream header can keep an entry of stage caching longer.
pub fn cap(ttl: Duration) -> Duration {
    ttl.min(Duration::from_secs(MAX_TTL_SECS))
}

/// Caps the TTL an Apigee policy asks for (`POLICY_MAX_TTL_SECS`).
pub fn cap_policy(ttl: Duration) -> Duration {
    ttl.min(Duration::from_secs(POLICY_MAX_TTL_SECS))
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
#[path = "ttl_tests.rs"]
mod tests;
