//! `cachegate import`: a bundle and the native stage imported from it, each served by its own
//! gateway in front of the same example origin, answer the same requests the same way — status,
//! X-Cache and Cache-Status, what reaches the target, what the policies add, which answers come
//! from the cache — and build the same cache keys, Apigee's documented strings.

use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{client, origin, send, PolicyDir, Resp, TestGateway, ADMIN_TOKEN};

const BASIC: &str = "GoogleCloudPlatform+apigee-samples/basic-caching";

/// Runs `cachegate import`; returns its status and what it printed.
fn import(bundle: &std::path::Path, stage: &str, out: &std::path::Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_cachegate"))
        .arg("import")
        .arg(bundle)
        .args(["--stage", stage, "--out"])
        .arg(out)
        .output()
        .expect("run cachegate import");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// Imports stage `stage` of `bundle` into a new policies folder and checks it with
/// `cachegate validate`.
fn imported(o: &cachegate_origin::Origin, bundle: &PolicyDir, stage: &str) -> PolicyDir {
    let native = PolicyDir::new(o);
    let (ok, text) = import(
        &bundle.path().join(stage),
        stage,
        &native.path().join(stage),
    );
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("imported stage `{stage}`")),
        "{text}"
    );
    assert!(
        !native.path().join(stage).join("apiproxy").exists(),
        "a native stage, not a copy of the bundle"
    );
    let v = Command::new(env!("CARGO_BIN_EXE_cachegate"))
        .arg("validate")
        .arg(native.path())
        .output()
        .expect("run cachegate validate");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    native
}

/// What a client sees of each answer, in a form that does not depend on which gateway or which
/// origin request it was: the target's `seq` becomes the index of the first answer that carried
/// it (a cache hit points at the miss it was stored from), and `headers` are the request
/// headers that reached the target, without the per-gateway forwarding ones.
fn observe(answers: &[Resp], policy_headers: &[&str]) -> Vec<Value> {
    let mut seqs: Vec<Value> = Vec::new();
    answers
        .iter()
        .map(|r| {
            let body = r.json();
            let seq = body["seq"].clone();
            let first = seqs.iter().position(|s| *s == seq && !seq.is_null());
            seqs.push(seq);
            let mut forwarded = body["headers"].as_object().cloned().unwrap_or_default();
            forwarded.retain(|k, _| {
                !k.starts_with("x-forwarded") && k != "forwarded" && k != "x-request-id"
            });
            let cache_status = r.header("cache-status");
            let stem = cache_status
                .split("; ")
                .filter(|p| !p.starts_with("ttl="))
                .collect::<Vec<_>>()
                .join("; ");
            let added: serde_json::Map<String, Value> = policy_headers
                .iter()
                .map(|h| ((*h).to_owned(), json!(r.header(h))))
                .collect();
            json!({
                "status": r.status,
                "x-cache": r.x_cache(),
                "cache-status": stem,
                "method": body["method"],
                "path": body["path"],
                "query": body["query"],
                "error": body["error"],
                "policy": body["policy"],
                "message": body["message"],
                "forwarded": forwarded,
                "from_answer": first,
                "policy_headers": added,
            })
        })
        .collect()
}

/// The readable key the admin API finds for `body` on stage `stage` of `gw`.
async fn admin_key(gw: &TestGateway, stage: &str, body: Value) -> String {
    let r = send(
        client()
            .post(gw.admin(&format!("/stages/{stage}/cache/invalidate")))
            .json(&body)
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["key"].as_str().unwrap_or_default().to_owned()
}

async fn basic_caching_answers(gw: &TestGateway) -> Vec<Resp> {
    let url = gw.url("/v1/samples/basic-caching?q=rust");
    let mut out = Vec::new();
    for bypass in [false, false, true, false] {
        let mut req = client().get(&url);
        if bypass {
            req = req.header("x-bypass-cache", "true");
        }
        out.push(send(req).await);
    }
    out.push(send(client().post(&url).body("{}")).await);
    out
}

#[tokio::test]
async fn the_imported_basic_caching_sample_answers_and_keys_as_the_bundle() {
    let o = origin();
    let bundle = PolicyDir::new(&o);
    bundle.bundle("books", BASIC, "/echo/volumes");
    bundle.stage("books", "revision = 7\n");
    let native = imported(&o, &bundle, "books");
    let stage_toml = std::fs::read_to_string(native.path().join("books/stage.toml"))
        .expect("imported stage.toml");
    assert!(
        stage_toml.contains("[target_endpoint.postflow]"),
        "{stage_toml}"
    );

    let (a, b) = (TestGateway::start(bundle), TestGateway::start(native));
    let (from_bundle, from_import) = (
        basic_caching_answers(&a).await,
        basic_caching_answers(&b).await,
    );
    // `cached-on` is the time PC-SetCachedOnDateTime stored: the same kind of value, not the
    // same instant.
    for r in from_bundle.iter().chain(&from_import) {
        let cached_on = r.header("cached-on");
        assert!(
            cached_on.is_empty() || cached_on.ends_with(" GMT"),
            "{cached_on}"
        );
    }
    let headers = ["served-from-cache"];
    let seen = observe(&from_bundle, &headers);
    assert_eq!(seen, observe(&from_import, &headers));
    // The sequence means something: miss, hit of it, bypass refresh, hit of the refresh, POST.
    let x_cache: Vec<&str> = from_bundle.iter().map(Resp::x_cache).collect();
    assert_eq!(x_cache, ["MISS", "HIT", "REFRESH", "HIT", "BYPASS"]);
    assert_eq!(seen[1]["from_answer"], 0);
    assert_eq!(seen[3]["from_answer"], 2);
    let hit_flags: Vec<String> = from_import
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r.header("served-from-cache"),
                !r.header("cached-on").is_empty()
            )
        })
        .collect();
    assert_eq!(
        hit_flags[..4],
        ["false/false", "true/true", "false/false", "true/true"]
    );
    // A POST skips the lookup, so `responsecache.RC-CacheVolumes.cachehit` is unset and the
    // sample's AM-SetCacheHitHeader (no IgnoreUnresolvedVariables) fails, in both.
    assert_eq!(seen[4]["status"], 500);
    assert_eq!(seen[4]["policy"], "AM-SetCacheHitHeader");

    // Apigee's documented key, Exclusive scope on the ProxyEndpoint: the same in both.
    let request = json!({"path": "", "query": "q=rust"});
    let key = "cachegate__books__basic-caching__7__default__/v1/samples/basic-caching?q=rust";
    assert_eq!(admin_key(&a, "books", request.clone()).await, key);
    assert_eq!(admin_key(&b, "books", request).await, key);
    // The LookupCache attached on the TargetEndpoint only: Exclusive names the TargetEndpoint.
    let lookup =
        json!({"policy": "LC-LookupCachedOnDateTime", "fragments": ["q=rust", "volumesCachedOn"]});
    let target_key = "cachegate__books__basic-caching__7__default__q=rust__volumesCachedOn";
    assert_eq!(admin_key(&a, "books", lookup.clone()).await, target_key);
    assert_eq!(admin_key(&b, "books", lookup).await, target_key);
}

/// A bundle with named endpoints and RouteRule, a conditional flow whose ResponseCache (Proxy
/// scope) runs under a step condition, a flow chosen by what the PreFlow set, TargetEndpoint
/// flows with Exclusive-scoped LookupCache/PopulateCache, and a Quota the stage.toml beside it
/// skips. AssignMessages put the keys and flow variables in response headers.
fn shop_bundle(d: &PolicyDir) {
    let am = |name: &str, headers: &[(&str, &str)]| {
        let hs: String = headers
            .iter()
            .map(|(n, v)| format!(r#"<Header name="{n}">{v}</Header>"#))
            .collect();
        (
            format!("shop/apiproxy/policies/{name}.xml"),
            format!(
                r#"<AssignMessage name="{name}"><Set><Headers>{hs}</Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#
            ),
        )
    };
    let files = [
        ("shop/apiproxy/shop.xml".to_owned(), r#"<APIProxy name="shop" revision="3"/>"#.to_owned()),
        (
            "shop/apiproxy/proxies/edge.xml".into(),
            r#"<ProxyEndpoint name="edge">
  <HTTPProxyConnection><BasePath>/shop</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>Q-limit</Name></Step><Step><Name>AM-tier</Name></Step></Request></PreFlow>
  <Flows>
    <Flow name="items">
      <Condition>proxy.pathsuffix MatchesPath "/items/**"</Condition>
      <Request><Step><Name>RC-items</Name><Condition>request.header.x-no-cache != "1"</Condition></Step></Request>
      <Response><Step><Name>RC-items</Name></Step><Step><Name>AM-rc</Name></Step></Response>
    </Flow>
    <Flow name="gold">
      <Condition>tier = "gold"</Condition>
      <Response><Step><Name>AM-gold</Name></Step></Response>
    </Flow>
  </Flows>
  <PostFlow><Response><Step><Name>AM-names</Name></Step></Response></PostFlow>
  <RouteRule name="main"><TargetEndpoint>backend</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#.into(),
        ),
        (
            "shop/apiproxy/targets/backend.xml".into(),
            r#"<TargetEndpoint name="backend">
  <PreFlow><Request><Step><Name>LC-seen</Name></Step></Request></PreFlow>
  <Flows>
    <Flow name="reads"><Condition>request.verb = "GET"</Condition>
      <Response><Step><Name>PC-seen</Name><Condition>lookupcache.LC-seen.cachehit = false</Condition></Step><Step><Name>AM-seen</Name></Step></Response>
    </Flow>
  </Flows>
  <HTTPTargetConnection><URL>http://{{ORIGIN}}/echo</URL></HTTPTargetConnection>
</TargetEndpoint>"#.into(),
        ),
        (
            "shop/apiproxy/policies/Q-limit.xml".into(),
            r#"<Quota name="Q-limit"><Allow count="5"/><Interval>1</Interval><TimeUnit>minute</TimeUnit></Quota>"#.into(),
        ),
        (
            "shop/apiproxy/policies/AM-tier.xml".into(),
            r#"<AssignMessage name="AM-tier"><AssignVariable><Name>tier</Name><Ref>request.header.x-tier</Ref><Value>basic</Value></AssignVariable></AssignMessage>"#.into(),
        ),
        (
            "shop/apiproxy/policies/RC-items.xml".into(),
            r#"<ResponseCache name="RC-items"><Scope>Proxy</Scope><CacheKey><KeyFragment ref="request.uri"/><KeyFragment ref="tier"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#.into(),
        ),
        (
            "shop/apiproxy/policies/LC-seen.xml".into(),
            r#"<LookupCache name="LC-seen"><Scope>Exclusive</Scope><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><AssignTo>seen</AssignTo></LookupCache>"#.into(),
        ),
        (
            "shop/apiproxy/policies/PC-seen.xml".into(),
            r#"<PopulateCache name="PC-seen"><Scope>Exclusive</Scope><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings><Source>tier</Source></PopulateCache>"#.into(),
        ),
        am("AM-rc", &[("x-rc-key", "{responsecache.RC-items.cachekey}"), ("x-rc-hit", "{responsecache.RC-items.cachehit}")]),
        am("AM-gold", &[("x-gold", "{current.flow.name}")]),
        am("AM-seen", &[("x-lc-key", "{lookupcache.LC-seen.cachekey}"), ("x-seen", "{seen}")]),
        am("AM-names", &[("x-names", "{apiproxy.name} {apiproxy.revision} {proxy.name} {route.name} {target.name}")]),
        ("shop/stage.toml".into(), "skip_policies = [\"Quota\"]\n".into()),
    ];
    for (path, text) in files {
        d.write(&path, &text);
    }
}

async fn shop_answers(gw: &TestGateway) -> Vec<Resp> {
    let req = |path: &str, headers: &[(&'static str, &'static str)]| {
        let mut r = client().get(gw.url(path));
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        r
    };
    let mut out = Vec::new();
    for (path, headers) in [
        ("/shop/items/1", &[][..]),
        ("/shop/items/1", &[][..]),
        ("/shop/items/1", &[("x-tier", "gold")][..]),
        ("/shop/items/1", &[("x-tier", "gold")][..]),
        ("/shop/items/1", &[("x-no-cache", "1")][..]),
        ("/shop/other", &[("x-tier", "gold")][..]),
        ("/shop/other", &[][..]),
    ] {
        out.push(send(req(path, headers)).await);
    }
    out.push(send(client().post(gw.url("/shop/items/1")).body("{}")).await);
    out
}

#[tokio::test]
async fn an_imported_bundle_with_flows_conditions_and_scoped_caches_answers_and_keys_as_the_bundle()
{
    let o = origin();
    let bundle = PolicyDir::new(&o);
    shop_bundle(&bundle);
    let native = imported(&o, &bundle, "shop");
    let stage_toml = std::fs::read_to_string(native.path().join("shop/stage.toml"))
        .expect("imported stage.toml");
    for expected in [
        "proxy_endpoint = \"edge\"",
        "route_rule = \"main\"",
        "name = \"backend\"",
        "skip_policies = [\"Quota\"]",
    ] {
        assert!(stage_toml.contains(expected), "{expected}\n{stage_toml}");
    }
    assert!(native.path().join("shop/Q-limit.xml").exists());
    assert!(native.path().join("shop/RC-items.toml").exists());

    let (a, b) = (TestGateway::start(bundle), TestGateway::start(native));
    let (from_bundle, from_import) = (shop_answers(&a).await, shop_answers(&b).await);
    let headers = [
        "x-rc-key", "x-rc-hit", "x-lc-key", "x-seen", "x-gold", "x-names",
    ];
    let seen = observe(&from_bundle, &headers);
    assert_eq!(seen, observe(&from_import, &headers));

    // What they both did, so that the comparison above compares something.
    let x_cache: Vec<&str> = from_bundle.iter().map(Resp::x_cache).collect();
    assert_eq!(
        x_cache,
        ["MISS", "HIT", "MISS", "HIT", "BYPASS", "BYPASS", "BYPASS", "BYPASS"]
    );
    let h = |i: usize, name: &str| {
        seen[i]["policy_headers"][name]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    // Proxy scope: the ProxyEndpoint's name; the tier the PreFlow set is a fragment.
    assert_eq!(
        h(0, "x-rc-key"),
        "cachegate__shop__shop__3__edge__/shop/items/1__basic"
    );
    assert_eq!(
        h(2, "x-rc-key"),
        "cachegate__shop__shop__3__edge__/shop/items/1__gold"
    );
    assert_eq!(h(1, "x-rc-hit"), "true");
    // Exclusive scope, attached on the TargetEndpoint only: the TargetEndpoint's name.
    assert_eq!(
        h(5, "x-lc-key"),
        "cachegate__shop__shop__3__backend__/other"
    );
    // PC-seen stored the first /other's tier; the second /other read it back.
    assert_eq!(
        (h(5, "x-seen"), h(6, "x-seen")),
        (String::new(), "gold".to_owned())
    );
    // The flow chosen by the tier the PreFlow set.
    assert_eq!(h(5, "x-gold"), "gold");
    assert_eq!(h(0, "x-names"), "shop 3 edge main backend");
    // The skipped Quota limits nothing: eight requests passed a limit of five.
    assert!(from_import.iter().all(|r| r.status == 200));
}

#[test]
fn a_bundle_stage_toml_cannot_express_is_refused_by_the_command_naming_file_and_line() {
    let o = origin();
    let d = PolicyDir::new(&o);
    shop_bundle(&d);
    d.write(
        "shop/apiproxy/proxies/edge.xml",
        r#"<ProxyEndpoint name="edge">
  <HTTPProxyConnection><BasePath>/shop</BasePath></HTTPProxyConnection>
  <RouteRule name="direct"><Condition>request.header.x-direct = "1"</Condition><URL>http://{{ORIGIN}}/echo/direct</URL></RouteRule>
  <RouteRule name="main"><TargetEndpoint>backend</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    let out = d.path().join("native");
    let (ok, text) = import(&d.path().join("shop"), "shop", &out);
    assert!(!ok, "{text}");
    for expected in [
        "shop/apiproxy/proxies/edge.xml:3:28: error: RouteRule `direct` has a Condition",
        "shop/apiproxy/proxies/edge.xml:3:80: error: RouteRule `direct` goes to a URL",
        "shop/apiproxy/proxies/edge.xml:4:3: error: a second RouteRule (`main`)",
        "hint: keep this proxy as a bundle (policies/<stage>/apiproxy/): cachegate runs it as it is",
        "cachegate import: the bundle cannot be written as a stage.toml",
    ] {
        assert!(text.contains(expected), "{expected}\n---\n{text}");
    }
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn a_bundle_with_a_second_proxy_endpoint_is_refused_by_the_command() {
    let o = origin();
    let d = PolicyDir::new(&o);
    shop_bundle(&d);
    d.write(
        "shop/apiproxy/proxies/v2.xml",
        r#"<ProxyEndpoint name="v2">
  <HTTPProxyConnection><BasePath>/shop/v2</BasePath></HTTPProxyConnection>
  <RouteRule name="main"><TargetEndpoint>backend</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    // The bundle itself loads: each ProxyEndpoint is a stage.
    let (loads, diags) = crate::bundles::messages(&d);
    assert!(loads, "{diags}");
    let out = d.path().join("native");
    let (ok, text) = import(&d.path().join("shop"), "shop", &out);
    assert!(!ok, "{text}");
    let expected = "shop/apiproxy/proxies/v2.xml:1:1: error: a second ProxyEndpoint (stage `shop.v2`, base path `/shop/v2`): a stage.toml stage has one";
    assert!(text.contains(expected), "{expected}\n---\n{text}");
    assert!(!out.exists(), "nothing is written");
}
