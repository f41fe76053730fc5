//! What the engine knows about a request, read and normalised once.
//!
//! Every decision that depends on the method, the path below the base path, the Host or the
//! request's headers reads them from [`RequestFacts`], so the proxy, the admin API and
//! `explain` cannot normalise them differently: a HEAD is answered from the GET's entry (its
//! method is GET here and nowhere else), an empty path below the base path is `/`, and the
//! `Authorization` of a client invalidation request is the gateway's token, not a credential.

use http::HeaderMap;
use pingora::http::RequestHeader;

use crate::engine::client_invalidation::is_invalidation_request;

/// The method a request is cached under: a HEAD is answered from the GET's entry.
pub fn cache_method(method: &str) -> &str {
    if method == "HEAD" {
        "GET"
    } else {
        method
    }
}

/// The path a resource template, an override or a grant is matched against: the path below
/// the base path, `/` when it is empty.
pub fn resource_path(suffix: &str) -> &str {
    if suffix.is_empty() {
        "/"
    } else {
        suffix
    }
}

/// Whether the request announces a body (`Content-Length` > 0 or `Transfer-Encoding`).
pub fn announces_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Whether the request's body is an HTML form (`Content-Type:
/// application/x-www-form-urlencoded`, parameters such as `charset` allowed), whose fields are
/// Apigee's `request.formparam.<name>`.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The facts about a request that decide whether and how it uses the cache.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method the request is cached under (HEAD → GET).
    pub method: &'a str,
    /// The path below the stage's base path (`/` at least).
    pub suffix: &'a str,
    /// The raw query string (without `?`; empty when there is none).
    pub query: &'a str,
    /// `Authorization` present (other than as a client invalidation's token).
    pub has_authorization: bool,
    /// A client invalidation request (`Cache-Control: max-age=0` / `no-cache`, `Pragma`).
    pub invalidation_request: bool,
    /// `Cookie` present.
    pub has_cookie: bool,
    /// A request body is announced (`Content-Length` > 0 or `Transfer-Encoding`).
    pub has_body: bool,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// `Connection` lists an end-to-end header (which the gateway would then drop).
    pub drops_end_to_end: bool,
}

impl<'a> RequestFacts<'a> {
    /// The facts of `req`, whose path below the base path is `suffix`.
    pub fn of(req: &'a RequestHeader, suffix: &'a str) -> Self {
        Self::from_parts(req.method.as_str(), suffix, req.uri.query(), &req.headers)
    }

    /// The facts of a request given by its parts.
    pub fn from_parts(
        method: &'a str,
        suffix: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> Self {
        let header = |name: http::header::HeaderName| headers.get(name);
        let has_body = announces_body(headers);
        let invalidation_request = is_invalidation_request(headers);
        Self {
            method: cache_method(method),
            suffix: resource_path(suffix),
            query: query.unwrap_or(""),
            // On an invalidation request `Authorization` carries the invalidation token for
            // the gateway: it is neither a credential for the target nor forwarded to it.
            has_authorization: header(http::header::AUTHORIZATION).is_some()
                && !invalidation_request,
            invalidation_request,
            has_cookie: header(http::header::COOKIE).is_some(),
            has_body,
            host: header(http::header::HOST).and_then(|h| h.to_str().ok()),
            drops_end_to_end: crate::util::connection_drops_end_to_end(headers),
        }
    }

    /// The facts of `req` on an http-mode stage without a ResponseCache, where request
    /// `Cache-Control`/`Pragma` are RFC 9111 directives, not the AWS token flow
    /// (`client_invalidation::token_flow`): no request is an invalidation request, so an
    /// `Authorization` is always the client's credential (it bypasses the cache unless the
    /// stage allows it, and is forwarded).
    pub fn of_standard(req: &'a RequestHeader, suffix: &'a str) -> Self {
        Self {
            has_authorization: req.headers.contains_key(http::header::AUTHORIZATION),
            invalidation_request: false,
            ..Self::of(req, suffix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_cached_as_get_and_an_empty_suffix_is_root() {
        let mut req = RequestHeader::build("HEAD", b"/prod?x=1", None).unwrap();
        req.insert_header("host", "api.test").unwrap();
        req.insert_header("content-length", "0").unwrap();
        let f = RequestFacts::of(&req, "");
        assert_eq!(f.method, "GET");
        assert_eq!(f.suffix, "/");
        assert_eq!(f.query, "x=1");
        assert_eq!(f.host, Some("api.test"));
        assert!(!f.has_body);
    }

    #[test]
    fn an_invalidation_token_is_not_a_credential() {
        let mut req = RequestHeader::build("GET", b"/prod/items/1", None).unwrap();
        req.insert_header("authorization", "Bearer t").unwrap();
        assert!(RequestFacts::of(&req, "/items/1").has_authorization);
        req.insert_header("cache-control", "max-age=0").unwrap();
        assert!(!RequestFacts::of(&req, "/items/1").has_authorization);
        // In http mode the same request is a revalidation, and the header a credential.
        let f = RequestFacts::of_standard(&req, "/items/1");
        assert!(f.has_authorization);
        assert!(!f.invalidation_request);
    }
}
