//! Unit tests of `client_invalidation.rs` (kept apart so the module itself stays short).

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
        UnauthorizedStrategy::SucceedWithResponseHeader => Decision::Ignore { reason, warn: true },
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
