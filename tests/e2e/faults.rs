//! The error flow of Apigee bundles: RaiseFault, and FaultRules / DefaultFaultRule run on the
//! error response of the endpoint where the fault happened, in Apigee's order.

use crate::bundles::messages;
use crate::harness::{client, get, origin, send, PolicyDir, TestGateway};

/// An AssignMessage setting response header `name` to `value` (on whatever response its flow
/// has: in a fault rule, the error response).
fn header(policy: &str, name: &str, value: &str) -> String {
    format!(
        r#"<AssignMessage name="{policy}"><Set><Headers><Header name="{name}">{value}</Header></Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#
    )
}

/// A bundle whose ProxyEndpoint raises a 404 for `/missing` (request side) and whose
/// TargetEndpoint raises a 502 when the target answers 5xx (response side), each endpoint with
/// FaultRules.
fn faulty_bundle(d: &PolicyDir) {
    d.write(
        "s/apiproxy/faulty.xml",
        r#"<APIProxy name="faulty" revision="1"/>"#,
    );
    d.write(
        "s/apiproxy/proxies/default.xml",
        r#"<ProxyEndpoint name="default">
  <FaultRules>
    <FaultRule name="first"><Condition>fault.name = "RaiseFault"</Condition><Step><Name>AM-first</Name></Step></FaultRule>
    <FaultRule name="second"><Condition>fault.name = "RaiseFault"</Condition><Step><Name>AM-second</Name></Step></FaultRule>
    <FaultRule name="unresolved"><Condition>fault.name = "UnresolvedVariable"</Condition><Step><Name>AM-first</Name></Step></FaultRule>
  </FaultRules>
  <DefaultFaultRule name="all"><AlwaysEnforce>true</AlwaysEnforce><Step><Name>AM-default</Name></Step></DefaultFaultRule>
  <HTTPProxyConnection><BasePath>/s</BasePath></HTTPProxyConnection>
  <Flows>
    <Flow name="missing"><Condition>proxy.pathsuffix = "/missing"</Condition>
      <Request><Step><Name>RF-not-found</Name></Step><Step><Name>AM-never</Name></Step></Request>
    </Flow>
  </Flows>
  <PostFlow><Response><Step><Name>AM-post</Name></Step></Response></PostFlow>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    d.write(
        "s/apiproxy/targets/default.xml",
        r#"<TargetEndpoint name="default">
  <FaultRules>
    <FaultRule name="bad-gateway"><Condition>fault.name = "RaiseFault"</Condition>
      <Step><Name>AM-target-rule</Name></Step>
      <Step><Name>RF-reshape</Name><Condition>request.header.x-reshape = "yes"</Condition></Step>
    </FaultRule>
    <FaultRule name="later"><Condition>fault.name = "RaiseFault"</Condition><Step><Name>AM-never</Name></Step></FaultRule>
  </FaultRules>
  <DefaultFaultRule><AlwaysEnforce>true</AlwaysEnforce><Step><Name>AM-default</Name></Step></DefaultFaultRule>
  <PreFlow><Request><Step><Name>IC-broken</Name><Condition>request.header.x-break = "yes"</Condition></Step></Request></PreFlow>
  <PostFlow><Response><Step><Name>RF-bad-gateway</Name><Condition>response.status.code >= 500</Condition></Step></Response></PostFlow>
  <HTTPTargetConnection><URL>http://{{ORIGIN}}/echo</URL></HTTPTargetConnection>
</TargetEndpoint>"#,
    );
    let policies = [
        (
            "RF-not-found",
            r#"<RaiseFault name="RF-not-found"><FaultResponse><Set>
  <Payload contentType="application/json">{"error":"{proxy.pathsuffix} is not here"}</Payload>
  <StatusCode>404</StatusCode><ReasonPhrase>Not Found</ReasonPhrase>
</Set></FaultResponse></RaiseFault>"#
                .to_owned(),
        ),
        (
            "RF-bad-gateway",
            r#"<RaiseFault name="RF-bad-gateway"><FaultResponse><Set><StatusCode>502</StatusCode><Payload contentType="text/plain">upstream said {error.status.code}</Payload></Set></FaultResponse></RaiseFault>"#
                .to_owned(),
        ),
        (
            "RF-reshape",
            r#"<RaiseFault name="RF-reshape"><FaultResponse><Set><StatusCode>503</StatusCode><Payload contentType="text/plain">reshaped</Payload></Set></FaultResponse></RaiseFault>"#
                .to_owned(),
        ),
        (
            "IC-broken",
            r#"<InvalidateCache name="IC-broken"><CacheKey><KeyFragment ref="no.such.variable"/></CacheKey><IgnoreUnresolvedVariables>false</IgnoreUnresolvedVariables></InvalidateCache>"#
                .to_owned(),
        ),
        ("AM-first", header("AM-first", "x-rule", "first")),
        ("AM-second", header("AM-second", "x-rule", "second")),
        ("AM-default", header("AM-default", "x-default", "{fault.name}")),
        ("AM-never", header("AM-never", "x-never", "ran")),
        ("AM-post", header("AM-post", "x-post", "ran")),
        (
            "AM-target-rule",
            header("AM-target-rule", "x-target-rule", "{is.error}"),
        ),
    ];
    for (name, xml) in policies {
        d.write(&format!("s/apiproxy/policies/{name}.xml"), &xml);
    }
}

#[tokio::test]
async fn a_raise_fault_answers_through_the_fault_rules_of_its_endpoint() {
    let o = origin();
    let d = PolicyDir::new(&o);
    faulty_bundle(&d);
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let before = o.total();

    // Request side, in the ProxyEndpoint: its FaultRules are tried from the last one up, so
    // `second` runs; the DefaultFaultRule (AlwaysEnforce) runs too. Nothing after the fault ran,
    // no response flow, and nothing reached the target.
    let r = get(&gw.url("/s/missing")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error"], "/missing is not here", "{}", r.body);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("x-rule"), "second");
    assert_eq!(r.header("x-default"), "RaiseFault");
    assert_eq!(r.header("x-never"), "");
    assert_eq!(r.header("x-post"), "");
    assert_eq!(o.total(), before, "a raised fault reached the target");

    // A normal request runs the normal flows.
    let ok = get(&gw.url("/s/items")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("x-post"), "ran");
    assert_eq!(ok.header("x-rule"), "");

    // Response side, in the TargetEndpoint: its FaultRules are tried from the first down
    // (`later` never runs), the error variables are set, and the ProxyEndpoint's rules are not
    // asked.
    let bad = get(&gw.url("/s/items?status=500")).await;
    assert_eq!(bad.status, 502, "{}", bad.body);
    assert_eq!(bad.body, "upstream said 500");
    assert_eq!(bad.header("x-target-rule"), "true");
    assert_eq!(bad.header("x-default"), "RaiseFault");
    assert_eq!(bad.header("x-never"), "");
    assert_eq!(bad.header("x-rule"), "");
    assert_eq!(
        bad.header("x-post"),
        "",
        "the normal response flow ran after a fault"
    );

    // A RaiseFault inside the FaultRule reshapes the error response, and then the
    // DefaultFaultRule is not enforced.
    let reshaped = send(
        client()
            .get(gw.url("/s/items?status=503"))
            .header("x-reshape", "yes"),
    )
    .await;
    assert_eq!(reshaped.status, 503, "{}", reshaped.body);
    assert_eq!(reshaped.body, "reshaped");
    assert_eq!(reshaped.header("x-target-rule"), "true");
    assert_eq!(reshaped.header("x-default"), "");
}

#[tokio::test]
async fn a_failing_policy_enters_the_error_flow_with_its_fault_name() {
    let o = origin();
    let d = PolicyDir::new(&o);
    faulty_bundle(&d);
    let gw = TestGateway::start(d);
    let before = o.total();
    // The InvalidateCache in the TargetEndpoint's PreFlow fails: no TargetEndpoint FaultRule
    // matches `UnresolvedVariable`, so its DefaultFaultRule answers, on the default error
    // response that names the policy.
    let r = send(client().get(gw.url("/s/items")).header("x-break", "yes")).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["policy"], "IC-broken", "{}", r.body);
    assert_eq!(r.header("x-default"), "UnresolvedVariable");
    assert_eq!(
        r.header("x-rule"),
        "",
        "a ProxyEndpoint rule ran for a target fault"
    );
    assert_eq!(o.total(), before);
}

/// The PostClientFlow runs after the response is sent: what it stores is there for the next
/// request, though the response it ran after did not show it.
#[tokio::test]
async fn the_post_client_flow_runs_after_the_response_is_sent() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.write("s/apiproxy/s.xml", r#"<APIProxy name="s" revision="1"/>"#);
    d.write(
        "s/apiproxy/proxies/default.xml",
        r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/s</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>LC-last</Name></Step></Request>
    <Response><Step><Name>AM-show</Name></Step></Response></PreFlow>
  <PostClientFlow><Response><Step><Name>PC-last</Name></Step></Response></PostClientFlow>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    d.write(
        "s/apiproxy/targets/default.xml",
        r#"<TargetEndpoint name="default"><HTTPTargetConnection><URL>http://{{ORIGIN}}/echo</URL></HTTPTargetConnection></TargetEndpoint>"#,
    );
    d.write(
        "s/apiproxy/policies/LC-last.xml",
        r#"<LookupCache name="LC-last"><Scope>Global</Scope><CacheKey><KeyFragment>last</KeyFragment></CacheKey><AssignTo>last</AssignTo></LookupCache>"#,
    );
    d.write(
        "s/apiproxy/policies/PC-last.xml",
        r#"<PopulateCache name="PC-last"><Scope>Global</Scope><CacheKey><KeyFragment>last</KeyFragment></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings><Source>request.header.x-id</Source></PopulateCache>"#,
    );
    d.write(
        "s/apiproxy/policies/AM-show.xml",
        &header("AM-show", "x-last", "{last}"),
    );
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let first = send(client().get(gw.url("/s/x")).header("x-id", "one")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-last"), "");
    // Stored once the first response was out (poll: the flow runs after the client has it).
    crate::harness::eventually(
        "the PostClientFlow stored the first request's id",
        std::time::Duration::from_secs(5),
        || async { get(&gw.url("/s/x")).await.header("x-last") == "one" },
    )
    .await;
}

/// A response whose response flow faulted is not stored: the next request is a miss, not the
/// response the fault replaced.
#[tokio::test]
async fn a_faulted_response_is_not_stored() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "c",
        "base_path = \"/c\"\ntarget = \"http://{{ORIGIN}}/echo\"\n[cache]\nenabled = true\nttl = 60\n[preflow]\nresponse = [{ policy = \"RF\", condition = 'request.header.x-fail = \"yes\"' }]\n",
    );
    d.write(
        "c/RF.xml",
        r#"<RaiseFault name="RF"><FaultResponse><Set><StatusCode>503</StatusCode></Set></FaultResponse></RaiseFault>"#,
    );
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let failed = send(client().get(gw.url("/c/items/1")).header("x-fail", "yes")).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    let next = get(&gw.url("/c/items/1")).await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(next.x_cache(), "MISS", "the faulted response was stored");
    assert_eq!(get(&gw.url("/c/items/1")).await.x_cache(), "HIT");
}
