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
//!
//! This flow applies to AWS-mode stage caching and to ResponseCache policies only
//! ([`token_flow`]); an http-mode stage reads the same fields as RFC 9111 request directives.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WARNING};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::runtime::stage::{CacheMode, Grant, InvalidationSettings, Stage, UnauthorizedStrategy};

/// Whether a request's `Cache-Control: max-age=0` / `no-cache` / `Pragma: no-cache` is the AWS
/// token flow of this module (refresh, 403 or warning): for AWS-mode stage caching and for
/// Apigee ResponseCache policies (`policy_attached`). On an http-mode stage without a policy the
/// same fields are RFC 9111 §5.2.1 request directives instead — revalidation, never a 403 (see
/// `engine::request_directives`).
pub fn token_flow(stage: &Stage, policy_attached: bool) -> bool {
    policy_attached || stage.cache.mode != CacheMode::Http
}

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
pub(crate) fn directives(value: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
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
#[path = "client_invalidation_tests.rs"]
mod tests;
