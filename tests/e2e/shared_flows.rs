//! Shared flows (`policies/sharedflows/<name>/sharedflowbundle/`): FlowCallout runs a shared
//! flow's steps in place, in the caller's message context; `[flow_hooks]` runs one in every
//! stage; what Apigee refuses to deploy is refused by name.

use crate::bundles::{messages, small_bundle};
use crate::harness::{client, get, origin, send, PolicyDir, TestGateway};

/// Puts `environment = "test"` at the top of gateway.toml and `tail` (tables) at its end.
fn gateway(d: &PolicyDir, tail: &str) {
    let path = d.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).expect("gateway.toml");
    std::fs::write(path, format!("environment = \"test\"\n{text}{tail}")).expect("write");
}

/// A shared flow bundle `name` of `steps` (policy name, optional condition) and `policies`
/// (file name, XML).
fn shared_flow(d: &PolicyDir, name: &str, steps: &[(&str, &str)], policies: &[(&str, &str)]) {
    let root = format!("sharedflows/{name}/sharedflowbundle");
    d.write(
        &format!("{root}/{name}.xml"),
        &format!(r#"<SharedFlowBundle name="{name}" revision="3"/>"#),
    );
    let steps: String = steps
        .iter()
        .map(|(p, c)| match c {
            &"" => format!("<Step><Name>{p}</Name></Step>"),
            c => format!("<Step><Name>{p}</Name><Condition>{c}</Condition></Step>"),
        })
        .collect();
    d.write(
        &format!("{root}/sharedflows/default.xml"),
        &format!("<SharedFlow name=\"default\">\n{steps}\n</SharedFlow>"),
    );
    for (file, xml) in policies {
        d.write(&format!("{root}/policies/{file}.xml"), xml);
    }
}

/// The token shared flow: look the client's token up (Global scope, Apigee's usual Prefix);
/// on a miss mint one and store it.
fn token_flow(d: &PolicyDir) {
    shared_flow(
        d,
        "token-sf",
        &[
            ("LC-Token", ""),
            ("AM-Mint", "lookupcache.LC-Token.cachehit = false"),
            ("PC-Token", "lookupcache.LC-Token.cachehit = false"),
        ],
        &[
            (
                "LC-Token",
                r#"<LookupCache name="LC-Token"><Scope>Global</Scope><CacheKey><Prefix>tok</Prefix><KeyFragment ref="client_id"/></CacheKey><AssignTo>token</AssignTo></LookupCache>"#,
            ),
            (
                "AM-Mint",
                r#"<AssignMessage name="AM-Mint"><AssignVariable><Name>token</Name><Template>t-{client_id}-{messageid}</Template></AssignVariable></AssignMessage>"#,
            ),
            (
                "PC-Token",
                r#"<PopulateCache name="PC-Token"><Scope>Global</Scope><CacheKey><Prefix>tok</Prefix><KeyFragment ref="client_id"/></CacheKey><ExpirySettings><TimeoutInSeconds>600</TimeoutInSeconds></ExpirySettings><Source>token</Source></PopulateCache>"#,
            ),
        ],
    );
}

/// A proxy that calls the token flow with the client from a header and shows what it got.
fn token_proxy(d: &PolicyDir, stage: &str) {
    small_bundle(d, stage, stage, &["FC-Token"], &["AM-Show"]);
    d.write(
        &format!("{stage}/apiproxy/policies/FC-Token.xml"),
        r#"<FlowCallout name="FC-Token"><SharedFlowBundle>token-sf</SharedFlowBundle><Parameters><Parameter name="client_id" ref="request.header.x-client"/></Parameters></FlowCallout>"#,
    );
    d.write(
        &format!("{stage}/apiproxy/policies/AM-Show.xml"),
        r#"<AssignMessage name="AM-Show"><Set><Headers><Header name="x-token">{token}</Header><Header name="x-hit">{lookupcache.LC-Token.cachehit}</Header><Header name="x-key">{lookupcache.LC-Token.cachekey}</Header></Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    );
}

#[tokio::test]
async fn a_flow_callout_runs_the_shared_flow_in_place_and_its_global_entries_are_shared() {
    let o = origin();
    let d = PolicyDir::new(&o);
    gateway(&d, "");
    token_flow(&d);
    token_proxy(&d, "first");
    token_proxy(&d, "second");
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let call = |stage: &'static str, client_id: &'static str| {
        let url = gw.url(&format!("/{stage}/x"));
        async move { send(client().get(url).header("x-client", client_id)).await }
    };

    let minted = call("first", "c1").await;
    assert_eq!(minted.status, 200, "{}", minted.body);
    // The variables the shared flow set are the caller's: its response steps read them.
    assert_eq!(minted.header("x-hit"), "false");
    let token = minted.header("x-token").to_owned();
    assert!(token.starts_with("t-c1-"), "{token}");
    // Apigee's key string with a Prefix: prefix__fragments.
    assert_eq!(minted.header("x-key"), "tok__c1");

    // Another proxy of the environment reads the entry the first one stored.
    let read = call("second", "c1").await;
    assert_eq!(read.header("x-hit"), "true");
    assert_eq!(read.header("x-token"), token);
    // Another client gets its own token.
    let other = call("second", "c2").await;
    assert_eq!(other.header("x-hit"), "false");
    assert!(other.header("x-token").starts_with("t-c2-"));
    assert_eq!(
        call("first", "c2").await.header("x-token"),
        other.header("x-token")
    );
}

#[tokio::test]
async fn a_callout_condition_is_evaluated_once_and_continue_on_error_leaves_the_shared_flow() {
    let o = origin();
    let d = PolicyDir::new(&o);
    gateway(&d, "");
    // The first step makes the callout's own condition false; the rest of the flow still runs,
    // as the condition was evaluated once, when the FlowCallout step was reached. Then a step
    // fails (an InvalidateCache whose key does not resolve).
    shared_flow(
        &d,
        "flaky",
        &[
            ("AM-Flag", ""),
            ("AM-After", ""),
            ("IC-Broken", ""),
            ("AM-Unreached", ""),
        ],
        &[
            (
                "AM-Flag",
                r#"<AssignMessage name="AM-Flag"><AssignVariable><Name>done</Name><Value>yes</Value></AssignVariable></AssignMessage>"#,
            ),
            (
                "AM-After",
                r#"<AssignMessage name="AM-After"><AssignVariable><Name>after</Name><Value>ran</Value></AssignVariable></AssignMessage>"#,
            ),
            (
                "IC-Broken",
                r#"<InvalidateCache name="IC-Broken"><Scope>Global</Scope><CacheKey><KeyFragment ref="no.such.thing"/></CacheKey><IgnoreUnresolvedVariables>false</IgnoreUnresolvedVariables></InvalidateCache>"#,
            ),
            (
                "AM-Unreached",
                r#"<AssignMessage name="AM-Unreached"><AssignVariable><Name>unreached</Name><Value>ran</Value></AssignVariable></AssignMessage>"#,
            ),
        ],
    );
    for (stage, tolerant) in [("tolerant", true), ("strict", false)] {
        small_bundle(&d, stage, stage, &["FC"], &["AM-Show"]);
        d.write(
            &format!("{stage}/apiproxy/policies/FC.xml"),
            &format!(
                r#"<FlowCallout name="FC" continueOnError="{tolerant}"><SharedFlowBundle>flaky</SharedFlowBundle></FlowCallout>"#
            ),
        );
        d.write(
            &format!("{stage}/apiproxy/proxies/default.xml"),
            &format!(
                r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/{stage}</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>FC</Name><Condition>done != "yes"</Condition></Step></Request>
  <Response><Step><Name>AM-Show</Name></Step></Response></PreFlow>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#
            ),
        );
        d.write(
            &format!("{stage}/apiproxy/policies/AM-Show.xml"),
            r#"<AssignMessage name="AM-Show"><Set><Headers><Header name="x-done">{done}</Header><Header name="x-after">{after}</Header><Header name="x-unreached">{unreached}</Header></Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
        );
    }
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);

    let r = get(&gw.url("/tolerant/x")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-done"), "yes");
    assert_eq!(r.header("x-after"), "ran");
    // The failure left the shared flow: its last step did not run; the proxy went on.
    assert_eq!(r.header("x-unreached"), "");

    let strict = get(&gw.url("/strict/x")).await;
    assert_eq!(strict.status, 500, "{}", strict.body);
    assert!(strict.body.contains("IC-Broken"), "{}", strict.body);
}

#[tokio::test]
async fn flow_hooks_run_their_shared_flows_in_every_stage() {
    let o = origin();
    let d = PolicyDir::new(&o);
    gateway(
        &d,
        "[flow_hooks]\npre_proxy = \"stamp-request\"\npost_proxy = \"stamp-response\"\n",
    );
    shared_flow(
        &d,
        "stamp-request",
        &[("AM-In", "")],
        &[(
            "AM-In",
            r#"<AssignMessage name="AM-In"><Set><Headers><Header name="x-hooked">pre-{proxy.name}</Header></Headers></Set></AssignMessage>"#,
        )],
    );
    shared_flow(
        &d,
        "stamp-response",
        &[("AM-Out", "")],
        &[(
            "AM-Out",
            r#"<AssignMessage name="AM-Out"><Set><Headers><Header name="x-post-proxy">{apiproxy.name}</Header></Headers></Set></AssignMessage>"#,
        )],
    );
    small_bundle(&d, "bundled", "bundled", &[], &[]);
    d.stage(
        "plain",
        "base_path = \"/plain\"\ntarget = \"http://{{ORIGIN}}/echo\"\n",
    );
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    for stage in ["bundled", "plain"] {
        let r = get(&gw.url(&format!("/{stage}/x"))).await;
        assert_eq!(r.status, 200, "{stage}: {}", r.body);
        // The pre-proxy hook changed the request the target received.
        assert_eq!(
            r.json()["headers"]["x-hooked"],
            "pre-default",
            "{stage}: {}",
            r.body
        );
        assert_eq!(r.header("x-post-proxy"), stage);
    }
}

#[test]
fn what_apigee_refuses_to_deploy_is_refused_by_name() {
    let o = origin();
    // A FlowCallout naming a shared flow that is not there.
    let d = PolicyDir::new(&o);
    token_flow(&d);
    small_bundle(&d, "api", "api", &["FC"], &[]);
    d.write(
        "api/apiproxy/policies/FC.xml",
        "<FlowCallout name=\"FC\">\n  <SharedFlowBundle>token-fs</SharedFlowBundle></FlowCallout>",
    );
    let (ok, diags) = messages(&d);
    assert!(!ok);
    assert!(
        diags.contains("api/apiproxy/policies/FC.xml:2:3: error: FlowCallout `FC` calls shared flow `token-fs`, which is not loaded")
            && diags.contains("did you mean `token-sf`?"),
        "{diags}"
    );

    // Shared flows calling each other in a cycle; a ResponseCache in a shared flow; a hook
    // naming a missing shared flow.
    let d = PolicyDir::new(&o);
    gateway(&d, "[flow_hooks]\npost_target = \"nope\"\n");
    let call = |to: &str| {
        format!(
            r#"<FlowCallout name="FC-{to}"><SharedFlowBundle>{to}</SharedFlowBundle></FlowCallout>"#
        )
    };
    shared_flow(
        &d,
        "ping",
        &[("FC-pong", "")],
        &[("FC-pong", &call("pong"))],
    );
    shared_flow(
        &d,
        "pong",
        &[("FC-ping", "")],
        &[("FC-ping", &call("ping"))],
    );
    shared_flow(
        &d,
        "cached",
        &[("RC", "")],
        &[(
            "RC",
            r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey></ResponseCache>"#,
        )],
    );
    small_bundle(&d, "api", "api", &["FC-ping"], &[]);
    d.write("api/apiproxy/policies/FC-ping.xml", &call("ping"));
    let (ok, diags) = messages(&d);
    assert!(!ok);
    for expected in [
        "error: shared flows call each other in a cycle: ping → pong → ping",
        "sharedflows/cached/sharedflowbundle/policies/RC.xml:1:1: error: ResponseCache cannot be used in a shared flow",
        "gateway.toml:",
        "[flow_hooks] post_target names shared flow `nope`, which is not loaded",
    ] {
        assert!(diags.contains(expected), "{expected}\n{diags}");
    }

    // A policy of a kind cachegate does not run, inside a shared flow: refused by name with the
    // step that uses it, and run as a no-op once the calling stage skips its kind.
    let d = PolicyDir::new(&o);
    shared_flow(
        &d,
        "logging",
        &[("ML", "")],
        &[(
            "ML",
            r#"<MessageLogging name="ML"><Syslog/></MessageLogging>"#,
        )],
    );
    small_bundle(&d, "api", "api", &["FC"], &[]);
    d.write(
        "api/apiproxy/policies/FC.xml",
        r#"<FlowCallout name="FC"><SharedFlowBundle>logging</SharedFlowBundle></FlowCallout>"#,
    );
    let (ok, diags) = messages(&d);
    assert!(!ok);
    assert!(
        diags.contains("<MessageLogging> `logging/ML` is of a kind cachegate does not run; used by the step(s) at")
            && diags.contains("sharedflows/logging/sharedflowbundle/sharedflows/default.xml:2:"),
        "{diags}"
    );
    d.write("api/stage.toml", "skip_policies = [\"MessageLogging\"]\n");
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
}
