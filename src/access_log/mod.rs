//! The access log: one line per client request, in JSON or a fixed NGINX-like text format.
//!
//! The proxy builds an [`Entry`] in its `logging` hook and hands the formatted line to an
//! [`AccessLog`], whose writer thread appends it to stdout or a file (`writer.rs`); SIGUSR1
//! makes the writer reopen its file (`signal.rs`). Nothing here ever sees a request header
//! besides `User-Agent`, and query values named in `[log] mask_query` are replaced with `***`
//! before a line is built ([`mask_query`]), so no credential reaches the log.

mod signal;
mod writer;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use signal::ReopenOnSignal;
pub use writer::{reopen, AccessLog};

/// The value a masked query parameter is logged with.
pub const MASK: &str = "***";

/// One access log line's fields, in the order both formats write them. JSON field names are
/// stable (README, "Access log"); `None` is `null` in JSON and `-` in text.
#[derive(Debug, Clone, Serialize)]
pub struct Entry<'a> {
    /// When the request arrived, RFC 3339 in UTC with milliseconds.
    pub time: String,
    /// `X-Request-Id`: the client's when it sent a valid one, else generated.
    pub request_id: &'a str,
    /// The client's address and port.
    pub client: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The path and query as the client sent them, masked values replaced by `***`.
    pub path: &'a str,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub protocol: &'a str,
    /// The status sent to the client (0: none was sent).
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: usize,
    /// From the request's arrival to the end of its response, in milliseconds.
    pub duration_ms: f64,
    /// The target's address of the last attempt, when the request went upstream.
    pub upstream_addr: Option<&'a str>,
    /// The status of the target's response.
    pub upstream_status: Option<u16>,
    /// From sending the request to the target to its response header, in milliseconds.
    pub upstream_time_ms: Option<f64>,
    /// The stage that routed the request.
    pub stage: Option<&'a str>,
    /// The matched resource template (or flow label).
    pub resource: Option<&'a str>,
    /// The ProxyEndpoint flow the request selected.
    pub flow: Option<&'a str>,
    /// The `X-Cache` value (`HIT`, `MISS`, `STALE`, `REFRESH`, `BYPASS`).
    pub cache: Option<&'a str>,
    /// The `Cache-Status` value (its detail: why, ttl, stored).
    pub cache_status: Option<&'a str>,
    /// The tier that served a hit (`local`, `shared`).
    pub tier: Option<&'a str>,
    /// The first 16 hex digits of the entry's store key digest: equal on every request for the
    /// same entry, and never the readable key.
    pub key: Option<&'a str>,
    /// The client's `User-Agent`.
    pub user_agent: Option<&'a str>,
}

/// Milliseconds with microsecond precision, as logged.
pub fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// `t` as RFC 3339 in UTC with milliseconds: `2026-12-08T01:39:06.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let c = crate::util::civil(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millisecond
    )
}

impl Entry<'_> {
    /// The JSON line (with its newline).
    pub fn json(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// The text line (with its newline):
    ///
    /// `CLIENT - - [TIME] "METHOD PATH PROTOCOL" STATUS BYTES DURATION_MS rid=ID stage=STAGE
    /// resource="RESOURCE" flow="FLOW" cache=CACHE tier=TIER key=KEY upstream=ADDR
    /// upstream_status=STATUS upstream_ms=MS cache_status="DETAIL" ua="USER_AGENT"`
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(256);
        let opt = |v: Option<&str>| esc(v.unwrap_or("-")).into_owned();
        let num = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        let _ = write!(
            s,
            "{} - - [{}] \"{} {} {}\" {} {} {} rid={} stage={} resource=\"{}\" flow=\"{}\" cache={} tier={} key={} upstream={} upstream_status={} upstream_ms={} cache_status=\"{}\" ua=\"{}\"",
            esc(self.client),
            self.time,
            esc(self.method),
            esc(self.path),
            esc(self.protocol),
            self.status,
            self.bytes,
            self.duration_ms,
            esc(self.request_id),
            opt(self.stage),
            opt(self.resource),
            opt(self.flow),
            opt(self.cache),
            opt(self.tier),
            opt(self.key),
            opt(self.upstream_addr),
            num(self.upstream_status.map(|v| v.to_string())),
            num(self.upstream_time_ms.map(|v| v.to_string())),
            opt(self.cache_status),
            opt(self.user_agent),
        );
        s.push('\n');
        s
    }
}

/// A text field with `"`, `\`, control and non-ASCII bytes written as `\xHH` (as NGINX
/// escapes variables), so one field can never end its quotes or the line.
fn esc(v: &str) -> Cow<'_, str> {
    if v.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for b in v.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// `path_and_query` with the value of every query parameter named in `names` (lower case; a
/// parameter's name is compared percent-decoded and in lower case, so `API%5FKey` is `api_key`)
/// replaced by [`MASK`].
pub fn mask_query<'a>(path_and_query: &'a str, names: &[String]) -> Cow<'a, str> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return Cow::Borrowed(path_and_query);
    };
    let masked = |param: &str| {
        param.split_once('=').is_some_and(|(name, value)| {
            value != MASK && names.iter().any(|n| *n == decoded_lower(name))
        })
    };
    if names.is_empty() || !query.split('&').any(masked) {
        return Cow::Borrowed(path_and_query);
    }
    let mut out = String::with_capacity(path_and_query.len());
    out.push_str(path);
    out.push('?');
    for (i, param) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((name, _)) if masked(param) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(param),
        }
    }
    Cow::Owned(out)
}

/// A query parameter name percent-decoded (`+` is a space) and in lower case.
fn decoded_lower(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
