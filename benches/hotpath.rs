//! Micro-benchmarks of the per-request work cachegate adds on top of Pingora: routing a path
//! to its stage and resource, choosing the conditional flow, and planning the cache lookup
//! (which builds the cache key). They show a regression in these steps without a load test:
//! `cargo bench --bench hotpath` (also run by `make bench`).

use std::collections::HashMap;
use std::path::Path;

use cachegate::engine::plan::{self as decide, RequestFacts};
use cachegate::runtime::flow::condition::Condition;
use cachegate::runtime::flow::vars::{Body, RequestVars};
use cachegate::runtime::flow::Variables;
use cachegate::runtime::stage::{KeyParameter, RuntimeConfig, Stage};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::HeaderMap;

/// Loads a policies directory; a benchmark of a broken configuration would measure nothing.
fn load(dir: &Path) -> RuntimeConfig {
    let outcome = cachegate::config::load(dir);
    match outcome.config {
        Some(c) => c,
        None => panic!("{} does not load:\n{}", dir.display(), outcome.diagnostics),
    }
}

/// A configuration with `n` stages (`/s0` … `/s{n-1}`), each with a few resource templates.
fn many_stages(n: usize) -> (tempfile::TempDir, RuntimeConfig) {
    let dir = tempfile::tempdir().expect("temporary directory");
    for i in 0..n {
        let stage = dir.path().join(format!("s{i}"));
        std::fs::create_dir(&stage).expect("stage directory");
        std::fs::write(
            stage.join("stage.toml"),
            format!(
                "base_path = \"/s{i}\"\ntarget = \"http://127.0.0.1:9\"\n\
                 resources = [\"/items\", \"/items/{{id}}\", \"/users/{{user}}/orders/{{order}}\"]\n\
                 [cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.page\"]\n"
            ),
        )
        .expect("stage.toml");
    }
    let config = load(dir.path());
    (dir, config)
}

/// The `messageid` of the benchmark's one request.
static MESSAGE_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The variables of `GET <path>?<query>` on `stage`.
fn vars<'a>(
    stage: &'a Stage,
    path: &'a str,
    suffix: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    custom: &'a HashMap<String, String>,
) -> RequestVars<'a> {
    RequestVars {
        method: "GET",
        uri: path,
        path,
        query,
        headers,
        body: Body::Absent,
        form: false,
        base_path: &stage.base_path,
        path_suffix: suffix,
        path_params: &[],
        client_ip: "127.0.0.1",
        stage: &stage.name,
        organization: "bench",
        api_name: &stage.api_name,
        revision: 1,
        flow: None,
        proxy_name: "default",
        target_name: None,
        route_name: None,
        target_url: None,
        response_status: None,
        response_headers: None,
        response_reason: None,
        custom,
        message_id: &MESSAGE_ID,
    }
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "application/json"),
        ("x-tenant", "acme"),
        ("accept-encoding", "gzip"),
    ] {
        h.insert(name, value.parse().expect("header value"));
    }
    h
}

fn routing(c: &mut Criterion) {
    let example = load(Path::new("policies"));
    c.bench_function("route: example policies, /prod/items/42", |b| {
        b.iter(|| {
            example
                .route(black_box("/prod/items/42"))
                .map(|(s, _)| s.revision)
        })
    });
    let (_dir, hundred) = many_stages(100);
    c.bench_function("route: 100 stages, last stage", |b| {
        b.iter(|| {
            hundred
                .route(black_box("/s99/users/7/orders/9"))
                .map(|(s, _)| s.revision)
        })
    });
    let (stage, suffix) = hundred.route("/s99/users/7/orders/9").expect("routed");
    c.bench_function("resource template match + path parameters", |b| {
        b.iter(|| {
            stage
                .resource_for(black_box(suffix))
                .and_then(|r| r.captures(suffix))
                .map(|c| c.len())
        })
    });
}

fn conditions(c: &mut Criterion) {
    let config = load(Path::new("policies"));
    let (stage, suffix) = config.route("/prod/items/42").expect("routed");
    let (h, custom) = (headers(), HashMap::new());
    let v = vars(stage, "/prod/items/42", suffix, "format=json", &h, &custom);
    c.bench_function("flow selection: example prod stage (2 flows)", |b| {
        b.iter(|| {
            stage
                .proxy
                .flows
                .iter()
                .position(|f| f.condition.as_ref().is_none_or(|c| c.eval(black_box(&v))))
        })
    });
    let cond = Condition::parse(
        r#"(request.verb = "GET" or request.verb = "HEAD") and request.header.x-tenant ~~ "^ac" and request.queryparam.format != null"#,
    )
    .expect("condition parses");
    c.bench_function("condition: verb, header regex, query param", |b| {
        b.iter(|| cond.eval(black_box(&v as &dyn Variables)))
    });
}

fn keys(c: &mut Criterion) {
    let config = load(Path::new("policies"));
    let (stage, suffix) = config.route("/prod/items/42").expect("routed");
    let (h, custom) = (headers(), HashMap::new());
    let v = vars(
        stage,
        "/prod/items/42",
        suffix,
        "format=json&type=a",
        &h,
        &custom,
    );
    let flow = stage.response_caches.values().next().cloned();
    let facts = RequestFacts {
        method: "GET",
        suffix,
        query: "format=json&type=a",
        has_authorization: false,
        invalidation_request: false,
        has_cookie: false,
        has_body: false,
        host: Some("api.example.com"),
        drops_end_to_end: false,
    };
    // A plan that bypassed the cache would measure an early return.
    assert!(decide::plan(stage, flow.clone(), &facts, &v).is_ok());
    assert!(decide::plan(stage, None, &facts, &v).is_ok());
    c.bench_function("cache plan + key: ResponseCache, 3 fragments", |b| {
        b.iter(|| decide::plan(stage, flow.clone(), black_box(&facts), &v).is_ok())
    });
    c.bench_function("cache plan + key: stage caching (AWS key)", |b| {
        b.iter(|| decide::plan(stage, None, black_box(&facts), &v).is_ok())
    });
    let spec = cachegate::runtime::key::KeySpec::aws_default(
        "prod",
        &[
            KeyParameter::Query("type".to_owned()),
            KeyParameter::Header("x-tenant".to_owned()),
        ],
    );
    c.bench_function("key build: AWS default, 2 parameters", |b| {
        b.iter(|| spec.build(black_box(&v)).store_key())
    });
}

criterion_group!(benches, routing, conditions, keys);
criterion_main!(benches);
