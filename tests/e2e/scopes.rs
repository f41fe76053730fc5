//! Scope is per attachment, as in Apigee (apigee-bundles.md §8): a cache policy attached in
//! two TargetEndpoints with Exclusive scope keeps one entry per endpoint and names each in its
//! key, while Global and Proxy scope share one entry between them.

use crate::bundles::messages;
use crate::harness::{client, send, PolicyDir, Resp, TestGateway, ADMIN_TOKEN};

/// A bundle whose ProxyEndpoint `edge` routes to TargetEndpoint `a` or `b` (header `x-route`),
/// each running the same three LookupCache/PopulateCache pairs: Exclusive, Global and Proxy
/// scope, every one storing the request's `x-value`.
fn two_target_bundle(d: &PolicyDir) {
    d.write(
        "api/apiproxy/scoped.xml",
        r#"<APIProxy name="scoped" revision="5"/>"#,
    );
    d.write(
        "api/apiproxy/proxies/edge.xml",
        r#"<ProxyEndpoint name="edge">
  <HTTPProxyConnection><BasePath>/scoped</BasePath></HTTPProxyConnection>
  <RouteRule name="to-b"><Condition>request.header.x-route = "b"</Condition><TargetEndpoint>b</TargetEndpoint></RouteRule>
  <RouteRule name="default"><TargetEndpoint>a</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    let pairs = ["ex", "gl", "px"];
    for te in ["a", "b"] {
        let lookups: String = pairs
            .iter()
            .map(|p| format!("<Step><Name>LC-{p}</Name></Step>"))
            .collect();
        let populates: String = pairs
            .iter()
            .map(|p| format!("<Step><Name>PC-{p}</Name></Step>"))
            .collect();
        d.write(
            &format!("api/apiproxy/targets/{te}.xml"),
            &format!(
                r#"<TargetEndpoint name="{te}">
  <PreFlow><Request>{lookups}</Request><Response>{populates}<Step><Name>AM-report</Name></Step></Response></PreFlow>
  <HTTPTargetConnection><URL>http://{{{{ORIGIN}}}}/echo/{te}</URL></HTTPTargetConnection>
</TargetEndpoint>"#
            ),
        );
    }
    let mut report = String::new();
    for (pair, scope) in pairs.iter().zip(["Exclusive", "Global", "Proxy"]) {
        let key = r#"<CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey>"#;
        d.write(
            &format!("api/apiproxy/policies/LC-{pair}.xml"),
            &format!(
                r#"<LookupCache name="LC-{pair}"><Scope>{scope}</Scope>{key}<AssignTo>seen{pair}</AssignTo></LookupCache>"#
            ),
        );
        d.write(
            &format!("api/apiproxy/policies/PC-{pair}.xml"),
            &format!(
                r#"<PopulateCache name="PC-{pair}"><Scope>{scope}</Scope>{key}<ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings><Source>request.header.x-value</Source></PopulateCache>"#
            ),
        );
        report.push_str(&format!(
            r#"<Header name="x-{pair}-key">{{lookupcache.LC-{pair}.cachekey}}</Header><Header name="x-{pair}-hit">{{lookupcache.LC-{pair}.cachehit}}</Header><Header name="x-{pair}">{{seen{pair}}}</Header>"#
        ));
    }
    d.write(
        "api/apiproxy/policies/AM-report.xml",
        &format!(
            r#"<AssignMessage name="AM-report"><Set><Headers>{report}</Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#
        ),
    );
}

#[tokio::test]
async fn exclusive_scope_keeps_an_entry_per_target_endpoint_global_and_proxy_share() {
    let o = crate::harness::origin();
    let d = PolicyDir::new(&o);
    two_target_bundle(&d);
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let via = |route: &'static str, value: &'static str| {
        let url = gw.url("/scoped/items/1");
        async move {
            send(
                client()
                    .get(url)
                    .header("x-route", route)
                    .header("x-value", value),
            )
            .await
        }
    };
    let routed_to = |r: &Resp, te: &str| {
        assert_eq!(
            r.json()["path"],
            format!("/echo/{te}/items/1"),
            "{}",
            r.body
        );
    };

    // Through `a`: every lookup misses, every populate stores "one".
    let first = via("a", "one").await;
    routed_to(&first, "a");
    assert_eq!(first.header("x-ex-hit"), "false");
    assert_eq!(
        first.header("x-ex-key"),
        "cachegate__api__scoped__5__a__/items/1",
        "Exclusive names the TargetEndpoint it runs in"
    );

    // Through `b`: the Exclusive entry is b's own (a's value is not read); Global and Proxy
    // name no TargetEndpoint, so `b` reads what `a` stored.
    let second = via("b", "two").await;
    routed_to(&second, "b");
    assert_eq!(
        second.header("x-ex-key"),
        "cachegate__api__scoped__5__b__/items/1"
    );
    assert_eq!(
        second.header("x-ex-hit"),
        "false",
        "{:?}",
        second.header("x-ex")
    );
    assert_eq!(second.header("x-ex"), "");
    assert_eq!(second.header("x-gl-hit"), "true");
    assert_eq!(second.header("x-gl"), "one");
    assert_eq!(second.header("x-gl-key"), "cachegate__api__/items/1");
    assert_eq!(second.header("x-px-hit"), "true");
    assert_eq!(second.header("x-px"), "one");
    assert_eq!(
        second.header("x-px-key"),
        "cachegate__api__scoped__5__edge__/items/1",
        "Proxy names the ProxyEndpoint"
    );

    // Each TargetEndpoint reads back its own Exclusive entry.
    let third = via("a", "three").await;
    assert_eq!(third.header("x-ex-hit"), "true");
    assert_eq!(third.header("x-ex"), "one");
    let fourth = via("b", "four").await;
    assert_eq!(fourth.header("x-ex-hit"), "true");
    assert_eq!(fourth.header("x-ex"), "two");

    // The admin API names each variant; the plain name points at them.
    let invalidate = |policy: &'static str| {
        send(
            client()
                .post(gw.admin("/stages/api/cache/invalidate"))
                .json(&serde_json::json!({"policy": policy, "fragments": ["/items/1"]}))
                .bearer_auth(ADMIN_TOKEN),
        )
    };
    let plain = invalidate("PC-ex").await;
    assert_eq!(plain.status, 404, "{}", plain.body);
    assert!(plain.body.contains("PC-ex@a, PC-ex@b"), "{}", plain.body);
    let b_only = invalidate("PC-ex@b").await;
    assert_eq!(b_only.status, 200, "{}", b_only.body);
    assert_eq!(
        b_only.json()["key"],
        "cachegate__api__scoped__5__b__/items/1"
    );
    assert_eq!(via("b", "five").await.header("x-ex-hit"), "false");
    // a's entry is untouched (PopulateCache overwrote it with the third request's value).
    let a_again = via("a", "six").await;
    assert_eq!(a_again.header("x-ex-hit"), "true");
    assert_eq!(a_again.header("x-ex"), "three");
}

#[test]
fn admin_config_lists_each_variant_and_validate_stays_quiet() {
    let o = crate::harness::origin();
    let d = PolicyDir::new(&o);
    two_target_bundle(&d);
    let out = cachegate::config::load(d.path());
    let diags = out.diagnostics.to_string();
    assert!(!diags.contains("not attached"), "{diags}");
    let Some(config) = out.config else {
        panic!("{diags}");
    };
    let stage = config
        .stages
        .iter()
        .find(|s| s.name == "api")
        .unwrap_or_else(|| panic!("no stage `api`"));
    let names = stage.policy_names();
    for name in ["LC-ex@a", "LC-ex@b", "PC-ex@a", "PC-ex@b", "LC-gl", "PC-px"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(!names.contains(&"LC-ex"), "{names:?}");
}

#[test]
fn a_shared_flow_policy_follows_the_endpoint_of_its_flow_callout() {
    let o = crate::harness::origin();
    let d = PolicyDir::new(&o);
    two_target_bundle(&d);
    let root = "sharedflows/sf/sharedflowbundle";
    d.write(
        &format!("{root}/sf.xml"),
        r#"<SharedFlowBundle name="sf" revision="1"/>"#,
    );
    d.write(
        &format!("{root}/sharedflows/default.xml"),
        "<SharedFlow name=\"default\"><Step><Name>LC-sf</Name></Step></SharedFlow>",
    );
    d.write(
        &format!("{root}/policies/LC-sf.xml"),
        r#"<LookupCache name="LC-sf"><Scope>Exclusive</Scope><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><AssignTo>seensf</AssignTo></LookupCache>"#,
    );
    d.write(
        "api/apiproxy/policies/FC-sf.xml",
        r#"<FlowCallout name="FC-sf"><SharedFlowBundle>sf</SharedFlowBundle></FlowCallout>"#,
    );
    for te in ["a", "b"] {
        d.write(
            &format!("api/apiproxy/targets/{te}.xml"),
            &format!(
                r#"<TargetEndpoint name="{te}">
  <PreFlow><Request><Step><Name>FC-sf</Name></Step><Step><Name>LC-ex</Name></Step><Step><Name>LC-gl</Name></Step><Step><Name>LC-px</Name></Step></Request>
  <Response><Step><Name>PC-ex</Name></Step><Step><Name>PC-gl</Name></Step><Step><Name>PC-px</Name></Step><Step><Name>AM-report</Name></Step></Response></PreFlow>
  <HTTPTargetConnection><URL>http://{{{{ORIGIN}}}}/echo/{te}</URL></HTTPTargetConnection>
</TargetEndpoint>"#
            ),
        );
    }
    let out = cachegate::config::load(d.path());
    let Some(config) = out.config else {
        panic!("{}", out.diagnostics);
    };
    let stage = config
        .stages
        .iter()
        .find(|s| s.name == "api")
        .unwrap_or_else(|| panic!("no stage `api`"));
    let prefixes: Vec<(String, String)> = stage
        .step_policies
        .iter()
        .filter(|(k, _)| k.contains("LC-sf"))
        .map(|(k, p)| match &**p {
            cachegate::runtime::stage::StepPolicy::LookupCache(lc) => {
                (k.clone(), lc.common.key.build_values(Vec::new()).readable)
            }
            _ => panic!("{k}"),
        })
        .collect();
    assert_eq!(
        prefixes,
        [
            (
                "sf/LC-sf@a".to_owned(),
                "cachegate__api__scoped__5__a".to_owned()
            ),
            (
                "sf/LC-sf@b".to_owned(),
                "cachegate__api__scoped__5__b".to_owned()
            ),
        ]
    );
}
