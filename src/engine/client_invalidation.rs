//! Client cache invalidation and its authorization (AWS API Gateway semantics).
//!
//! A client asks to refetch and replace the cache entry of its request by sending
//! `Cache-Control: max-age=0` (AWS). cachegate also accepts `Cache-Control: no-cache` and, when the
//! request has no `Cache-Control` field at all, `Pragma: no-cache` (RFC 9111 §5.4).
//!
//! Because an authorized invalidation is a *write* to a shared entry (and forces origin traffic),
//! it can be restricted to holders of a bearer token (`require_authorization`). A token is matched
//! against the configured grants by its SHA-256 digest: every grant is compared with
//! `subtle::ConstantTimeEq`, without early exit, so the timing reveals neither which grant matched
//! nor how much of a token was right (comparing fixed-length digests also avoids `ct_eq`'s
//! short-circuit on slices of different lengths). The grant must then cover the request's method
//! and resource path, IAM-ARN style (`GET/items/*`). Tokens are read from the `Authorization`
//! header only, never from the query string (which ends up in logs).
//!
//! What happens to an unauthorized invalidation request follows the AWS
//! `unauthorizedCacheControlHeaderStrategy`: 403, or served as if the header were absent (with or
//! without a `Warning` header).

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WARNING};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::runtime::stage::{Grant, InvalidationSettings, UnauthorizedStrategy};

/// What the request asked for and what it may do, so the proxy acts on one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not an invalidation request.
    None,
    /// Refetch and replace the entry. `grant` names the grant used (None when authorization is not
    /// required) — for audit logs; never the token.
    Refresh {
        /// The authorizing grant's name, for audit logs.
        grant: Option<String>,
    },
    /// Answer 403 with `refusal_body()`.
    Forbid {
        /// Why the request was refused (metric label and body field).
        reason: Refusal,
    },
    /// Serve normally (ignore the header); `warn` = add `warning_header()`.
    Ignore {
        /// Why the invalidation was not honoured.
        reason: Refusal,
        /// Whether to add `warning_header(reason)` to the response.
        warn: bool,
    },
}

/// Why an invalidation request was not authorized, so metrics and responses can say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header, several of them, or one that is not `Bearer <token>`.
    MissingToken,
    /// The token matches no grant.
    WrongToken,
    /// The token matches a grant, but no such grant covers the method and resource path.
    NotGranted,
}

impl Refusal {
    /// Stable lower-case name, used as a metric label and in the 403 body.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::WrongToken => "wrong_token",
            Refusal::NotGranted => "not_granted",
        }
    }
}

/// True for `Cache-Control: max-age=0` / `no-cache`, or `Pragma: no-cache` without Cache-Control,
/// so the proxy can tell invalidation requests apart before checking authorization.
///
/// Directive names are case-insensitive; several `Cache-Control` field lines are combined;
/// commas inside quoted strings do not split directives. `max-age` must be exactly zero
/// (`max-age=00` and `max-age="0"` count, `max-age=10` does not). `Pragma` is only consulted when
/// no `Cache-Control` field line is present (even an empty one), as RFC 9111 §5.4 says.
pub fn is_invalidation_request(headers: &HeaderMap) -> bool {
    let mut cache_control = headers.get_all(CACHE_CONTROL).iter().peekable();
    if cache_control.peek().is_some() {
        cache_control.any(|value| {
            directives(value.as_bytes()).any(|(name, arg)| {
                (name.eq_ignore_ascii_case(b"max-age") && arg.is_some_and(is_zero))
                    || name.eq_ignore_ascii_case(b"no-cache")
            })
        })
    } else {
        headers.get_all(PRAGMA).iter().any(|value| {
            directives(value.as_bytes()).any(|(name, _)| name.eq_ignore_ascii_case(b"no-cache"))
        })
    }
}

/// Decides what to do with a request: `method` is the method it is cached under and
/// `resource_path` the path below the stage base path, both as [`crate::engine::facts`]
/// normalises them (a HEAD is GET; an empty path is `/`).
pub fn decide(
    settings: &InvalidationSettings,
    headers: &HeaderMap,
    method: &str,
    resource_path: &str,
) -> Decision {
    if !is_invalidation_request(headers) {
        return Decision::None;
    }
    if !settings.require_authorization {
        return Decision::Refresh { grant: None };
    }
    let path = resource_path;
    let result = match bearer_token(headers) {
        None => Err(Refusal::MissingToken),
        Some(token) => authorize(&settings.grants, &token_digest(token), method, path),
    };
    match result {
        Ok(name) => Decision::Refresh { grant: Some(name) },
        Err(reason) => match settings.unauthorized {
            UnauthorizedStrategy::FailWith403 => Decision::Forbid { reason },
            UnauthorizedStrategy::SucceedWithResponseHeader => {
                Decision::Ignore { reason, warn: true }
            }
            UnauthorizedStrategy::SucceedWithoutResponseHeader => Decision::Ignore {
                reason,
                warn: false,
            },
        },
    }
}

/// Warning values, checked at compile time (`HeaderValue::from_static` is a `const fn`).
const WARN_MISSING: HeaderValue =
    HeaderValue::from_static("199 cachegate \"cache invalidation ignored: missing_token\"");
/// See [`WARN_MISSING`].
const WARN_WRONG: HeaderValue =
    HeaderValue::from_static("199 cachegate \"cache invalidation ignored: wrong_token\"");
/// See [`WARN_MISSING`].
const WARN_NOT_GRANTED: HeaderValue =
    HeaderValue::from_static("199 cachegate \"cache invalidation ignored: not_granted\"");

/// The warning header for SucceedWithResponseHeader: name `warning`, value
/// `199 cachegate "cache invalidation ignored: <reason>"` (RFC 9111 §5.5 format; the reason never
/// includes the token), so clients learn their invalidation was not honoured.
pub fn warning_header(reason: Refusal) -> (HeaderName, HeaderValue) {
    let value = match reason {
        Refusal::MissingToken => WARN_MISSING,
        Refusal::WrongToken => WARN_WRONG,
        Refusal::NotGranted => WARN_NOT_GRANTED,
    };
    (WARNING, value)
}

/// The 403 JSON body: {"error":"forbidden","message":"not authorized to invalidate this cache
/// entry","reason":"<reason>"}, so FailWith403 answers are machine-readable.
pub fn refusal_body(reason: Refusal) -> Bytes {
    Bytes::from_static(match reason {
        Refusal::MissingToken => {
            br#"{"error":"forbidden","message":"not authorized to invalidate this cache entry","reason":"missing_token"}"#
        }
        Refusal::WrongToken => {
            br#"{"error":"forbidden","message":"not authorized to invalidate this cache entry","reason":"wrong_token"}"#
        }
        Refusal::NotGranted => {
            br#"{"error":"forbidden","message":"not authorized to invalidate this cache entry","reason":"not_granted"}"#
        }
    })
}

/// Glob matcher for grant resources (exposed for tests and admin tooling): `*` matches any run of
/// characters including `/`, every other byte matches itself, and the whole path must match.
///
/// Iterative two-pointer matching with backtracking to the last star only: O(glob × path) in the
/// worst case, no recursion, never panics.
pub fn glob_matches(glob: &str, path: &str) -> bool {
    let (glob, path) = (glob.as_bytes(), path.as_bytes());
    let (mut gi, mut pi) = (0usize, 0usize);
    // Position in `glob` just after the last star seen, and the path position it resumes from.
    let mut resume: Option<(usize, usize)> = None;
    while let Some(&c) = path.get(pi) {
        match glob.get(gi) {
            Some(b'*') => {
                gi += 1;
                resume = Some((gi, pi));
            }
            Some(&g) if g == c => {
                gi += 1;
                pi += 1;
            }
            _ => match resume {
                // Let the last star swallow one more byte and retry from there.
                Some((after_star, from)) => {
                    gi = after_star;
                    pi = from + 1;
                    resume = Some((after_star, from + 1));
                }
                None => return false,
            },
        }
    }
    glob.get(gi..)
        .is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

/// SHA-256 of a token: the fixed-length form in which tokens are compared.
fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Finds a grant whose digest equals `digest` and whose resources cover `method path`.
///
/// Every grant is compared, with no `break`/`return` inside the loop, and the results are
/// accumulated as `subtle::Choice`s; coverage (which depends only on configuration and the
/// request, not on the token) is evaluated for every grant too, so the time taken does not depend
/// on which grant, if any, holds the token.
fn authorize(
    grants: &[Grant],
    digest: &[u8; 32],
    method: &str,
    path: &str,
) -> Result<String, Refusal> {
    let mut token_known = Choice::from(0);
    let mut found = Choice::from(0);
    let mut index = 0u64;
    for (i, grant) in grants.iter().enumerate() {
        let same = digest.ct_eq(&grant.token_sha256);
        let covers = Choice::from(u8::from(covers(grant, method, path)));
        let authorizes = same & covers;
        // Keep the first authorizing grant.
        let take = authorizes & !found;
        index = u64::conditional_select(&index, &(i as u64), take);
        found |= authorizes;
        token_known |= same;
    }
    if bool::from(found) {
        usize::try_from(index)
            .ok()
            .and_then(|i| grants.get(i))
            .map(|g| g.name.clone())
            .ok_or(Refusal::WrongToken)
    } else if bool::from(token_known) {
        Err(Refusal::NotGranted)
    } else {
        Err(Refusal::WrongToken)
    }
}

/// Whether one of `grant`'s resources covers `method path` (method `None` is `*`; methods compare
/// case-sensitively).
fn covers(grant: &Grant, method: &str, path: &str) -> bool {
    grant
        .resources
        .iter()
        .any(|(m, glob)| m.as_deref().is_none_or(|m| m == method) && glob_matches(glob, path))
}

/// The token of the single `Authorization: Bearer <token>` header (scheme case-insensitive), or
/// None if the header is missing, repeated, not visible ASCII, another scheme, or has an empty or
/// space-containing token.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.is_empty() || token.contains([' ', '\t']) {
        return None;
    }
    Some(token)
}

/// Whether a `max-age` argument is zero (one or more `0` digits).
fn is_zero(arg: &[u8]) -> bool {
    !arg.is_empty() && arg.iter().all(|&b| b == b'0')
}

/// Splits a `Cache-Control`/`Pragma` field value into `(name, argument)` directives: separated by
/// commas outside quoted strings, whitespace trimmed, quotes removed from a quoted argument.
fn directives(value: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    split_outside_quotes(value).filter_map(|part| {
        let part = part.trim_ascii();
        if part.is_empty() {
            return None;
        }
        Some(match part.iter().position(|&b| b == b'=') {
            None => (part, None),
            Some(eq) => {
                let name = part.get(..eq).unwrap_or_default().trim_ascii();
                let arg = part.get(eq + 1..).unwrap_or_default().trim_ascii();
                let arg = arg
                    .strip_prefix(b"\"")
                    .and_then(|a| a.strip_suffix(b"\""))
                    .unwrap_or(arg);
                (name, Some(arg))
            }
        })
    })
}

/// Splits on commas that are not inside a quoted string (backslash escapes honoured).
fn split_outside_quotes(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == b',' && !quoted {
                rest = s.get(i + 1..);
                return s.get(..i);
            }
        }
        rest = None;
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::facts::{self, cache_method};

    const STRATEGIES: [UnauthorizedStrategy; 3] = [
        UnauthorizedStrategy::FailWith403,
        UnauthorizedStrategy::SucceedWithResponseHeader,
        UnauthorizedStrategy::SucceedWithoutResponseHeader,
    ];

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn grant(name: &str, token: &str, resources: &[(Option<&str>, &str)]) -> Grant {
        Grant {
            name: name.to_string(),
            token_sha256: token_digest(token),
            resources: resources
                .iter()
                .map(|(m, g)| (m.map(str::to_string), g.to_string()))
                .collect(),
        }
    }

    fn settings(unauthorized: UnauthorizedStrategy, grants: Vec<Grant>) -> InvalidationSettings {
        InvalidationSettings {
            require_authorization: true,
            unauthorized,
            grants,
        }
    }

    fn standard(unauthorized: UnauthorizedStrategy) -> InvalidationSettings {
        settings(
            unauthorized,
            vec![
                grant("ops", "ops-token", &[(None, "/*")]),
                grant("items-reader", "items-token", &[(Some("GET"), "/items/*")]),
            ],
        )
    }

    fn refused(strategy: UnauthorizedStrategy, reason: Refusal) -> Decision {
        match strategy {
            UnauthorizedStrategy::FailWith403 => Decision::Forbid { reason },
            UnauthorizedStrategy::SucceedWithResponseHeader => {
                Decision::Ignore { reason, warn: true }
            }
            UnauthorizedStrategy::SucceedWithoutResponseHeader => Decision::Ignore {
                reason,
                warn: false,
            },
        }
    }

    #[test]
    fn detects_every_spelling() {
        for pairs in [
            vec![("cache-control", "max-age=0")],
            vec![("cache-control", "MAX-AGE=0")],
            vec![("cache-control", "Max-Age=00")],
            vec![("cache-control", "max-age=\"0\"")],
            vec![("cache-control", " max-age = 0 ")],
            vec![("cache-control", "no-cache")],
            vec![("cache-control", "No-Cache")],
            vec![("cache-control", "no-transform, no-cache")],
            vec![("cache-control", "max-stale=5,max-age=0")],
            vec![
                ("cache-control", "no-store"),
                ("cache-control", "max-age=0"),
            ],
            vec![("cache-control", "foo=\"a,b\", no-cache")],
            vec![("pragma", "no-cache")],
            vec![("pragma", "NO-CACHE")],
            vec![("pragma", "x-thing, no-cache")],
        ] {
            assert!(is_invalidation_request(&headers(&pairs)), "{pairs:?}");
        }
    }

    #[test]
    fn ignores_other_headers() {
        for pairs in [
            vec![],
            vec![("cache-control", "max-age=10")],
            vec![("cache-control", "max-age=01")],
            vec![("cache-control", "max-age=")],
            vec![("cache-control", "max-age")],
            vec![("cache-control", "no-store")],
            vec![("cache-control", "s-maxage=0")],
            vec![("cache-control", "max-stale=0")],
            vec![("cache-control", "min-fresh=0")],
            vec![("cache-control", "no-cachex")],
            vec![("cache-control", "x-no-cache")],
            vec![("cache-control", "foo=\"max-age=0, no-cache\"")],
            vec![("cache-control", "only-if-cached")],
            // Pragma is ignored when Cache-Control is present.
            vec![("cache-control", "max-age=60"), ("pragma", "no-cache")],
            vec![("cache-control", ""), ("pragma", "no-cache")],
            vec![("pragma", "no-store")],
            vec![("x-cache-control", "max-age=0")],
        ] {
            assert!(!is_invalidation_request(&headers(&pairs)), "{pairs:?}");
        }
    }

    #[test]
    fn non_utf8_cache_control_is_handled() {
        let mut map = HeaderMap::new();
        map.append(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"x=\xff, max-age=0").unwrap(),
        );
        assert!(is_invalidation_request(&map));
        let mut map = HeaderMap::new();
        map.append(CACHE_CONTROL, HeaderValue::from_bytes(b"\xff").unwrap());
        assert!(!is_invalidation_request(&map));
    }

    #[test]
    fn plain_requests_are_none() {
        for strategy in STRATEGIES {
            let s = standard(strategy);
            let h = headers(&[("authorization", "Bearer ops-token")]);
            assert_eq!(decide(&s, &h, "GET", "/items/7"), Decision::None);
            let h = headers(&[("cache-control", "max-age=30")]);
            assert_eq!(decide(&s, &h, "GET", "/items/7"), Decision::None);
        }
    }

    #[test]
    fn without_required_authorization_everyone_refreshes() {
        let mut s = standard(UnauthorizedStrategy::FailWith403);
        s.require_authorization = false;
        for pairs in [
            vec![("cache-control", "max-age=0")],
            vec![
                ("cache-control", "no-cache"),
                ("authorization", "Bearer nope"),
            ],
            vec![("pragma", "no-cache")],
        ] {
            assert_eq!(
                decide(&s, &headers(&pairs), "POST", "/anything"),
                Decision::Refresh { grant: None }
            );
        }
    }

    #[test]
    fn good_token_and_covered_resource_refreshes() {
        for strategy in STRATEGIES {
            let s = standard(strategy);
            for (auth, method, path, name) in [
                ("Bearer ops-token", "GET", "/items/7", "ops"),
                ("bearer ops-token", "DELETE", "/", "ops"),
                ("BEARER   ops-token ", "POST", "/a/b/c", "ops"),
                ("Bearer ops-token", "GET", "", "ops"),
                ("Bearer items-token", "GET", "/items/7", "items-reader"),
                (
                    "Bearer items-token",
                    "GET",
                    "/items/7/reviews",
                    "items-reader",
                ),
                ("Bearer items-token", "HEAD", "/items/7", "items-reader"),
            ] {
                let h = headers(&[("cache-control", "max-age=0"), ("authorization", auth)]);
                assert_eq!(
                    decide(&s, &h, cache_method(method), facts::resource_path(path)),
                    Decision::Refresh {
                        grant: Some(name.to_string())
                    },
                    "{auth} {method} {path}"
                );
            }
        }
    }

    /// Extra headers, method, path, expected refusal.
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
        Refusal,
    );

    #[test]
    fn unauthorized_requests_follow_the_strategy() {
        let cases: &[Case] = &[
            // Missing token.
            (&[], "GET", "/items/7", Refusal::MissingToken),
            // Basic auth (even with the right secret).
            (
                &[("authorization", "Basic b3BzLXRva2Vu")],
                "GET",
                "/items/7",
                Refusal::MissingToken,
            ),
            (
                &[("authorization", "Basic ops-token")],
                "GET",
                "/items/7",
                Refusal::MissingToken,
            ),
            // Malformed bearer headers.
            (
                &[("authorization", "Bearer")],
                "GET",
                "/items/7",
                Refusal::MissingToken,
            ),
            (
                &[("authorization", "Bearer ")],
                "GET",
                "/items/7",
                Refusal::MissingToken,
            ),
            (
                &[("authorization", "ops-token")],
                "GET",
                "/items/7",
                Refusal::MissingToken,
            ),
            (
                &[("authorization", "Bearer ops-token extra")],
                "GET",
                "/items/7",
                Refusal::MissingToken,
            ),
            (
                &[("authorization", "Bearerops-token")],
                "GET",
                "/items/7",
                Refusal::MissingToken,
            ),
            // Two Authorization headers are ambiguous.
            (
                &[
                    ("authorization", "Bearer ops-token"),
                    ("authorization", "Bearer ops-token"),
                ],
                "GET",
                "/items/7",
                Refusal::MissingToken,
            ),
            // Wrong tokens, including a prefix and an extension of a real one.
            (
                &[("authorization", "Bearer nope")],
                "GET",
                "/items/7",
                Refusal::WrongToken,
            ),
            (
                &[("authorization", "Bearer ops-toke")],
                "GET",
                "/items/7",
                Refusal::WrongToken,
            ),
            (
                &[("authorization", "Bearer ops-token2")],
                "GET",
                "/items/7",
                Refusal::WrongToken,
            ),
            (
                &[("authorization", "Bearer OPS-TOKEN")],
                "GET",
                "/items/7",
                Refusal::WrongToken,
            ),
            // A token for another resource.
            (
                &[("authorization", "Bearer items-token")],
                "GET",
                "/orders/1",
                Refusal::NotGranted,
            ),
            (
                &[("authorization", "Bearer items-token")],
                "GET",
                "/items",
                Refusal::NotGranted,
            ),
            (
                &[("authorization", "Bearer items-token")],
                "GET",
                "/v2/items/7",
                Refusal::NotGranted,
            ),
            // Method mismatch (and methods are case-sensitive).
            (
                &[("authorization", "Bearer items-token")],
                "POST",
                "/items/7",
                Refusal::NotGranted,
            ),
            (
                &[("authorization", "Bearer items-token")],
                "get",
                "/items/7",
                Refusal::NotGranted,
            ),
        ];
        for strategy in STRATEGIES {
            let s = standard(strategy);
            for (extra, method, path, reason) in cases {
                for signal in [
                    ("cache-control", "max-age=0"),
                    ("cache-control", "no-cache"),
                    ("pragma", "no-cache"),
                ] {
                    let mut pairs = vec![signal];
                    pairs.extend_from_slice(extra);
                    assert_eq!(
                        decide(&s, &headers(&pairs), method, path),
                        refused(strategy, *reason),
                        "{strategy:?} {pairs:?} {method} {path}"
                    );
                }
            }
        }
    }

    #[test]
    fn non_ascii_authorization_is_missing_token() {
        let mut h = headers(&[("cache-control", "max-age=0")]);
        h.append(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer ops-token\xff").unwrap(),
        );
        let s = standard(UnauthorizedStrategy::FailWith403);
        assert_eq!(
            decide(&s, &h, "GET", "/x"),
            Decision::Forbid {
                reason: Refusal::MissingToken
            }
        );
    }

    #[test]
    fn no_grants_means_wrong_token() {
        let s = settings(UnauthorizedStrategy::FailWith403, vec![]);
        let h = headers(&[
            ("cache-control", "max-age=0"),
            ("authorization", "Bearer x"),
        ]);
        assert_eq!(
            decide(&s, &h, "GET", "/x"),
            Decision::Forbid {
                reason: Refusal::WrongToken
            }
        );
    }

    #[test]
    fn every_grant_is_examined_and_any_covering_one_authorizes() {
        // The matching grant is last; two grants share a token and only the second covers.
        let mut grants: Vec<Grant> = (0..20)
            .map(|i| grant(&format!("g{i}"), &format!("token-{i}"), &[(None, "/*")]))
            .collect();
        grants.push(grant("shared-a", "shared", &[(Some("GET"), "/a/*")]));
        grants.push(grant("shared-b", "shared", &[(Some("GET"), "/b/*")]));
        grants.push(grant("shared-c", "shared", &[(None, "/b/*")]));
        let s = settings(UnauthorizedStrategy::FailWith403, grants);
        let with = |token: &str| {
            headers(&[
                ("cache-control", "max-age=0"),
                ("authorization", &format!("Bearer {token}")),
            ])
        };
        assert_eq!(
            decide(&s, &with("token-19"), "GET", "/z"),
            Decision::Refresh {
                grant: Some("g19".into())
            }
        );
        assert_eq!(
            decide(&s, &with("shared"), "GET", "/b/1"),
            Decision::Refresh {
                grant: Some("shared-b".into())
            }
        );
        assert_eq!(
            decide(&s, &with("shared"), "PUT", "/b/1"),
            Decision::Refresh {
                grant: Some("shared-c".into())
            }
        );
        assert_eq!(
            decide(&s, &with("shared"), "GET", "/a/1"),
            Decision::Refresh {
                grant: Some("shared-a".into())
            }
        );
        assert_eq!(
            decide(&s, &with("shared"), "GET", "/c/1"),
            Decision::Forbid {
                reason: Refusal::NotGranted
            }
        );
    }

    #[test]
    fn grant_with_several_resources() {
        let s = settings(
            UnauthorizedStrategy::FailWith403,
            vec![grant(
                "multi",
                "t",
                &[(Some("GET"), "/items/*"), (Some("POST"), "/search")],
            )],
        );
        let h = headers(&[("cache-control", "no-cache"), ("authorization", "Bearer t")]);
        assert!(matches!(
            decide(&s, &h, "POST", "/search"),
            Decision::Refresh { .. }
        ));
        assert!(matches!(
            decide(&s, &h, "GET", "/items/1"),
            Decision::Refresh { .. }
        ));
        assert_eq!(
            decide(&s, &h, "POST", "/items/1"),
            Decision::Forbid {
                reason: Refusal::NotGranted
            }
        );
        assert_eq!(
            decide(&s, &h, "GET", "/search"),
            Decision::Forbid {
                reason: Refusal::NotGranted
            }
        );
    }

    #[test]
    fn comparison_is_over_fixed_length_digests() {
        // The compared values are always 32-byte SHA-256 digests, whatever the token length.
        let short: [u8; 32] = token_digest("a");
        let long: [u8; 32] = token_digest(&"a".repeat(10_000));
        assert_ne!(short, long);
        // Two tokens sharing a 20-byte prefix: their digests differ from the first byte on, so
        // the constant-time comparison of digests cannot reveal that the prefixes are shared.
        let a = "0123456789abcdefghijXXXX";
        let b = "0123456789abcdefghijYYYY";
        assert_eq!(a.as_bytes()[..20], b.as_bytes()[..20]);
        let (da, db) = (token_digest(a), token_digest(b));
        assert_ne!(da[0], db[0]);
        assert_eq!(da, <[u8; 32]>::from(Sha256::digest(a.as_bytes())));
    }

    #[test]
    fn globs() {
        let yes = [
            ("/*", "/"),
            ("/*", "/items"),
            ("/*", "/items/7/reviews"),
            ("*", ""),
            ("*", "/anything"),
            ("", ""),
            ("/items/*", "/items/"),
            ("/items/*", "/items/7"),
            ("/items/*", "/items/7/reviews"),
            ("/items/*/reviews", "/items/7/reviews"),
            ("/items/*/reviews", "/items/7/8/reviews"),
            ("/items/*/reviews", "/items//reviews"),
            ("/*/*/x", "/a/b/x"),
            ("/*/*/x", "/a/b/c/x"),
            ("/a*b*c", "/abc"),
            ("/a*b*c", "/aXbYc"),
            ("/a*b*c", "/abbbcbc"),
            ("/a**b", "/ab"),
            ("/items", "/items"),
            ("*/reviews", "/items/7/reviews"),
            ("/é/*", "/é/x"),
        ];
        for (glob, path) in yes {
            assert!(glob_matches(glob, path), "{glob} should match {path}");
        }
        let no = [
            ("/items/*", "/items"),
            ("/items/*", "/itemsX"),
            ("/items/*", "/v2/items/7"),
            ("/items", "/items/"),
            ("/items", "/item"),
            ("/Items/*", "/items/7"),
            ("/*", ""),
            ("", "/"),
            ("/items/*/reviews", "/items/7/reviews/1"),
            ("/items/*/reviews", "/items/reviews"),
            ("/a*b*c", "/acb"),
            ("/a*b*c", "/abcd"),
            ("/*/*/x", "/a/x"),
        ];
        for (glob, path) in no {
            assert!(!glob_matches(glob, path), "{glob} should not match {path}");
        }
    }

    #[test]
    fn glob_worst_case_is_fast() {
        let path = "/".to_string() + &"a".repeat(20_000);
        let glob = "/".to_string() + &"*a".repeat(200) + "b";
        let start = std::time::Instant::now();
        assert!(!glob_matches(&glob, &path));
        assert!(glob_matches(&"*".repeat(10_000), &path));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn warning_header_is_valid_and_tokenless() {
        for reason in [
            Refusal::MissingToken,
            Refusal::WrongToken,
            Refusal::NotGranted,
        ] {
            let (name, value) = warning_header(reason);
            assert_eq!(name.as_str(), "warning");
            let text = value.to_str().unwrap();
            assert_eq!(
                text,
                format!(
                    "199 cachegate \"cache invalidation ignored: {}\"",
                    reason.as_str()
                )
            );
            assert!(HeaderValue::from_str(text).is_ok());
            assert!(!text.contains("token-"));
            assert!(!text.to_ascii_lowercase().contains("bearer"));
        }
    }

    #[test]
    fn refusal_body_is_json() {
        for reason in [
            Refusal::MissingToken,
            Refusal::WrongToken,
            Refusal::NotGranted,
        ] {
            let body: serde_json::Value = serde_json::from_slice(&refusal_body(reason)).unwrap();
            assert_eq!(
                body,
                serde_json::json!({
                    "error": "forbidden",
                    "message": "not authorized to invalidate this cache entry",
                    "reason": reason.as_str(),
                })
            );
        }
    }

    #[test]
    fn refusal_labels() {
        assert_eq!(Refusal::MissingToken.as_str(), "missing_token");
        assert_eq!(Refusal::WrongToken.as_str(), "wrong_token");
        assert_eq!(Refusal::NotGranted.as_str(), "not_granted");
    }
}
