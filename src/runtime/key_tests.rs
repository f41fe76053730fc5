//! Unit tests of `key.rs` (kept apart so the module itself stays short).

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::diag::{Located, Pos};
use crate::policy::model::{CacheKey, KeyFragment};

const CTX: ScopeContext<'static> = ScopeContext {
    organization: "org",
    stage: "prod",
    api_name: "weather",
    revision: 16,
    proxy_endpoint: "default",
    target_endpoint: "default",
    on_target: false,
    environment: None,
};

fn literal(s: &str) -> KeyFragment {
    KeyFragment {
        pos: Pos::default(),
        reference: None,
        literal: Some(s.to_owned()),
        type_: None,
    }
}

fn reference(name: &str, fallback: Option<&str>) -> KeyFragment {
    KeyFragment {
        pos: Pos::default(),
        reference: Some(name.to_owned()),
        literal: fallback.map(str::to_owned),
        type_: None,
    }
}

fn cache_key(prefix: Option<&str>, fragments: Vec<KeyFragment>) -> CacheKey {
    CacheKey {
        pos: Pos::default(),
        prefix: prefix.map(|p| Located::new(p.to_owned(), Pos::default())),
        fragments,
    }
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn spec(prefix: Option<&str>, fragments: Vec<KeyFragment>) -> KeySpec {
    crate::config::policies::key_spec(
        Namespace::Value,
        &cache_key(prefix, fragments),
        Scope::Exclusive,
        None,
        &CTX,
    )
}

#[test]
fn apigee_doc_example() {
    let key =
        spec(Some("myprefix"), vec![literal("hello"), literal("world")]).build(&HashMap::new());
    assert_eq!(key.readable, "myprefix__hello__world");
    assert_eq!(
        key.fragments,
        vec![Some("hello".to_owned()), Some("world".to_owned())]
    );
    assert!(key.unresolved.is_empty());
}

#[test]
fn scope_prefixes() {
    let cases = [
        (Scope::Global, "org__prod__k"),
        (Scope::Application, "org__prod__weather__k"),
        (Scope::Proxy, "org__prod__weather__16__default__k"),
        (Scope::Target, "org__prod__weather__16__default__k"),
        (Scope::Exclusive, "org__prod__weather__16__default__k"),
    ];
    let key = cache_key(None, vec![literal("k")]);
    for (scope, expected) in cases {
        let built = crate::config::policies::key_spec(Namespace::Value, &key, scope, None, &CTX)
            .build(&HashMap::new());
        assert_eq!(built.readable, expected, "{scope:?}");
    }
}

#[test]
fn empty_prefix_falls_back_to_scope() {
    let key = spec(Some(""), vec![literal("k")]).build(&HashMap::new());
    assert_eq!(key.readable, "org__prod__weather__16__default__k");
}

#[test]
fn scopes_spelled_alike_share_entries_others_do_not() {
    let key = cache_key(None, vec![literal("k")]);
    let store = |scope| {
        crate::config::policies::key_spec(Namespace::Value, &key, scope, None, &CTX)
            .build(&HashMap::new())
            .store_key()
    };
    assert_eq!(store(Scope::Exclusive), store(Scope::Proxy));
    assert_ne!(store(Scope::Global), store(Scope::Application));
    assert_ne!(store(Scope::Application), store(Scope::Proxy));
    // A custom prefix spelled like the scope prefix is still a different entry.
    let custom = spec(Some("org__prod"), vec![literal("k")]).build(&HashMap::new());
    let global =
        crate::config::policies::key_spec(Namespace::Value, &key, Scope::Global, None, &CTX)
            .build(&HashMap::new());
    assert_eq!(custom.readable, global.readable);
    assert_ne!(custom.store_key(), global.store_key());
}

#[test]
fn revision_is_part_of_narrow_scopes() {
    let key = cache_key(None, vec![literal("k")]);
    let next = ScopeContext {
        revision: 17,
        ..CTX
    };
    let build = |scope, ctx: &ScopeContext| {
        crate::config::policies::key_spec(Namespace::Value, &key, scope, None, ctx)
            .build(&HashMap::new())
            .store_key()
    };
    assert_ne!(build(Scope::Proxy, &CTX), build(Scope::Proxy, &next));
    assert_eq!(
        build(Scope::Application, &CTX),
        build(Scope::Application, &next)
    );
}

#[test]
fn ref_resolves_then_falls_back_to_literal() {
    let s = spec(Some("p"), vec![reference("request.header.x", Some("dflt"))]);
    let hit = s.build(&vars(&[("request.header.x", "v")]));
    assert_eq!(hit.readable, "p__v");
    let fallback = s.build(&HashMap::new());
    assert_eq!(fallback.readable, "p__dflt");
    assert!(fallback.unresolved.is_empty());
    assert_ne!(hit.store_key(), fallback.store_key());
}

#[test]
fn unresolved_is_omitted_from_readable_and_reported() {
    let s = spec(
        Some("p"),
        vec![
            literal("a"),
            reference("request.header.x", None),
            literal("b"),
        ],
    );
    let key = s.build(&HashMap::new());
    assert_eq!(key.readable, "p__a__b");
    assert_eq!(key.unresolved, vec!["request.header.x".to_owned()]);
    assert_eq!(
        key.fragments,
        vec![Some("a".to_owned()), None, Some("b".to_owned())]
    );
}

#[test]
fn unresolved_differs_from_empty() {
    let s = spec(Some("p"), vec![literal("a"), reference("x", None)]);
    let absent = s.build(&HashMap::new());
    let empty = s.build(&vars(&[("x", "")]));
    assert_ne!(absent.store_key(), empty.store_key());
    // ...and from the key without that fragment at all.
    let shorter = spec(Some("p"), vec![literal("a")]).build(&HashMap::new());
    assert_eq!(shorter.readable, absent.readable);
    assert_ne!(shorter.store_key(), absent.store_key());
    assert_ne!(shorter.store_key(), empty.store_key());
}

#[test]
fn empty_ref_and_empty_fragment() {
    let fragment = KeyFragment {
        pos: Pos::default(),
        reference: Some(String::new()),
        literal: Some("lit".to_owned()),
        type_: None,
    };
    let key = spec(Some("p"), vec![fragment]).build(&HashMap::new());
    assert_eq!(key.readable, "p__lit");
    let bare = KeyFragment {
        pos: Pos::default(),
        reference: None,
        literal: None,
        type_: None,
    };
    let key = spec(Some("p"), vec![bare]).build(&HashMap::new());
    assert_eq!(key.fragments, vec![Some(String::new())]);
    assert!(key.unresolved.is_empty());
}

#[test]
fn namespaces_differ() {
    let key = cache_key(Some("p"), vec![literal("a")]);
    let r = crate::config::policies::key_spec(Namespace::Response, &key, Scope::Global, None, &CTX);
    let v = crate::config::policies::key_spec(Namespace::Value, &key, Scope::Global, None, &CTX);
    assert_eq!(r.namespace(), Namespace::Response);
    let (r, v) = (r.build(&HashMap::new()), v.build(&HashMap::new()));
    assert_eq!(r.readable, v.readable);
    assert_ne!(r.store_key(), v.store_key());
}

#[test]
fn cache_resource_differs() {
    let key = cache_key(Some("p"), vec![literal("a")]);
    let build = |res| {
        crate::config::policies::key_spec(Namespace::Value, &key, Scope::Global, res, &CTX)
            .build(&HashMap::new())
    };
    let (none, a, b) = (build(None), build(Some("a")), build(Some("b")));
    assert_eq!(none.readable, a.readable);
    assert_ne!(none.store_key(), a.store_key());
    assert_ne!(a.store_key(), b.store_key());
    assert_eq!(none.store_key(), build(Some("")).store_key());
}

#[test]
fn stage_differs() {
    let key = cache_key(Some("p"), vec![literal("a")]);
    let other = ScopeContext {
        stage: "test",
        ..CTX
    };
    let a = crate::config::policies::key_spec(Namespace::Value, &key, Scope::Global, None, &CTX);
    let b = crate::config::policies::key_spec(Namespace::Value, &key, Scope::Global, None, &other);
    assert_ne!(
        a.build(&HashMap::new()).store_key(),
        b.build(&HashMap::new()).store_key()
    );
    let aws_a = KeySpec::aws_default("prod", &[]).build(&HashMap::new());
    let aws_b = KeySpec::aws_default("test", &[]).build(&HashMap::new());
    assert_ne!(aws_a.store_key(), aws_b.store_key());
}

#[test]
fn separators_in_values_cannot_forge_boundaries() {
    let a = spec(Some("a__b"), vec![literal("c")]).build(&HashMap::new());
    let b = spec(Some("a"), vec![literal("b__c")]).build(&HashMap::new());
    let c = spec(Some("a"), vec![literal("b"), literal("c")]).build(&HashMap::new());
    assert_eq!(a.readable, "a__b__c");
    assert_eq!(a.readable, b.readable);
    assert_eq!(b.readable, c.readable);
    assert_ne!(a.store_key(), b.store_key());
    assert_ne!(b.store_key(), c.store_key());
    assert_ne!(a.store_key(), c.store_key());
}

#[test]
fn framing_layout_is_stable() {
    let key = spec(Some("p"), vec![literal(""), reference("x", None)]).build(&HashMap::new());
    let mut expected = vec![KEY_SCHEMA_VERSION, b'V', 0, 0, 0, 4];
    expected.extend_from_slice(b"prod");
    expected.extend_from_slice(&[0x00, b'P', 0, 0, 0, 1, b'p']);
    expected.extend_from_slice(&[PRESENT, 0, 0, 0, 0, ABSENT]);
    assert_eq!(key.framed, expected);
    assert_eq!(key.framed.capacity(), key.framed.len());
}

#[test]
fn huge_lengths_are_escaped() {
    let mut out = Vec::new();
    push_len(&mut out, 7);
    assert_eq!(out, [0, 0, 0, 7]);
    assert_eq!(framed_len(7), 11);
    if let Ok(huge) = usize::try_from(u64::from(u32::MAX)) {
        let mut out = Vec::new();
        push_len(&mut out, huge);
        assert_eq!(out.len(), 12);
        assert_eq!(&out[..4], &[0xff; 4]);
        assert_eq!(framed_len(huge), huge + 12);
    }
}

#[test]
fn accept_headers_are_appended() {
    let s = spec(Some("p"), vec![literal("a")]).with_accept_headers();
    let json = s.build(&vars(&[
        ("request.header.accept", "application/json"),
        ("request.header.accept-encoding", "gzip"),
    ]));
    assert_eq!(json.readable, "p__a__application/json__gzip");
    assert!(json.unresolved.is_empty());
    assert_eq!(json.fragments.len(), 5);
    let xml = s.build(&vars(&[
        ("request.header.accept", "application/xml"),
        ("request.header.accept-encoding", "gzip"),
    ]));
    assert_ne!(json.store_key(), xml.store_key());
    // Idempotent.
    assert_eq!(s.clone().with_accept_headers(), s);
}

#[test]
fn authorization_separates_callers_and_stays_secret() {
    let s = KeySpec::aws_default("prod", &[]).with_authorization();
    let base = [("request.verb", "GET"), ("proxy.pathsuffix", "/items")];
    let alice = s.build(&vars(&[
        base[0],
        base[1],
        ("request.header.authorization", "A"),
    ]));
    let bob = s.build(&vars(&[
        base[0],
        base[1],
        ("request.header.authorization", "B"),
    ]));
    let anon = s.build(&vars(&base));
    let empty = s.build(&vars(&[
        base[0],
        base[1],
        ("request.header.authorization", ""),
    ]));
    assert_ne!(alice.store_key(), bob.store_key());
    assert_ne!(alice.store_key(), anon.store_key());
    assert_ne!(anon.store_key(), empty.store_key());
    assert_eq!(alice.readable, "GET /items");
    assert_eq!(alice.fragments.len(), 2);
    assert!(anon.unresolved.is_empty());
    assert!(!format!("{alice:?}").contains("\"A\""));
    // Without the opt-in, the header is ignored.
    let plain = KeySpec::aws_default("prod", &[]);
    assert_ne!(plain.build(&vars(&base)).store_key(), anon.store_key());
}

fn aws_vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut v = vars(&[("request.verb", "GET"), ("proxy.pathsuffix", "/items/7")]);
    v.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    v
}

#[test]
fn aws_default_key() {
    let params = [
        KeyParameter::Query("type".to_owned()),
        KeyParameter::Header("x-tenant".to_owned()),
        KeyParameter::Path("id".to_owned()),
    ];
    let s = KeySpec::aws_default("prod", &params);
    let key = s.build(&aws_vars(&[
        ("request.queryparam.type", "admin"),
        ("request.header.x-tenant", "acme"),
        ("request.path.id", "7"),
    ]));
    assert_eq!(
        key.readable,
        "GET /items/7 type=admin header.x-tenant=acme path.id=7"
    );
    let partial = s.build(&aws_vars(&[("request.queryparam.type", "admin")]));
    assert_eq!(partial.readable, "GET /items/7 type=admin");
    assert_eq!(
        partial.unresolved,
        vec![
            "request.header.x-tenant".to_owned(),
            "request.path.id".to_owned()
        ]
    );
}

#[test]
fn aws_default_only_declared_parameters_count() {
    let s = KeySpec::aws_default("prod", &[KeyParameter::Query("type".to_owned())]);
    let key = |extra: &[(&str, &str)]| s.build(&aws_vars(extra)).store_key();
    let admin = key(&[("request.queryparam.type", "admin")]);
    assert_eq!(
        admin,
        key(&[
            ("request.queryparam.type", "admin"),
            ("request.queryparam.department", "A"),
            ("request.header.x-other", "1"),
        ])
    );
    assert_ne!(admin, key(&[("request.queryparam.type", "regular")]));
    assert_ne!(admin, key(&[]));
    assert_ne!(key(&[]), key(&[("request.queryparam.type", "")]));
    let post = s
        .build(&vars(&[
            ("request.verb", "POST"),
            ("proxy.pathsuffix", "/items/7"),
            ("request.queryparam.type", "admin"),
        ]))
        .store_key();
    assert_ne!(admin, post);
    let other_path = s
        .build(&vars(&[
            ("request.verb", "GET"),
            ("proxy.pathsuffix", "/items/8"),
            ("request.queryparam.type", "admin"),
        ]))
        .store_key();
    assert_ne!(admin, other_path);
}

#[test]
fn aws_and_policy_keys_never_collide() {
    let aws = KeySpec::aws_default("prod", &[]).build(&aws_vars(&[]));
    let policy = crate::config::policies::key_spec(
        Namespace::Response,
        &cache_key(
            None,
            vec![
                reference("request.verb", None),
                reference("proxy.pathsuffix", None),
            ],
        ),
        Scope::Global,
        None,
        &CTX,
    )
    .build(&aws_vars(&[]));
    assert_ne!(aws.store_key(), policy.store_key());
}

/// A spec with one `ref` fragment per value, and variables resolving the present ones.
fn key_of_values(values: &[Option<String>]) -> StoreKey {
    let fragments = (0..values.len())
        .map(|i| reference(&format!("v{i}"), None))
        .collect();
    let mut v = HashMap::new();
    for (i, value) in values.iter().enumerate() {
        if let Some(value) = value {
            v.insert(format!("v{i}"), value.clone());
        }
    }
    let built = spec(Some("p"), fragments).build(&v);
    assert_eq!(&built.fragments, values);
    built.store_key()
}

fn fragment_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just(String::new()),
        Just("__".to_owned()),
        Just("_".to_owned()),
        "[a_]{0,5}",
        any::<String>(),
    ])
}

/// Joins `tokens` with `__`, starting a new segment where `cuts[i]` is set.
fn segments(tokens: &[String], cuts: &[bool]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match out.last_mut() {
            Some(last) if !cuts.get(i).copied().unwrap_or(false) => {
                last.push_str("__");
                last.push_str(t);
            }
            _ => out.push(t.clone()),
        }
    }
    out
}

proptest! {
    #[test]
    fn distinct_fragment_lists_never_collide(
        a in prop::collection::vec(fragment_value(), 0..5),
        b in prop::collection::vec(fragment_value(), 0..5),
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(key_of_values(&a), key_of_values(&b));
    }

    #[test]
    fn distinct_splits_of_the_same_text_never_collide(
        tokens in prop::collection::vec("[ab_]{1,3}", 1..6),
        cuts_a in prop::collection::vec(any::<bool>(), 6),
        cuts_b in prop::collection::vec(any::<bool>(), 6),
    ) {
        let split = |cuts: &[bool]| {
            let mut segs = segments(&tokens, cuts);
            let prefix = segs.remove(0);
            (prefix, segs)
        };
        let (a, b) = (split(&cuts_a), split(&cuts_b));
        prop_assume!(a != b);
        let build = |(prefix, frags): &(String, Vec<String>)| {
            spec(Some(prefix), frags.iter().map(|f| literal(f)).collect())
                .build(&HashMap::new())
        };
        let (ka, kb) = (build(&a), build(&b));
        prop_assert_eq!(&ka.readable, &kb.readable);
        prop_assert_ne!(ka.store_key(), kb.store_key());
    }
}

/// Variables whose request body was not read: `request.formparam.*` is null but withheld.
struct Withholding(HashMap<String, String>);

impl Variables for Withholding {
    fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        Variables::get(&self.0, name)
    }

    fn withheld(&self, name: &str) -> bool {
        name.starts_with("request.formparam.")
    }
}

#[test]
fn a_key_reading_a_withheld_body_is_marked_even_with_a_fallback() {
    let vars = Withholding(vars(&[("request.header.x", "1")]));
    let on_body = spec(
        None,
        vec![reference("request.formparam.user", Some("anon"))],
    )
    .build(&vars);
    assert!(on_body.withheld);
    let on_header = spec(None, vec![reference("request.header.x", None)]).build(&vars);
    assert!(!on_header.withheld);
    let plain = spec(None, vec![reference("request.formparam.user", None)]).build(&HashMap::new());
    assert!(!plain.withheld);
    assert!(
        !spec(None, vec![literal("k")])
            .build_values(vec![None])
            .withheld
    );
}

#[test]
fn environment_partitions_name_their_environment_and_cache() {
    for (env, cache) in [("test", ""), ("test", "tokens"), ("prod-eu", "a_b")] {
        let partition = env_partition(env, Some(cache));
        assert_eq!(env_partition_parts(&partition), Some((env, cache)));
    }
    assert_eq!(
        env_partition_parts(&env_partition("test", None)),
        Some(("test", ""))
    );
    assert_eq!(env_partition_parts("prod"), None);
}
