use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn cc(v: &str) -> RequestDirectives {
    parse(&headers(&[("cache-control", v)]))
}

fn entry(age: u64, fresh_left: i64) -> EntryState {
    EntryState {
        age,
        fresh_left,
        validated_since_arrival: false,
        may_serve_stale: true,
    }
}

#[test]
fn parses_each_directive() {
    assert!(cc("no-cache").no_cache);
    assert!(cc("NO-CACHE").no_cache);
    assert!(cc("no-store").no_store);
    assert!(cc("only-if-cached").only_if_cached);
    assert_eq!(cc("max-age=0").max_age, Some(0));
    assert_eq!(cc("max-age=\"30\"").max_age, Some(30));
    assert_eq!(cc("min-fresh=5").min_fresh, Some(5));
    assert_eq!(cc("max-stale").max_stale, Some(None));
    assert_eq!(cc("max-stale=10").max_stale, Some(Some(10)));
    assert!(!cc("").any());
    assert!(!cc("foo, bar=1").any());
}

#[test]
fn malformed_arguments_ignore_the_directive_and_huge_ones_saturate() {
    assert_eq!(cc("max-age=-1").max_age, None);
    assert_eq!(cc("max-age=1.5").max_age, None);
    assert_eq!(cc("max-age=").max_age, None);
    assert_eq!(cc("max-age").max_age, None);
    assert_eq!(cc("max-stale=abc").max_stale, None);
    assert_eq!(
        cc("max-age=99999999999999999999999").max_age,
        Some(u64::MAX)
    );
}

#[test]
fn the_first_valid_value_wins_and_lines_combine() {
    assert_eq!(cc("max-age=5, max-age=0").max_age, Some(5));
    assert_eq!(cc("max-age=x, max-age=7").max_age, Some(7));
    let d = parse(&headers(&[
        ("cache-control", "max-age=9"),
        ("cache-control", "no-store"),
    ]));
    assert_eq!(d.max_age, Some(9));
    assert!(d.no_store);
    // A comma inside a quoted string does not split.
    assert!(!cc("foo=\"a, no-cache\"").no_cache);
}

#[test]
fn pragma_counts_only_without_cache_control() {
    assert!(parse(&headers(&[("pragma", "no-cache")])).no_cache);
    assert!(
        !parse(&headers(&[
            ("pragma", "no-cache"),
            ("cache-control", "max-age=60")
        ]))
        .no_cache
    );
    assert!(!parse(&headers(&[("pragma", "x-other")])).any());
}

#[test]
fn no_cache_and_max_age_0_always_revalidate() {
    assert_eq!(
        on_hit(&cc("no-cache"), &entry(0, 100)),
        HitVerdict::Revalidate
    );
    assert_eq!(
        on_hit(&cc("max-age=0"), &entry(1, 100)),
        HitVerdict::Revalidate
    );
    // Even an entry of age 0 (stored this second).
    assert_eq!(
        on_hit(&cc("max-age=0"), &entry(0, 100)),
        HitVerdict::Revalidate
    );
    assert_eq!(on_hit(&cc("max-age=1"), &entry(1, 100)), HitVerdict::AsIs);
}

#[test]
fn max_age_compares_with_the_entry_age() {
    assert_eq!(
        on_hit(&cc("max-age=3600"), &entry(10, 50)),
        HitVerdict::AsIs
    );
    assert_eq!(
        on_hit(&cc("max-age=5"), &entry(10, 50)),
        HitVerdict::Revalidate
    );
    // A stale entry is not acceptable to a client that sent max-age (no max-stale).
    assert_eq!(
        on_hit(&cc("max-age=3600"), &entry(10, -1)),
        HitVerdict::Revalidate
    );
}

#[test]
fn min_fresh_wants_time_left() {
    assert_eq!(on_hit(&cc("min-fresh=10"), &entry(0, 20)), HitVerdict::AsIs);
    assert_eq!(
        on_hit(&cc("min-fresh=30"), &entry(0, 20)),
        HitVerdict::Revalidate
    );
}

#[test]
fn max_stale_serves_stale_entries_the_response_allows() {
    assert_eq!(
        on_hit(&cc("max-stale"), &entry(100, -50)),
        HitVerdict::ServeStale
    );
    assert_eq!(
        on_hit(&cc("max-stale=60"), &entry(100, -50)),
        HitVerdict::ServeStale
    );
    assert_eq!(
        on_hit(&cc("max-stale=10"), &entry(100, -50)),
        HitVerdict::AsIs
    );
    let strict = EntryState {
        may_serve_stale: false,
        ..entry(100, -50)
    };
    assert_eq!(on_hit(&cc("max-stale"), &strict), HitVerdict::AsIs);
    // Without directives a stale entry is left to the stage's windows.
    assert_eq!(on_hit(&cc("foo"), &entry(100, -50)), HitVerdict::AsIs);
}

#[test]
fn a_validation_after_arrival_satisfies_the_request() {
    let validated = EntryState {
        validated_since_arrival: true,
        ..entry(0, 100)
    };
    assert_eq!(on_hit(&cc("no-cache"), &validated), HitVerdict::AsIs);
}
