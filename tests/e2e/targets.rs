//! Where bundle TargetEndpoints send requests besides one URL: a `<LoadBalancer>` of the
//! environment's TargetServers (gateway.toml `[[target_servers]]`) with Apigee's algorithms,
//! MaxFailures, RetryEnabled, ServerUnhealthyResponse and IsFallback, and proxy chaining
//! (`LocalTargetConnection`) to another stage, whose own cache policies then run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{eventually, free_port, get, origin, PolicyDir, Resp, TestGateway};

/// Appends `text` to the directory's gateway.toml.
fn gateway_toml(d: &PolicyDir, text: &str) {
    let path = d.path().join("gateway.toml");
    let mut toml = std::fs::read_to_string(&path).expect("gateway.toml");
    toml.push_str(text);
    std::fs::write(path, toml).expect("write");
}

/// `[[target_servers]]` entries: (name, port) on 127.0.0.1.
fn target_servers(d: &PolicyDir, servers: &[(&str, u16)]) {
    let mut text = String::new();
    for (name, port) in servers {
        text.push_str(&format!(
            "[[target_servers]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\n"
        ));
    }
    gateway_toml(d, &text);
}

/// A bundle stage `lb` at `/lb` whose TargetEndpoint balances over `balancer` (the inside of
/// `<LoadBalancer>`) with `<Path>/echo</Path>`, and whose response says which server answered.
fn balanced_bundle(d: &PolicyDir, balancer: &str) {
    d.write("lb/apiproxy/lb.xml", r#"<APIProxy name="lb"/>"#);
    d.write(
        "lb/apiproxy/proxies/default.xml",
        r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/lb</BasePath></HTTPProxyConnection>
  <PostFlow><Response><Step><Name>AM-who</Name></Step></Response></PostFlow>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    d.write(
        "lb/apiproxy/targets/default.xml",
        &format!(
            r#"<TargetEndpoint name="default">
  <HTTPTargetConnection>
    <LoadBalancer>{balancer}</LoadBalancer>
    <Path>/echo</Path>
  </HTTPTargetConnection>
</TargetEndpoint>"#
        ),
    );
    d.write(
        "lb/apiproxy/policies/AM-who.xml",
        r#"<AssignMessage name="AM-who"><Set><Headers>
  <Header name="x-server">{loadbalancing.targetserver}</Header>
  <Header name="x-target-url">{target.url}</Header>
  <Header name="x-failed">{loadbalancing.failedservers}</Header>
  <Header name="x-fallback">{loadbalancing.isfallback}</Header>
</Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables><AssignTo type="response"/></AssignMessage>"#,
    );
}

/// `n` GETs of `/lb/x`, each answered.
async fn requests(gw: &TestGateway, n: usize) -> Vec<Resp> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = get(&gw.url("/lb/x")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        out.push(r);
    }
    out
}

#[tokio::test]
async fn round_robin_spreads_requests_over_the_target_servers_in_order() {
    let (a, b) = (origin(), origin());
    let d = PolicyDir::new(&a);
    target_servers(&d, &[("a", a.addr().port()), ("b", b.addr().port())]);
    balanced_bundle(&d, r#"<Server name="a"/><Server name="b"/>"#);
    let gw = TestGateway::start(d);
    let got = requests(&gw, 10).await;
    assert_eq!((a.count("/echo/x"), b.count("/echo/x")), (5, 5));
    let order: Vec<&str> = got.iter().map(|r| r.header("x-server")).collect();
    for pair in order.chunks(2) {
        assert_ne!(pair[0], pair[1], "alternates: {order:?}");
    }
    // `target.url` is the chosen server's, and the request went to it with its Host.
    for r in &got {
        let port = if r.header("x-server") == "a" {
            a.addr().port()
        } else {
            b.addr().port()
        };
        assert_eq!(
            r.header("x-target-url"),
            format!("http://127.0.0.1:{port}/echo")
        );
        assert_eq!(r.json()["headers"]["host"], format!("127.0.0.1:{port}"));
        assert_eq!(r.json()["path"], "/echo/x");
        assert_eq!(r.header("x-fallback"), "false");
    }
}

#[tokio::test]
async fn weighted_sends_requests_in_proportion_to_the_weights() {
    let (a, b) = (origin(), origin());
    let d = PolicyDir::new(&a);
    target_servers(&d, &[("a", a.addr().port()), ("b", b.addr().port())]);
    balanced_bundle(
        &d,
        r#"<Algorithm>Weighted</Algorithm>
  <Server name="a"><Weight>1</Weight></Server>
  <Server name="b"><Weight>3</Weight></Server>"#,
    );
    let gw = TestGateway::start(d);
    requests(&gw, 40).await;
    assert_eq!((a.count("/echo/x"), b.count("/echo/x")), (10, 30));
}

/// A gateway balancing over `down` (nothing listens: every connect is refused) and `up` (an
/// origin), in that order, with the LoadBalancer `settings`.
fn down_and_up(settings: &str) -> (cachegate_origin::Origin, TestGateway) {
    let up = origin();
    let d = PolicyDir::new(&up);
    target_servers(&d, &[("down", free_port()), ("up", up.addr().port())]);
    balanced_bundle(
        &d,
        &format!(r#"<Server name="down"/><Server name="up"/>{settings}"#),
    );
    (up, TestGateway::start(d))
}

#[tokio::test]
async fn a_down_server_is_taken_out_after_max_failures_and_retries_answer_every_request() {
    let (up, gw) = down_and_up("<MaxFailures>2</MaxFailures>");
    let got = requests(&gw, 12).await;
    assert_eq!(up.count("/echo/x"), 12, "every request answered by `up`");
    let failed: Vec<&str> = got.iter().map(|r| r.header("x-failed")).collect();
    // `down` was tried (and failed) exactly MaxFailures times, then never again.
    assert_eq!(
        failed.iter().filter(|f| **f == "down").count(),
        2,
        "{failed:?}"
    );
    assert!(failed[4..].iter().all(|f| f.is_empty()), "{failed:?}");
    assert!(got.iter().all(|r| r.header("x-server") == "up"));
}

#[tokio::test]
async fn without_retry_a_failed_attempt_is_the_answer() {
    let (_up, gw) = down_and_up("<RetryEnabled>false</RetryEnabled>");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(&gw.url("/lb/x")).await.status);
    }
    statuses.sort_unstable();
    // MaxFailures 0: `down` stays in rotation and gets every other request.
    assert_eq!(statuses, [200, 200, 502, 502]);
}

#[tokio::test]
async fn the_fallback_serves_only_while_every_other_server_is_out() {
    let (a, fb) = (origin(), origin());
    let d = PolicyDir::new(&a);
    let a_port = a.addr().port();
    target_servers(
        &d,
        &[
            ("a", a_port),
            ("down", free_port()),
            ("fb", fb.addr().port()),
        ],
    );
    balanced_bundle(
        &d,
        r#"<Server name="a"/><Server name="down"/>
  <Server name="fb"><IsFallback>true</IsFallback></Server>
  <MaxFailures>1</MaxFailures>"#,
    );
    let gw = TestGateway::start(d);
    requests(&gw, 6).await;
    assert_eq!(
        a.count("/echo/x"),
        6,
        "`down` is out, `a` is not: no fallback"
    );
    assert_eq!(fb.count("/echo/x"), 0);
    // `a` goes down too: every primary is out, the fallback takes everything.
    drop(a);
    let got = requests(&gw, 4).await;
    assert_eq!(fb.count("/echo/x"), 4);
    assert_eq!(got.last().map(|r| r.header("x-fallback")), Some("true"));
    assert_eq!(
        got[0].header("x-failed"),
        "a",
        "the request `a` failed was retried"
    );
}

/// A server that answers every request `503` and counts them.
fn always_503() -> (u16, Arc<AtomicUsize>) {
    crate::harness::raw_target(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
}

/// A gateway balancing over `sick` (answers 503, counted) and `up` (an origin), in that order,
/// with MaxFailures 1 and 503 as a ServerUnhealthyResponse.
fn sick_and_up() -> (cachegate_origin::Origin, Arc<AtomicUsize>, TestGateway) {
    let up = origin();
    let (sick, sick_hits) = always_503();
    let d = PolicyDir::new(&up);
    target_servers(&d, &[("sick", sick), ("up", up.addr().port())]);
    balanced_bundle(
        &d,
        r#"<Server name="sick"/><Server name="up"/><MaxFailures>1</MaxFailures>
  <ServerUnhealthyResponse><ResponseCode>503</ResponseCode></ServerUnhealthyResponse>"#,
    );
    let gw = TestGateway::start(d);
    (up, sick_hits, gw)
}

#[tokio::test]
async fn a_server_unhealthy_response_is_a_failure_retried_on_another_server() {
    let (up, sick_hits, gw) = sick_and_up();
    let got = requests(&gw, 6).await;
    assert_eq!(up.count("/echo/x"), 6);
    assert_eq!(
        sick_hits.load(Ordering::SeqCst),
        1,
        "out after its first 503"
    );
    assert_eq!(
        got.iter()
            .filter(|r| r.header("x-failed") == "sick")
            .count(),
        1
    );
}

#[test]
fn a_load_balancer_naming_a_server_gateway_toml_lacks_is_refused_naming_both_files() {
    let o = origin();
    let d = PolicyDir::new(&o);
    target_servers(&d, &[("a", o.addr().port())]);
    balanced_bundle(&d, r#"<Server name="a"/><Server name="b"/>"#);
    let out = cachegate::config::load(d.path());
    let diags = out.diagnostics.to_string();
    assert!(out.config.is_none(), "{diags}");
    assert!(
        diags.contains("lb/apiproxy/targets/default.xml:3:37: error: <Server name=\"b\"> is not a target server of the environment")
            && diags.contains("gateway.toml has no [[target_servers]] named `b`")
            && diags.contains("defines: a"),
        "{diags}"
    );
}

#[tokio::test]
async fn a_disabled_target_server_is_never_chosen() {
    let (a, b) = (origin(), origin());
    let d = PolicyDir::new(&a);
    target_servers(&d, &[("a", a.addr().port())]);
    gateway_toml(
        &d,
        &format!(
            "[[target_servers]]\nname = \"b\"\nhost = \"127.0.0.1\"\nport = {}\nenabled = false\n",
            b.addr().port()
        ),
    );
    balanced_bundle(&d, r#"<Server name="a"/><Server name="b"/>"#);
    let out = cachegate::config::load(d.path());
    assert!(
        out.diagnostics
            .to_string()
            .contains("warning: target server `b` is disabled"),
        "{}",
        out.diagnostics
    );
    let gw = TestGateway::start(d);
    requests(&gw, 4).await;
    assert_eq!((a.count("/echo/x"), b.count("/echo/x")), (4, 0));
}

#[test]
fn target_server_mistakes_in_gateway_toml_are_named_with_line_and_column() {
    let o = origin();
    let d = PolicyDir::new(&o);
    gateway_toml(
        &d,
        "[[target_servers]]\nname = \"a\"\nhost = \"http://a.example\"\nport = 80\n[[target_servers]]\nname = \"b\"\nhost = \"127.0.0.1\"\nport = 70000\n[[target_servers]]\nname = \"c\"\nhost = \"127.0.0.1\"\nport = 443\nssl = { enabled = true, trust_store = \"ref://ts\", client_auth_enabled = true, ciphers = [\"X\"] }\n",
    );
    let diags = cachegate::config::load(d.path()).diagnostics.to_string();
    for want in [
        "gateway.toml:10:8: error: target server `a`: host `http://a.example` must be a host name or an IP address alone",
        "gateway.toml:15:8: error: target server `b`: port 70000 is not a port",
        "error: target server `c`: ssl.trust_store is not supported",
        "hint: trust anchors are the gateway's: set [server] upstream_ca_file",
        "error: target server `c`: ssl.client_auth_enabled (mutual TLS) is not supported",
        "warning: target server `c`: ssl.ciphers is ignored",
    ] {
        assert!(diags.contains(want), "{want}\n{diags}");
    }
}

/// Sends GETs of `/lb/x` until `origin` has answered one (or the deadline passes).
async fn until_answered_by(gw: &TestGateway, o: &cachegate_origin::Origin, what: &str) {
    eventually(what, Duration::from_secs(20), || async {
        let r = get(&gw.url("/lb/x")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        o.count("/echo/x") > 0
    })
    .await;
}

#[tokio::test]
async fn a_server_out_of_rotation_comes_back_through_a_trial_request_once_its_time_is_up() {
    let a = origin();
    let d = PolicyDir::new(&a);
    let b_port = free_port();
    target_servers(&d, &[("a", a.addr().port()), ("b", b_port)]);
    balanced_bundle(
        &d,
        r#"<Server name="a"/><Server name="b"/><MaxFailures>1</MaxFailures>
  <TargetDisableSecs>1</TargetDisableSecs>"#,
    );
    let gw = TestGateway::start(d);
    requests(&gw, 4).await;
    assert_eq!(a.count("/echo/x"), 4, "`b` is down and out");
    // `b` comes up; after TargetDisableSecs a request tries it, and it is back.
    let b = cachegate_origin::Origin::start_background(
        &format!("127.0.0.1:{b_port}"),
        cachegate_origin::OriginConfig::default(),
    )
    .expect("b starts on its port");
    until_answered_by(&gw, &b, "`b` back in rotation").await;
    b.reset_counts();
    requests(&gw, 4).await;
    assert_eq!(b.count("/echo/x"), 2, "round robin again");
}

#[tokio::test]
async fn a_health_monitor_puts_a_server_back_when_its_polls_pass() {
    let a = origin();
    let d = PolicyDir::new(&a);
    let b_port = free_port();
    target_servers(&d, &[("a", a.addr().port()), ("b", b_port)]);
    balanced_bundle(
        &d,
        r#"<Server name="a"/><Server name="b"/><MaxFailures>1</MaxFailures>"#,
    );
    d.write(
        "lb/apiproxy/targets/default.xml",
        r#"<TargetEndpoint name="default">
  <HTTPTargetConnection>
    <LoadBalancer><Server name="a"/><Server name="b"/><MaxFailures>1</MaxFailures></LoadBalancer>
    <Path>/echo</Path>
    <HealthMonitor>
      <IsEnabled>true</IsEnabled>
      <IntervalInSec>1</IntervalInSec>
      <HTTPMonitor>
        <Request><Verb>GET</Verb><Path>/echo/health</Path></Request>
        <SuccessResponse><ResponseCode>200</ResponseCode></SuccessResponse>
      </HTTPMonitor>
    </HealthMonitor>
  </HTTPTargetConnection>
</TargetEndpoint>"#,
    );
    let gw = TestGateway::start(d);
    requests(&gw, 4).await;
    assert_eq!(a.count("/echo/x"), 4, "`b` is down and out");
    let b = cachegate_origin::Origin::start_background(
        &format!("127.0.0.1:{b_port}"),
        cachegate_origin::OriginConfig::default(),
    )
    .expect("b starts on its port");
    until_answered_by(&gw, &b, "`b` back in rotation after a passed poll").await;
    assert!(b.count("/echo/health") > 0, "the monitor polled `b`");
}

#[tokio::test]
async fn a_post_that_reached_a_server_is_never_sent_again() {
    let (up, sick_hits, gw) = sick_and_up();
    // Round robin starts with `sick`: the POST reached it, so its 503 is the answer (a
    // non-idempotent request is not repeated), though it counts as sick's failure.
    let post =
        crate::harness::send(crate::harness::client().post(gw.url("/lb/x")).body("{}")).await;
    assert_eq!(post.status, 503);
    assert_eq!(sick_hits.load(Ordering::SeqCst), 1);
    assert_eq!(up.count("/echo/x"), 0);
    requests(&gw, 3).await;
    assert_eq!(sick_hits.load(Ordering::SeqCst), 1, "out of rotation");
}
