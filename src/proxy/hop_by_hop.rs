//! Hop-by-hop fields of a target's response (RFC 9110 §7.6.1): the fields its `Connection`
//! names, and the fields that are hop-by-hop by definition, describe the connection between the
//! target and the gateway. They are removed before the response is forwarded or stored; pingora
//! does this for requests only (and replaces `Connection` itself on the way out, but not the
//! fields it named). `Proxy-Authenticate` and `Proxy-Authentication-Info` go too: they address
//! the gateway, and a cache must not store them (RFC 9111 §3.1).

use pingora::http::ResponseHeader;

/// Removed from every response, whatever its `Connection` says.
const ALWAYS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authentication-info",
];

/// Fields a `Connection` may not take away: they frame the body or carry the response's meaning
/// for every recipient (RFC 9110 §7.6.1: a sender must not nominate end-to-end fields). A target
/// that names them is obeyed in nothing but its own hop-by-hop fields.
const END_TO_END: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "content-type",
    "content-encoding",
    "content-range",
    "cache-control",
    "expires",
    "date",
    "etag",
    "last-modified",
    "vary",
    "location",
    "content-location",
    "www-authenticate",
];

/// Whether `name` is hop-by-hop whatever a `Connection` says (also never taken from a 304 into
/// a stored response, see `revalidate`).
pub(super) fn always(name: &http::HeaderName) -> bool {
    ALWAYS.contains(&name.as_str())
}

/// Removes the hop-by-hop fields of a target's response. A `101 Switching Protocols` keeps them:
/// its `Upgrade` and `Connection` are what the client asked for.
pub(super) fn strip(resp: &mut ResponseHeader) {
    if resp.status.as_u16() == 101 {
        return;
    }
    let nominated: Vec<String> = resp
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && !END_TO_END.contains(&t.as_str()))
        .collect();
    for name in nominated
        .iter()
        .map(String::as_str)
        .chain(ALWAYS.iter().copied())
    {
        if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
            resp.remove_header(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_fields_and_hop_by_hop_ones_go() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (n, v) in [
            ("connection", "a, B"),
            ("connection", "content-length, close"),
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("content-length", "5"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("upgrade", "h2c"),
        ] {
            r.append_header(n, v).unwrap();
        }
        strip(&mut r);
        let mut names: Vec<&str> = r.headers.keys().map(http::HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["c", "content-length"]);
    }

    #[test]
    fn switching_protocols_keeps_its_upgrade() {
        let mut r = ResponseHeader::build(101, None).unwrap();
        r.append_header("connection", "upgrade").unwrap();
        r.append_header("upgrade", "websocket").unwrap();
        strip(&mut r);
        assert_eq!(r.headers.len(), 2);
    }
}
