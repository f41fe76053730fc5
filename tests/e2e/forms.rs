//! Apigee's `request.formparam.<name>` and `request.content`: a stage whose policies read the
//! request body gets it (Content-Length and chunked alike, up to 64 KiB) before its policies
//! run, and the target still receives it byte for byte; a longer body streams unread, its
//! variables are null and a cache key reading them is not used; a stage that never reads
//! bodies never waits for one.

use std::io::Write;
use std::time::Duration;

use sha2::Digest;

use crate::connections::{patient, read_response};
use crate::harness::{client, eventually, origin, send, PolicyDir, Resp, TestGateway, ADMIN_TOKEN};
use crate::smuggling::{raw, responses};

const FORM: &str = "application/x-www-form-urlencoded";

/// Stage `forms` reads bodies: a ResponseCache keyed on `request.formparam.user` (POST cached
/// on `/echo/cached`), a request step copying `message.formparam.user` into `who`, and response
/// headers showing what the variables held. Stage `plain` has no policy reading a body.
fn gateway() -> (TestGateway, cachegate_origin::Origin) {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "forms",
        r#"target = "http://{{ORIGIN}}"
[[cache.method]]
resource = "/echo/cached"
method = "POST"
caching = true
[preflow]
request = ["AM-in"]
[postflow]
response = ["AM-show"]
[[flows]]
name = "cached"
condition = 'proxy.pathsuffix = "/echo/cached"'
request = ["RC-form"]
response = ["RC-form"]
"#,
    );
    d.write(
        "forms/RC-form.xml",
        r#"<ResponseCache name="RC-form"><CacheKey><KeyFragment ref="request.formparam.user"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    d.write(
        "forms/AM-in.xml",
        r#"<AssignMessage name="AM-in"><AssignVariable><Name>who</Name><Ref>message.formparam.user</Ref></AssignVariable><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    );
    d.write(
        "forms/AM-show.xml",
        r#"<AssignMessage name="AM-show"><Set><Headers>
  <Header name="x-user">{request.formparam.user}</Header>
  <Header name="x-who">{who}</Header>
  <Header name="x-count">{request.formparams.count}</Header>
  <Header name="x-names">{request.formparams.names}</Header>
  <Header name="x-key">{responsecache.RC-form.cachekey}</Header>
</Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    );
    d.stage("plain", "target = \"http://{{ORIGIN}}\"\n");
    (TestGateway::start(d), o)
}

fn sha256(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A form POST with `Content-Length`.
async fn post(gw: &TestGateway, path: &str, body: &str) -> Resp {
    send(
        client()
            .post(gw.url(path))
            .header("content-type", FORM)
            .body(body.to_owned()),
    )
    .await
}

/// A form POST with a chunked body (sent in two chunks) on a raw connection: status, `X-Cache`,
/// `X-User` and the origin's echo of the body.
fn post_chunked(
    gw: &TestGateway,
    path: &str,
    body: &str,
) -> (u16, String, String, serde_json::Value) {
    let (a, b) = body.split_at(body.len() / 2);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for part in [a, b].into_iter().filter(|p| !p.is_empty()) {
        req.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
    }
    req.push_str("0\r\n\r\n");
    let text = raw(&format!("127.0.0.1:{}", gw.dir.proxy_port), req.as_bytes());
    let resps = responses(&text);
    let r = resps
        .first()
        .unwrap_or_else(|| panic!("no response: {text:?}"));
    (
        r.status,
        r.header("x-cache").unwrap_or("").to_owned(),
        r.header("x-user").unwrap_or("").to_owned(),
        r.json(),
    )
}

/// The origin received exactly `body`.
fn received(echo: &serde_json::Value, body: &str) {
    assert_eq!(echo["body_len"], body.len(), "{echo}");
    assert_eq!(echo["body_sha256"], sha256(body.as_bytes()), "{echo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn form_parameters_key_a_response_cache_for_content_length_and_chunked_bodies() {
    let (gw, o) = gateway();
    let first = post(&gw, "/forms/echo/cached", "user=alice+a%26b&n=1").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(first.header("x-user"), "alice a&b");
    assert_eq!(first.header("x-who"), "alice a&b");
    assert_eq!(first.header("x-count"), "2");
    assert_eq!(first.header("x-names"), "user, n");
    received(&first.json(), "user=alice+a%26b&n=1");
    // The same user, another body (the first `user` wins): the same entry.
    let again = post(&gw, "/forms/echo/cached", "n=2&user=alice%20a%26b&user=bob").await;
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("x-user"), "alice a&b");
    // Another user: its own entry, whether the body is chunked or not.
    let (status, xc, user, echo) = post_chunked(&gw, "/forms/echo/cached", "user=bob&pad=xyz");
    assert_eq!((status, xc.as_str(), user.as_str()), (200, "MISS", "bob"));
    received(&echo, "user=bob&pad=xyz");
    assert_eq!(
        post(&gw, "/forms/echo/cached", "user=bob").await.x_cache(),
        "HIT"
    );
    let (_, xc, user, _) = post_chunked(&gw, "/forms/echo/cached", "x=1&user=alice%20a%26b");
    assert_eq!((xc.as_str(), user.as_str()), ("HIT", "alice a&b"));
    assert_eq!(o.count("/echo/cached"), 2);
    // A body that is not a form has no form parameters.
    let json = send(
        client()
            .post(gw.url("/forms/echo/other"))
            .header("content-type", "application/json")
            .body("user=carol"),
    )
    .await;
    assert_eq!(json.header("x-user"), "");
    received(&json.json(), "user=carol");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_64_kib_streams_unread_and_its_key_is_not_used() {
    let (gw, o) = gateway();
    // Exactly 64 KiB is read.
    let fits = format!("user=dave&pad={}", "a".repeat(64 * 1024 - 14));
    assert_eq!(fits.len(), 64 * 1024);
    let r = post(&gw, "/forms/echo/cached", &fits).await;
    assert_eq!((r.x_cache(), r.header("x-user")), ("MISS", "dave"));
    received(&r.json(), &fits);
    let (_, xc, user, echo) = post_chunked(&gw, "/forms/echo/cached", &fits);
    assert_eq!((xc.as_str(), user.as_str()), ("HIT", "dave"));
    assert_eq!(echo, r.json());
    // One byte more: the variables are null, the key is not used, the body arrives whole.
    let over = format!("{fits}b");
    for _ in 0..2 {
        let r = post(&gw, "/forms/echo/cached", &over).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.x_cache(), "BYPASS");
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=bypass; detail=body_unread"
        );
        assert_eq!((r.header("x-user"), r.header("x-who")), ("", ""));
        assert_eq!(r.header("x-count"), "");
        received(&r.json(), &over);
        let (status, xc, user, echo) = post_chunked(&gw, "/forms/echo/cached", &over);
        assert_eq!((status, xc.as_str(), user.as_str()), (200, "BYPASS", ""));
        received(&echo, &over);
    }
    assert_eq!(o.count("/echo/cached"), 5);
}

/// A stage whose policies never read a body forwards a `Content-Length` body as it arrives:
/// the target has the request while the client is still sending. A stage that reads bodies
/// reads it whole first.
#[tokio::test(flavor = "multi_thread")]
async fn only_a_stage_that_reads_bodies_waits_for_one() {
    let (gw, o) = gateway();
    let addr = format!("127.0.0.1:{}", gw.dir.proxy_port);
    for (stage, path) in [("plain", "/echo/streamed"), ("forms", "/echo/read")] {
        let mut s = patient(&addr);
        s.write_all(
            format!("POST /{stage}{path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {FORM}\r\nContent-Length: 20\r\n\r\nuser=eve&").as_bytes(),
        )
        .expect("write");
        if stage == "plain" {
            eventually(
                "the target has the request before its body is complete",
                Duration::from_secs(5),
                || async { o.count(path) == 1 },
            )
            .await;
        }
        s.write_all(b"pad=abcdefg").expect("write the rest");
        let text = read_response(&mut s);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}");
        let echo = text.split("\r\n\r\n").nth(1).unwrap_or("");
        let echo: serde_json::Value = serde_json::from_str(echo).expect("echo JSON");
        received(&echo, "user=eve&pad=abcdefg");
        let user = if stage == "forms" {
            "x-user: eve\r\n"
        } else {
            "x-user"
        };
        assert_eq!(
            text.to_ascii_lowercase().contains(user),
            stage == "forms",
            "{text:?}"
        );
    }
    let cfg = gw.handle.snapshot();
    let reads = |s: &str| cfg.config.stage(s).map(|s| s.reads_request_body);
    assert_eq!((reads("forms"), reads("plain")), (Some(true), Some(false)));
}

/// The admin API's "invalidate the entry this request would be served from" takes the
/// request's body, so it finds entries keyed on form parameters.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_invalidates_an_entry_keyed_on_a_form_parameter() {
    let (gw, _o) = gateway();
    assert_eq!(
        post(&gw, "/forms/echo/cached", "user=frank")
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(
        post(&gw, "/forms/echo/cached", "user=frank")
            .await
            .x_cache(),
        "HIT"
    );
    let r = send(
        client()
            .post(gw.admin("/stages/forms/cache/invalidate"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({
                "path": "/echo/cached",
                "method": "POST",
                "headers": {"content-type": FORM},
                "body": "user=frank&other=1",
            })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["invalidated"], 1, "{}", r.body);
    assert!(
        r.json()["key"]
            .as_str()
            .is_some_and(|k| k.ends_with("__frank")),
        "{}",
        r.body
    );
    assert_eq!(
        post(&gw, "/forms/echo/cached", "user=frank")
            .await
            .x_cache(),
        "MISS"
    );
}

/// What decides whether a stage reads bodies: a reference to `request.content` or a form
/// parameter anywhere, or to `message.*` where it is the request.
#[test]
fn a_stage_reads_bodies_only_when_a_policy_or_condition_needs_one() {
    let o = origin();
    let d = PolicyDir::new(&o);
    let am = |name: &str, var: &str| {
        format!(
            r#"<AssignMessage name="{name}"><AssignVariable><Name>v</Name><Ref>{var}</Ref></AssignVariable></AssignMessage>"#
        )
    };
    let stage = |name: &str, flows: &str| {
        d.stage(
            name,
            &format!("target = \"http://{{{{ORIGIN}}}}\"\n{flows}"),
        );
    };
    stage(
        "cond",
        "[[flows]]\nname = \"f\"\ncondition = 'request.formparam.a = \"1\"'\n",
    );
    stage("resp-request", "[postflow]\nresponse = [\"AM\"]\n");
    d.write("resp-request/AM.xml", &am("AM", "request.content"));
    stage("resp-message", "[postflow]\nresponse = [\"AM\"]\n");
    d.write("resp-message/AM.xml", &am("AM", "message.content"));
    stage("req-message", "[postflow]\nrequest = [\"AM\"]\n");
    d.write("req-message/AM.xml", &am("AM", "message.formparams.names"));
    stage("unused", "");
    d.write("unused/AM.xml", &am("AM", "request.formparam.a"));
    let out = cachegate::config::load(d.path());
    let text = out.diagnostics.to_string();
    // Apigee's form variables are known: no "does not exist" warning.
    assert!(!text.contains("does not exist"), "{text}");
    let cfg = out.config.unwrap_or_else(|| panic!("{text}"));
    let reads = |s: &str| cfg.stage(s).map(|s| s.reads_request_body);
    assert_eq!(reads("cond"), Some(true));
    assert_eq!(reads("resp-request"), Some(true));
    assert_eq!(reads("resp-message"), Some(false));
    assert_eq!(reads("req-message"), Some(true));
    assert_eq!(reads("unused"), Some(false));
}
