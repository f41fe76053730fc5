//! Small helpers shared by several modules.

/// Levenshtein distance, for "did you mean" hints (inputs are short names).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word` within distance 3 (or equal ignoring case).
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(word) {
                0
            } else {
                edit_distance(word, c)
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The `Content-Length` of `headers` as a number; `None` when absent or not a plain decimal
/// (one parse for every place that sizes, frames or bounds a body by it).
pub fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Normalises a request path the way the gateway routes, keys and forwards it: merges repeated
/// slashes and resolves `.` and `..` segments (also written `%2e`), keeping a trailing slash.
/// Returns `None` when `..` climbs above the root, which a request must never do. Other escapes,
/// including `%2F`, are left as written (they are not separators).
pub fn normalize_path(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let dot = |seg: &str| seg == "." || seg.eq_ignore_ascii_case("%2e");
    let dotdot = |seg: &str| {
        seg.len() >= 2
            && seg.len() <= 6
            && matches!(
                seg.to_ascii_lowercase().as_str(),
                ".." | "%2e." | ".%2e" | "%2e%2e"
            )
    };
    let clean = !path.contains("//") && !path.split('/').any(|s| dot(s) || dotdot(s));
    if clean && path.starts_with('/') {
        return Some(std::borrow::Cow::Borrowed(path));
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        if seg.is_empty() {
            trailing = i == last && i > 0;
            continue;
        }
        if dot(seg) {
            trailing = i == last;
        } else if dotdot(seg) {
            out.pop()?;
            trailing = i == last;
        } else {
            out.push(seg);
            trailing = false;
        }
    }
    let mut norm = String::with_capacity(path.len());
    for seg in &out {
        norm.push('/');
        norm.push_str(seg);
    }
    if norm.is_empty() || trailing {
        norm.push('/');
    }
    Some(std::borrow::Cow::Owned(norm))
}

/// The raw (still encoded) values of query parameter `name` (compared decoded), in order.
pub fn query_values<'q>(query: &'q str, name: &'q str) -> impl Iterator<Item = &'q str> + 'q {
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let matches = if k.contains(['%', '+']) {
            percent_decode(k) == name
        } else {
            k == name
        };
        matches.then_some(v)
    })
}

/// The distinct parameter names of a query string (or form body), decoded, in order of first
/// appearance; empty names (`&&`, `=x`) are skipped.
pub fn query_names(query: &str) -> Vec<String> {
    // A set beside the list: a 64 KiB form can hold thousands of names.
    let mut seen = std::collections::HashSet::new();
    let mut names = Vec::new();
    for pair in query.split('&') {
        let k = pair.split_once('=').map_or(pair, |(k, _)| k);
        if k.is_empty() {
            continue;
        }
        let k = percent_decode(k);
        if seen.insert(k.clone()) {
            names.push(k);
        }
    }
    names
}

/// How many times query parameter `name` appears, its name compared without regard to ASCII
/// case (some targets — ASP.NET — read `V` as `v`, so both spellings count as a repeat).
pub fn query_param_count(query: &str, name: &str) -> usize {
    query
        .split('&')
        .filter(|pair| {
            let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
            percent_decode(k).eq_ignore_ascii_case(name)
        })
        .count()
}

/// Decodes `%XX` escapes and `+` as space (query-string convention). Invalid escapes stay as
/// written; invalid UTF-8 is replaced, never a panic.
pub fn percent_decode(s: &str) -> String {
    if !s.contains(['%', '+']) {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A random (version 4) UUID. Randomness comes from the standard library's per-process random
/// hasher keys mixed with a counter and the clock: unique, not cryptographic (it is only used
/// for Apigee's `system.uuid`, never for secrets).
pub fn uuid_v4() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut words = [0u64; 2];
    for (i, w) in words.iter_mut().enumerate() {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        *w = h.finish();
    }
    let b = (u128::from(words[0]) << 64) | u128::from(words[1]);
    let b = (b & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `year` is a leap year in the proleptic Gregorian calendar.
pub fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A UTC calendar time, broken down (for HTTP dates and Apigee's `system.time.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–59.
    pub second: u32,
    /// Millisecond, 0–999.
    pub millisecond: u32,
    /// Days since 1970-01-01 (a Thursday).
    pub days: u64,
}

/// Breaks `t` down into a UTC calendar time.
pub fn civil(t: std::time::SystemTime) -> Civil {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for every date after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month: month as u32,
        day: day as u32,
        hour: (rem / 3600) as u32,
        minute: ((rem % 3600) / 60) as u32,
        second: (rem % 60) as u32,
        millisecond: since.subsec_millis(),
        days,
    }
}

/// Formats `t` as an HTTP date (RFC 9110 IMF-fixdate), e.g. `Tue, 24 Nov 2026 06:38:25 GMT`.
pub fn http_date(t: std::time::SystemTime) -> String {
    let c = civil(t);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(c.days % 7) as usize],
        c.day,
        MONTHS[(c.month.saturating_sub(1) % 12) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Header names listed in `Connection` (lower case).
pub fn connection_listed(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `Connection` names a header other than the standard hop-by-hop ones: the client
/// asks the gateway to drop an end-to-end header (possibly a cache key input) before
/// forwarding, which would let the stored response differ from what its key describes.
pub fn connection_drops_end_to_end(headers: &http::HeaderMap) -> bool {
    connection_listed(headers).iter().any(|n| {
        !matches!(
            n.as_str(),
            "close" | "keep-alive" | "upgrade" | "te" | "trailer"
        )
    })
}

/// `redis://user:secret@host:6379/0?password=x` → `redis://***@host:6379/0?***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, _)) => (b, "?***"),
        None => (url, ""),
    };
    let redacted = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &base[..s], &base[at + 1..]),
        _ => base.to_owned(),
    };
    format!("{redacted}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            did_you_mean("ExcludeErrorRespons", ["ExcludeErrorResponse", "Scope"]),
            Some("ExcludeErrorResponse")
        );
        assert_eq!(did_you_mean("scope", ["Scope"]), Some("Scope"));
        assert_eq!(did_you_mean("zzzzzzzz", ["Scope"]), None);
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let (a, b) = (uuid_v4(), uuid_v4());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn http_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_502_305);
        assert_eq!(http_date(t), "Tue, 24 Nov 2026 06:38:25 GMT");
        assert_eq!(
            http_date(std::time::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn query_values_match_decoded_names_in_order() {
        let q = "v=1&x=0&%76=2&v&v+w=3";
        assert_eq!(query_values(q, "v").collect::<Vec<_>>(), ["1", "2", ""]);
        assert_eq!(query_values(q, "v w").collect::<Vec<_>>(), ["3"]);
        assert_eq!(query_param_count(q, "v"), 3);
        assert_eq!(query_param_count("v=1&V=2", "v"), 2);
        assert_eq!(query_param_count("", "v"), 0);
        assert_eq!(query_param_count("vv=1", "v"), 0);
        assert_eq!(query_names(q), ["v", "x", "v w"]);
        assert_eq!(query_names("&=x&a+b=1&a%20b=2"), ["a b"]);
        assert!(query_names("").is_empty());
    }

    #[test]
    fn path_normalisation() {
        assert_eq!(
            normalize_path("/prod/items/1").as_deref(),
            Some("/prod/items/1")
        );
        assert_eq!(
            normalize_path("/prod//items/./1").as_deref(),
            Some("/prod/items/1")
        );
        assert_eq!(
            normalize_path("/prod/items/../items/1").as_deref(),
            Some("/prod/items/1")
        );
        assert_eq!(
            normalize_path("/prod/%2e%2e/dev/x").as_deref(),
            Some("/dev/x")
        );
        assert_eq!(
            normalize_path("/prod/items/").as_deref(),
            Some("/prod/items/")
        );
        assert_eq!(
            normalize_path("/prod/items/.").as_deref(),
            Some("/prod/items/")
        );
        assert_eq!(normalize_path("/").as_deref(), Some("/"));
        assert_eq!(normalize_path("/a/..").as_deref(), Some("/"));
        assert_eq!(normalize_path("/prod/../../etc/passwd"), None);
        assert_eq!(normalize_path("/.."), None);
        assert_eq!(normalize_path("/a%2Fb").as_deref(), Some("/a%2Fb"));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }
}
