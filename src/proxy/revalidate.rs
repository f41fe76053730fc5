//! One exchange with the target as the cache sees it: when it was sent and answered (for the
//! RFC 9111 §4.2.3 age of what is stored), and the 304 that revalidated a stored response,
//! whose header fields update the stored ones (RFC 9111 §3.2, §4.3.4).
//!
//! Pingora merges only five fields of a 304 (`Cache-Control`, `Expires`, `ETag`,
//! `CDN-Cache-Control`, `Cache-Tag`) into the stored header, so a 304's new `X-Rate-Limit`,
//! `Content-Type` or `Date` would be lost and the old values served for the entry's lifetime.
//! The proxy keeps the 304 here when it arrives (`upstream_response_filter`) and builds the full
//! merge when pingora asks whether to store it (`response_cache_filter`).

use std::time::SystemTime;

use pingora::http::ResponseHeader;

use crate::cache::pingora_bridge::{CacheMeta, CachePhase};
use crate::runtime::age;

/// Fields of a 304 that never replace the stored ones: the stored body's own framing and
/// encoding (the 304 describes no body), fields that are never stored (hop-by-hop ones, see
/// `hop_by_hop`, and `Proxy-Authorization`, RFC 9111 §3.1), `Vary` (pingora keeps the entry's variance across a 304, so the
/// stored `Vary` must stay what the variance was computed from) and `Set-Cookie` (never
/// replayed). The 304's `Age` is kept: the merged header's age is the 304's, and the stored
/// `Age` is dropped when the entry is stored.
const NOT_UPDATED: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "transfer-encoding",
    "proxy-authorization",
    "vary",
    "set-cookie",
];

/// Timing and the revalidating 304 of the current request's exchange with its target.
#[derive(Default)]
pub(super) struct Exchange {
    sent: Option<SystemTime>,
    received: Option<SystemTime>,
    not_modified: Option<ResponseHeader>,
    /// The stored validators, when a 304 with another strong `ETag` was refused: pingora still
    /// serves the stored body, which must go out with its own validators, not the 304's.
    refused: Option<Validators>,
}

/// A stored response's `ETag` and `Last-Modified`.
struct Validators {
    etag: Option<http::HeaderValue>,
    last_modified: Option<http::HeaderValue>,
}

/// What the stored header becomes after the target's answer.
pub(super) enum Merge {
    /// Not a revalidation: the response is stored as it is.
    None,
    /// A 304 revalidated the stored response: this header replaces the stored one.
    Merged(Box<ResponseHeader>),
    /// The 304 carries a strong validator the stored response does not have: it validated some
    /// other response, so the stored one must not be updated (RFC 9111 §4.3.4).
    Mismatch,
}

impl Exchange {
    /// The request is on its way to the target.
    pub(super) fn sent(&mut self) {
        self.sent = Some(SystemTime::now());
        self.received = None;
        self.not_modified = None;
    }

    /// The target's response head arrived (a 304 is kept for the merge).
    pub(super) fn received(&mut self, resp: &ResponseHeader) {
        self.received = Some(SystemTime::now());
        if resp.status.as_u16() == 304 {
            self.not_modified = Some(resp.clone());
        }
    }

    /// The times age is computed from, once both are known.
    pub(super) fn timing(&self) -> Option<age::Exchange> {
        Some(age::Exchange {
            request_time: self.sent?,
            response_time: self.received?,
        })
    }

    /// The header to store when pingora offers `stored`'s entry for an update: the stored header
    /// updated with every field of the 304 that arrived, if one did.
    pub(super) fn merge(&mut self, stored: Option<&CacheMeta>) -> Merge {
        let (Some(not_modified), Some(stored)) = (self.not_modified.take(), stored) else {
            return Merge::None;
        };
        let stored = stored.response_header();
        if strong_mismatch(stored, &not_modified) {
            self.refused = Some(Validators {
                etag: stored.headers.get(http::header::ETAG).cloned(),
                last_modified: stored.headers.get(http::header::LAST_MODIFIED).cloned(),
            });
            return Merge::Mismatch;
        }
        match merged(stored, &not_modified) {
            Ok(h) => Merge::Merged(Box::new(h)),
            Err(e) => {
                tracing::debug!(error = %e, "Could not merge a 304 into the stored header.");
                Merge::Mismatch
            }
        }
    }
}

/// RFC 9111 §3.2: every field of the 304 replaces the stored field of that name, except those in
/// [`NOT_UPDATED`]; stored fields the 304 does not mention stay.
fn merged(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> pingora::Result<ResponseHeader> {
    let mut header = stored.clone();
    // The stored response's age and date describe the old exchange; the 304's (or, when it
    // sends no `Date`, the time it arrived: RFC 9110 §6.6.1) describe the revalidated one.
    header.remove_header(&http::header::AGE);
    if !not_modified.headers.contains_key(http::header::DATE) {
        header.insert_header(
            http::header::DATE,
            crate::util::http_date(SystemTime::now()),
        )?;
    }
    let names: Vec<&http::HeaderName> = {
        let mut seen: Vec<&http::HeaderName> = Vec::new();
        for name in not_modified.headers.keys() {
            let kept = NOT_UPDATED.contains(&name.as_str()) || super::hop_by_hop::always(name);
            if !kept && !seen.contains(&name) {
                seen.push(name);
            }
        }
        seen
    };
    for name in names {
        header.remove_header(name);
        for value in not_modified.headers.get_all(name) {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    Ok(header)
}

/// Whether the 304's strong `ETag` differs from the stored response's (a weak or missing one in
/// the 304 says nothing against it).
fn strong_mismatch(stored: &ResponseHeader, not_modified: &ResponseHeader) -> bool {
    let etag = |h: &ResponseHeader| {
        h.headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    match etag(not_modified) {
        Some(new) if !new.starts_with("W/") => etag(stored).as_deref() != Some(new.as_str()),
        _ => false,
    }
}

impl Exchange {
    /// Completes a response served after a revalidation. Its `Age`: pingora adds `Age` only to
    /// responses served without contacting the target, so a revalidated one gets its meta's age
    /// here (the 304's own age, counted from its arrival). And after a refused 304 (another
    /// strong `ETag`), the stored body pingora serves keeps its own validators, so a client never
    /// pairs it with the 304's `ETag` and revalidates the wrong body later.
    pub(super) fn answered(
        &mut self,
        phase: CachePhase,
        meta: Option<&CacheMeta>,
        resp: &mut ResponseHeader,
    ) -> pingora::Result<()> {
        match (phase, meta) {
            (CachePhase::Revalidated, Some(meta)) => {
                resp.insert_header(http::header::AGE, meta.age().as_secs())?;
            }
            (CachePhase::RevalidatedNoCache(_), _) => {
                resp.remove_header(&http::header::AGE);
                if let Some(v) = self.refused.take() {
                    resp.remove_header(&http::header::ETAG);
                    resp.remove_header(&http::header::LAST_MODIFIED);
                    if let Some(etag) = v.etag {
                        resp.insert_header(http::header::ETAG, etag)?;
                    }
                    if let Some(lm) = v.last_modified {
                        resp.insert_header(http::header::LAST_MODIFIED, lm)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(status: u16, pairs: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        for (n, v) in pairs {
            h.append_header(n.to_string(), *v).unwrap();
        }
        h
    }

    fn values(h: &ResponseHeader, name: &str) -> Vec<String> {
        h.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_304_updates_every_field_it_carries_except_framing() {
        let stored = header(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-length", "10"),
                ("x-test-header", "old"),
                ("x-kept", "kept"),
                ("cache-control", "max-age=1"),
                ("etag", "\"a\""),
                ("age", "9"),
                ("vary", "accept"),
            ],
        );
        let nm = header(
            304,
            &[
                ("x-test-header", "new"),
                ("content-foo", "1"),
                ("content-foo", "2"),
                ("cache-control", "max-age=60"),
                ("content-length", "0"),
                ("etag", "\"a\""),
                ("date", "Tue, 08 Dec 2026 00:00:00 GMT"),
                ("vary", "*"),
                ("keep-alive", "timeout=5"),
            ],
        );
        let m = merged(&stored, &nm).unwrap();
        assert_eq!(m.status.as_u16(), 200);
        assert_eq!(values(&m, "x-test-header"), ["new"]);
        assert_eq!(values(&m, "content-foo"), ["1", "2"]);
        assert_eq!(values(&m, "cache-control"), ["max-age=60"]);
        assert_eq!(values(&m, "date"), ["Tue, 08 Dec 2026 00:00:00 GMT"]);
        // The stored body's framing, the variance and fields the 304 omits stay.
        assert_eq!(values(&m, "content-length"), ["10"]);
        assert_eq!(values(&m, "content-type"), ["text/plain"]);
        assert_eq!(values(&m, "x-kept"), ["kept"]);
        assert_eq!(values(&m, "vary"), ["accept"]);
        assert!(values(&m, "keep-alive").is_empty());
        // The stored Age is never carried over.
        assert!(values(&m, "age").is_empty());
        // A 304 without Date gets the time it arrived, not the old response's Date.
        let m = merged(
            &header(
                200,
                &[("date", "Mon, 01 Jan 2001 00:00:00 GMT"), ("age", "3")],
            ),
            &header(304, &[("age", "5")]),
        )
        .unwrap();
        assert_ne!(values(&m, "date"), ["Mon, 01 Jan 2001 00:00:00 GMT"]);
        assert_eq!(values(&m, "age"), ["5"]);
    }

    #[test]
    fn a_strong_etag_that_differs_does_not_update() {
        let stored = header(200, &[("etag", "\"a\"")]);
        assert!(strong_mismatch(&stored, &header(304, &[("etag", "\"b\"")])));
        assert!(!strong_mismatch(
            &stored,
            &header(304, &[("etag", "\"a\"")])
        ));
        assert!(!strong_mismatch(
            &stored,
            &header(304, &[("etag", "W/\"b\"")])
        ));
        assert!(!strong_mismatch(&stored, &header(304, &[])));
        let unvalidated = header(200, &[("last-modified", "x")]);
        assert!(strong_mismatch(
            &unvalidated,
            &header(304, &[("etag", "\"b\"")])
        ));
    }
}
