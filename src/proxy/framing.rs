//! Request framing and request targets no part behind the gateway can read differently
//! (RFC 9112 §2.2, §3.2, §6; RFC 9110 §5.1, §8.6, §9.3, §17.10).
//!
//! Pingora 0.9.1 already refuses most malformed heads with `400` before any hook (non-token
//! header names, control bytes in values, differing `Content-Length`s, a final coding other than
//! `chunked`, `Transfer-Encoding` on HTTP/1.0). What it accepts and this module decides, in
//! `early_request_filter`, before routing and keying:
//!
//! | Request | Answer |
//! |---|---|
//! | control byte or space (0x00–0x20, 0x7F) in the target as received | `400` (Pingora would escape and forward it) |
//! | target not origin-form (`/…`), absolute-form (`http[s]://…`) or `*` for OPTIONS | `400` |
//! | `Content-Length: 5, 5` or two identical `Content-Length` lines | collapsed to one value, forwarded once, upstream connection closed after |
//! | `Transfer-Encoding` on two lines, or `chunked` twice | `400` |
//! | any coding besides one `chunked` (`gzip, chunked`) | `501` (as NGINX) |
//! | HEAD with a body (`Content-Length` > 0 or `Transfer-Encoding`) | `400` |
//! | a header name folding to a framing, routing or credential field (`Content_Length`, `Transfer--Encoding`) | `400` |
//! | another name with `_` | `[server] underscores_in_headers`: dropped (default), `400`, or forwarded |
//!
//! Whatever the gateway normalised here, the upstream request carries `Connection: close`, so the
//! connection it used never goes back to the pool ([`Verdict::Pass`]'s `normalised`).

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;
use pingora::proxy::Session;

use super::head_log::{Body, Original};
use crate::runtime::stage::Underscores;

/// What a request gets.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Refused with this status and message (and the connection closed).
    Refuse(u16, &'static str),
    /// Goes on; `normalised` when the gateway changed its head (the upstream connection must
    /// then not be reused).
    Pass { normalised: bool },
}

/// Field names that decide framing, routing, forwarding or whether a response is shared: a
/// name that folds to one of them (`_` read as `-`, repeated `-` collapsed) without being it is
/// refused, as a part behind the gateway may read it as that field.
const GUARDED: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "cookie",
    "expect",
    "forwarded",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Checks (and normalises) the head of `session`'s request; see the module documentation.
pub(super) fn inspect(session: &mut Session, underscores: Underscores) -> Verdict {
    if let Some(refusal) = received_target(session) {
        return refusal;
    }
    let req = session.req_header();
    if let Some(message) = target_form(req.method.as_str(), req.raw_path()) {
        return Verdict::Refuse(400, message);
    }
    if let Some(refusal) = transfer_encoding(&req.headers) {
        return refusal;
    }
    let length = match content_length(&req.headers) {
        Ok(l) => l,
        Err(message) => return Verdict::Refuse(400, message),
    };
    let chunked = req.headers.contains_key(TRANSFER_ENCODING);
    if req.method == http::Method::HEAD && (chunked || length.is_some_and(|(n, _)| n > 0)) {
        return Verdict::Refuse(400, "a HEAD request must not have a body");
    }
    let names = match header_names(&req.headers, underscores) {
        Ok(drop) => drop,
        Err(message) => return Verdict::Refuse(400, message),
    };
    let body = match length {
        _ if chunked => Body::Chunked,
        Some((n, _)) => Body::Length(n),
        None => Body::Empty,
    };
    // The connection's record skips this body: the next head must follow it.
    super::header_deadline::body_follows(session.as_downstream(), body);
    // Dropping a field that is not about framing (lookalikes of framing fields were refused
    // above) cannot make the target read the body differently: the pooled connection stays.
    let mut normalised = false;
    let req = session.req_header_mut();
    for name in names {
        req.remove_header(&name);
    }
    if let Some((n, true)) = length {
        // The framing value is unchanged (Pingora frames the body by it, read lazily from this
        // very header), so replacing the list is safe; the target then sees one value.
        if req.insert_header(CONTENT_LENGTH, n).is_err() {
            return Verdict::Refuse(400, "the Content-Length is invalid");
        }
        normalised = true;
    }
    Verdict::Pass { normalised }
}

/// A refusal when the request line as received held a control byte or space in its target, or
/// cannot be recovered although Pingora may have rewritten it. Only HTTP/1 heads are rewritten.
fn received_target(session: &Session) -> Option<Verdict> {
    let h1 = session.as_downstream().as_http1()?;
    let head = h1.get_headers_raw_bytes();
    // Always looked up, so the connection's record is consumed up to this head.
    let original = super::header_deadline::original_target(session.as_downstream(), &head);
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    // Pingora's escaping writes `%XX`: a line without `%` was not rewritten.
    let maybe_escaped = line.contains(&b'%');
    match original {
        Some(Original::Target(t)) if t.iter().any(|&b| b <= 0x20 || b == 0x7f) => {
            Some(Verdict::Refuse(
                400,
                "the request target contains a control character or a space",
            ))
        }
        Some(Original::Target(_)) => None,
        _ if maybe_escaped => Some(Verdict::Refuse(
            400,
            "the request line could not be verified as received",
        )),
        _ => None,
    }
}

/// Why a target (`raw`, as Pingora keeps it: fragment dropped, absolute-form verbatim) is not in
/// a form the gateway routes, if it is not: origin-form (`/…`), absolute-form with an `http` or
/// `https` scheme, or `*` for OPTIONS (RFC 9112 §3.2). Anything else Pingora turns into `/`, so a
/// request for `%00/admin` would be routed, keyed and forwarded as `/`.
fn target_form(method: &str, raw: &[u8]) -> Option<&'static str> {
    let absolute = |scheme: &[u8]| {
        raw.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    };
    if raw.first() == Some(&b'/')
        || (raw == b"*" && method == "OPTIONS")
        || absolute(b"http://")
        || absolute(b"https://")
    {
        None
    } else {
        Some("the request target is not in origin, absolute or asterisk form")
    }
}

/// A refusal for any `Transfer-Encoding` but one line holding exactly `chunked`: repeated (two
/// lines, or `chunked` twice, which a sender must never apply, RFC 9112 §6.1) gets `400`, another
/// coding `501` (RFC 9112 §6.1: a server that does not understand a coding SHOULD answer 501;
/// NGINX does). The body reader frames by the last coding only, so nothing else may pass.
fn transfer_encoding(headers: &HeaderMap) -> Option<Verdict> {
    let mut lines = headers.get_all(TRANSFER_ENCODING).iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return Some(Verdict::Refuse(
            400,
            "a request must not repeat Transfer-Encoding",
        ));
    }
    let codings: Vec<&[u8]> = first
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect();
    let chunked = codings
        .iter()
        .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
        .count();
    match (codings.len(), chunked) {
        (1, 1) => None,
        (_, n) if n > 1 => Some(Verdict::Refuse(
            400,
            "a request must not apply chunked more than once",
        )),
        _ => Some(Verdict::Refuse(
            501,
            "transfer codings other than chunked are not implemented",
        )),
    }
}

/// The request's `Content-Length` and whether it was a list or repeated (to collapse), `None`
/// without one. Values that differ are refused (Pingora refuses them first; kept so the rule
/// does not rest on that).
fn content_length(headers: &HeaderMap) -> Result<Option<(u64, bool)>, &'static str> {
    let mut value = None;
    let mut items = 0usize;
    for line in headers.get_all(CONTENT_LENGTH) {
        for item in line.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            let parsed = std::str::from_utf8(item)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("the Content-Length is invalid")?;
            if value.is_some_and(|v| v != parsed) {
                return Err("the Content-Length values differ");
            }
            value = Some(parsed);
            items += 1;
        }
    }
    Ok(value.map(|v| (v, items > 1)))
}

/// A target's response whose `Content-Length` is a list of one value, or repeated (Pingora frames
/// it by that value and forwards the field unchanged): forwarded and stored with one value, so
/// no client or cache further down reads the list differently (RFC 9110 §8.6, RFC 9112 §6.3).
/// Values that differ were refused by Pingora already (502).
pub(super) fn collapse_response_length(
    resp: &mut pingora::http::ResponseHeader,
) -> pingora::Result<()> {
    if let Ok(Some((len, true))) = content_length(&resp.headers) {
        resp.insert_header(CONTENT_LENGTH, len)?;
    }
    Ok(())
}

/// `name` read as a lenient part might: `_` as `-`, runs of `-` as one, none at either end.
fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().map(|c| if c == '_' { '-' } else { c }) {
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c.to_ascii_lowercase());
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The header names to drop (named with `_`, when `underscores` says so), or why the request is
/// refused: a name imitating a [`GUARDED`] field, or one with `_` when `underscores` refuses.
fn header_names(
    headers: &HeaderMap,
    underscores: Underscores,
) -> Result<Vec<http::HeaderName>, &'static str> {
    let mut drop = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        if !n.contains('_') && !n.contains("--") && !n.starts_with('-') && !n.ends_with('-') {
            continue;
        }
        if GUARDED.contains(&fold(n).as_str()) {
            return Err("a header name imitates a framing, routing or credential field");
        }
        if n.contains('_') {
            match underscores {
                Underscores::Drop => drop.push(name.clone()),
                Underscores::Refuse => return Err("header names must not contain `_`"),
                Underscores::Allow => {}
            }
        }
    }
    Ok(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_length_list_of_one_value_is_collapsed() {
        let mut r = pingora::http::ResponseHeader::build(200, None).unwrap();
        r.append_header("content-length", "5, 5").unwrap();
        r.append_header("content-length", "5").unwrap();
        collapse_response_length(&mut r).unwrap();
        let v: Vec<_> = r.headers.get_all("content-length").iter().collect();
        assert_eq!(v, ["5"]);
        let mut plain = pingora::http::ResponseHeader::build(200, None).unwrap();
        plain.append_header("content-length", "7").unwrap();
        collapse_response_length(&mut plain).unwrap();
        assert_eq!(plain.headers["content-length"], "7");
    }

    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_one_chunked_passes() {
        let te = |lines: &[&str]| {
            let pairs: Vec<_> = lines.iter().map(|v| ("transfer-encoding", *v)).collect();
            transfer_encoding(&headers(&pairs))
        };
        assert_eq!(te(&[]), None);
        assert_eq!(te(&["chunked"]), None);
        assert_eq!(te(&["Chunked "]), None);
        for repeated in [
            &["chunked", "chunked"][..],
            &["chunked, chunked"],
            &["gzip", "chunked"],
        ] {
            assert!(
                matches!(te(repeated), Some(Verdict::Refuse(400, _))),
                "{repeated:?}"
            );
        }
        for other in ["gzip, chunked", "identity", "chunked, identity", "x"] {
            assert!(
                matches!(te(&[other]), Some(Verdict::Refuse(501, _))),
                "{other}"
            );
        }
    }

    #[test]
    fn identical_content_lengths_collapse_and_differing_ones_do_not() {
        let cl = |lines: &[&str]| {
            let pairs: Vec<_> = lines.iter().map(|v| ("content-length", *v)).collect();
            content_length(&headers(&pairs))
        };
        assert_eq!(cl(&[]), Ok(None));
        assert_eq!(cl(&["5"]), Ok(Some((5, false))));
        assert_eq!(cl(&["1000,1000"]), Ok(Some((1000, true))));
        assert_eq!(cl(&["7", "7"]), Ok(Some((7, true))));
        assert!(cl(&["5, 6"]).is_err());
        assert!(cl(&["5", "6"]).is_err());
        assert!(cl(&["+5"]).is_err());
        assert!(cl(&["5,"]).is_err());
    }

    #[test]
    fn targets_must_be_origin_absolute_or_asterisk_form() {
        assert_eq!(target_form("GET", b"/a"), None);
        assert_eq!(target_form("GET", b"HTTP://h/a"), None);
        assert_eq!(target_form("OPTIONS", b"*"), None);
        for bad in [
            &b"%00/admin"[..],
            b"*",
            b"?q",
            b"h:443",
            b"ftp://h/a",
            b"admin",
        ] {
            assert!(target_form("GET", bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn look_alikes_of_guarded_fields_are_refused_whatever_the_setting() {
        assert_eq!(fold("Transfer---Encoding"), "transfer-encoding");
        assert_eq!(fold("_content_length_"), "content-length");
        for name in [
            "transfer_encoding",
            "content--length",
            "x_forwarded_for",
            "authorization_",
        ] {
            for setting in [Underscores::Drop, Underscores::Refuse, Underscores::Allow] {
                let h = headers(&[(name, "1")]);
                assert!(header_names(&h, setting).is_err(), "{name} {setting:?}");
            }
        }
    }

    #[test]
    fn other_underscored_names_follow_the_setting() {
        let h = headers(&[("x_api_key", "1"), ("x-ok", "2")]);
        assert_eq!(
            header_names(&h, Underscores::Drop).unwrap(),
            vec![http::HeaderName::from_static("x_api_key")]
        );
        assert!(header_names(&h, Underscores::Refuse).is_err());
        assert!(header_names(&h, Underscores::Allow).unwrap().is_empty());
        assert!(
            header_names(&headers(&[("content-length", "1")]), Underscores::Refuse)
                .unwrap()
                .is_empty()
        );
    }
}
