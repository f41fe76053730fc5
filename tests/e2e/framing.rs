//! Request framing the gateway refuses or normalises (issue 18, item 8; `src/proxy/framing.rs`),
//! written byte for byte on raw connections, with the stage's caching on (`/on`) and off
//! (`/off`). Every refusal is checked at the origin too: its counters show nothing arrived.

use cachegate_origin::Origin;
use serde_json::Value;

use crate::harness::{origin, PolicyDir, TestGateway};
use crate::smuggling::{exchange, responses, Resp};

/// A gateway with the stages `on` (cached) and `off` (not cached) in front of one origin.
pub(crate) struct Fixture {
    _gw: TestGateway,
    pub(crate) o: Origin,
    pub(crate) addr: String,
}

/// [`Fixture`] with `server` lines in gateway.toml's `[server]`.
pub(crate) fn fixture_with(server: &str) -> Fixture {
    fixture_of(server, false)
}

/// [`Fixture`] plus a cached stage `root` at `/` (to `/echo/root`): a target Pingora turns into
/// `/` would land there.
pub(crate) fn fixture_with_root() -> Fixture {
    fixture_of("", true)
}

fn fixture_of(server: &str, root: bool) -> Fixture {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "on",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    )
    .stage("off", "target = \"http://{{ORIGIN}}\"\n");
    if root {
        d.stage(
            "root",
            "base_path = \"/\"\ntarget = \"http://{{ORIGIN}}/echo/root\"\n[cache]\nenabled = true\n",
        );
    }
    if !server.is_empty() {
        d.server_settings(server);
    }
    let addr = format!("127.0.0.1:{}", d.proxy_port);
    let gw = TestGateway::start(d);
    Fixture { _gw: gw, o, addr }
}

fn fixture() -> Fixture {
    fixture_with("")
}

/// `method path` with the raw header lines `headers` (each ending in CRLF) and `body`, on a
/// connection the client closes after the answer.
pub(crate) fn request(method: &str, path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n{body}"
    )
    .into_bytes()
}

/// The one response to `payload` on a fresh connection.
pub(crate) fn one(f: &Fixture, case: &str, payload: &[u8]) -> Resp {
    let ex = exchange(&f.addr, payload);
    let mut resps = responses(&ex.text);
    assert_eq!(resps.len(), 1, "{case}: {:?}", ex.text);
    resps.remove(0)
}

/// `payload` is refused with `status` (a JSON error from the gateway, or Pingora's own 400) and
/// the connection closed, and the origin saw nothing.
pub(crate) fn assert_refused(f: &Fixture, case: &str, payload: &[u8], status: u16) {
    let before = f.o.total();
    let ex = exchange(&f.addr, payload);
    let resps = responses(&ex.text);
    assert_eq!(resps.len(), 1, "{case}: {:?}", ex.text);
    assert_eq!(resps[0].status, status, "{case}: {:?}", resps[0]);
    assert!(ex.closed, "{case}: the connection stayed open");
    assert_eq!(f.o.total(), before, "{case}: the origin saw the request");
}

/// The origin's echo of a request that passed.
fn echoed(f: &Fixture, case: &str, payload: &[u8]) -> Value {
    let r = one(f, case, payload);
    assert_eq!(r.status, 200, "{case}: {r:?}");
    r.json()
}

const STAGES: [&str; 2] = ["on", "off"];

#[test]
fn identical_content_lengths_are_forwarded_as_one_on_a_closing_connection() {
    let f = fixture();
    for stage in STAGES {
        for (case, lines) in [
            ("Content-Length: 5,5", "Content-Length: 5,5\r\n"),
            ("Content-Length: 5, 5", "Content-Length: 5, 5\r\n"),
            (
                "two Content-Length lines",
                "Content-Length: 5\r\nContent-Length: 5\r\n",
            ),
        ] {
            let case = format!("{stage}: {case}");
            let path = format!("/{stage}/echo/cl");
            let e = echoed(&f, &case, &request("POST", &path, lines, "hello"));
            assert_eq!(e["headers"]["content-length"], "5", "{case}: {e}");
            assert_eq!(e["body_len"], 5, "{case}: {e}");
            // The upstream connection is not reused after a normalised request.
            assert_eq!(e["headers"]["connection"], "close", "{case}: {e}");
        }
        // A request the gateway did not touch keeps its pooled connection.
        let path = format!("/{stage}/echo/plain");
        let e = echoed(
            &f,
            "plain",
            &request("POST", &path, "Content-Length: 5\r\n", "hello"),
        );
        assert_eq!(e["headers"].get("connection"), None, "{e}");
        for (case, lines) in [
            ("Content-Length: 5, 6", "Content-Length: 5, 6\r\n"),
            (
                "Content-Length 5 then 6",
                "Content-Length: 5\r\nContent-Length: 6\r\n",
            ),
            ("Content-Length: 5,", "Content-Length: 5,\r\n"),
        ] {
            let path = format!("/{stage}/echo/cl-bad");
            assert_refused(
                &f,
                &format!("{stage}: {case}"),
                &request("POST", &path, lines, "hello!"),
                400,
            );
        }
    }
    assert_eq!(f.o.count("/echo/cl-bad"), 0);
}

#[test]
fn transfer_encoding_other_than_one_chunked_is_refused() {
    let f = fixture();
    let body = "5\r\nhello\r\n0\r\n\r\n";
    for stage in STAGES {
        let path = format!("/{stage}/echo/te");
        for (case, lines, status) in [
            (
                "two chunked lines",
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                400,
            ),
            (
                "chunked, chunked",
                "Transfer-Encoding: chunked, chunked\r\n",
                400,
            ),
            (
                "gzip line then chunked line",
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                400,
            ),
            ("gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n", 501),
            ("identity", "Transfer-Encoding: identity\r\n", 400),
        ] {
            assert_refused(
                &f,
                &format!("{stage}: {case}"),
                &request("POST", &path, lines, body),
                status,
            );
        }
        // One chunked: forwarded, with the gateway's own framing.
        let e = echoed(
            &f,
            "chunked",
            &request("POST", &path, "Transfer-Encoding: chunked\r\n", body),
        );
        assert_eq!(e["body_len"], 5, "{e}");
    }
    assert_eq!(
        f.o.count("/echo/te"),
        2,
        "only the two valid requests arrived"
    );
}

#[test]
fn head_with_a_body_is_refused() {
    let f = fixture();
    // The answer to a HEAD has no body whatever its Content-Length: only its head is read.
    let refused = |case: &str, payload: &[u8]| {
        let before = f.o.total();
        let ex = exchange(&f.addr, payload);
        assert!(
            ex.text.starts_with("HTTP/1.1 400 "),
            "{case}: {:?}",
            ex.text
        );
        assert!(ex.closed, "{case}: the connection stayed open");
        assert_eq!(f.o.total(), before, "{case}: the origin saw the request");
    };
    for stage in STAGES {
        let path = format!("/{stage}/items/head");
        refused(
            &format!("{stage}: HEAD with Content-Length"),
            &request("HEAD", &path, "Content-Length: 5\r\n", "hello"),
        );
        refused(
            &format!("{stage}: HEAD chunked"),
            &request(
                "HEAD",
                &path,
                "Transfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        );
        let ex = exchange(
            &f.addr,
            &request("HEAD", &path, "Content-Length: 0\r\n", ""),
        );
        assert!(ex.text.starts_with("HTTP/1.1 200 "), "{:?}", ex.text);
    }
    assert_eq!(f.o.count("/items/head"), 2);
}

#[test]
fn header_names_imitating_framing_fields_are_refused_and_underscores_dropped() {
    let f = fixture();
    for stage in STAGES {
        let path = format!("/{stage}/echo/names");
        for (case, lines, body) in [
            (
                "Transfer_Encoding",
                "Transfer_Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            ("Content_Length", "Content_Length: 5\r\n", "hello"),
            (
                "Transfer---Encoding",
                "Transfer---Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            ("Content--Length", "Content--Length: 5\r\n", "hello"),
            ("X_Forwarded_Host", "X_Forwarded_Host: evil\r\n", ""),
            ("Authorization_", "Authorization_: Bearer x\r\n", ""),
        ] {
            assert_refused(
                &f,
                &format!("{stage}: {case}"),
                &request("GET", &path, lines, body),
                400,
            );
        }
        // Pingora's own 400 for names that are not tokens.
        for (case, lines) in [("X@y", "X@y: 1\r\n"), ("X(y)", "X(y): 1\r\n")] {
            assert_refused(
                &f,
                &format!("{stage}: {case}"),
                &request("GET", &path, lines, ""),
                400,
            );
        }
        // Any other name with `_` is dropped (the default); nothing about the framing changed,
        // so the upstream connection stays pooled.
        let e = echoed(
            &f,
            "X_Api_Key",
            &request("GET", &path, "X_Api_Key: k\r\nX-Kept: v\r\n", ""),
        );
        assert_eq!(e["headers"].get("x_api_key"), None, "{e}");
        assert_eq!(e["headers"]["x-kept"], "v", "{e}");
        assert_eq!(e["headers"].get("connection"), None, "{e}");
    }
    assert_eq!(f.o.count("/echo/names"), 2);
}

#[test]
fn underscores_in_headers_can_refuse_or_allow() {
    let refuse = fixture_with("underscores_in_headers = \"refuse\"\n");
    assert_refused(
        &refuse,
        "refuse",
        &request("GET", "/on/echo/u", "X_Api_Key: k\r\n", ""),
        400,
    );
    let allow = fixture_with("underscores_in_headers = \"allow\"\n");
    let e = echoed(
        &allow,
        "allow",
        &request("GET", "/on/echo/u", "X_Api_Key: k\r\n", ""),
    );
    assert_eq!(e["headers"]["x_api_key"], "k", "{e}");
    // Look-alikes of framing fields are refused whatever the setting.
    assert_refused(
        &allow,
        "allow, Content_Length",
        &request("POST", "/on/echo/u", "Content_Length: 5\r\n", "hello"),
        400,
    );
    assert_eq!(allow.o.count("/echo/u"), 1);
}

/// A request with a body is never answered from, or stored as, a bodiless request's entry:
/// POST cached by a `[[cache.method]]` override bypasses the cache with a body its key does not
/// read; a key reading the body keeps bodied requests apart from bodiless ones.
#[test]
fn a_body_never_shares_an_entry_with_a_bodiless_request() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[cache]
enabled = true
[[cache.method]]
resource = "/echo/*"
method = "POST"
caching = true
[[flows]]
name = "form"
condition = 'proxy.pathsuffix = "/echo/form"'
request = ["RC-form"]
response = ["RC-form"]
"#,
    );
    d.write(
        "prod/RC-form.xml",
        r#"<ResponseCache name="RC-form"><CacheKey><KeyFragment ref="request.formparam.user"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    let addr = format!("127.0.0.1:{}", d.proxy_port);
    let gw = TestGateway::start(d);
    let f = Fixture { _gw: gw, o, addr };
    let x_cache = |case: &str, payload: Vec<u8>| {
        let r = one(&f, case, &payload);
        assert_eq!(r.status, 200, "{case}: {r:?}");
        (
            r.header("x-cache").unwrap_or("").to_owned(),
            r.header("cache-status").unwrap_or("").to_owned(),
        )
    };
    // Stage caching of POST: bodiless requests share an entry; one with a body never uses it.
    let bodiless = || request("POST", "/prod/echo/p", "Content-Length: 0\r\n", "");
    assert_eq!(x_cache("bodiless 1", bodiless()).0, "MISS");
    assert_eq!(x_cache("bodiless 2", bodiless()).0, "HIT");
    for (case, lines, body) in [
        ("Content-Length body", "Content-Length: 1\r\n", "x"),
        (
            "chunked body",
            "Transfer-Encoding: chunked\r\n",
            "1\r\nx\r\n0\r\n\r\n",
        ),
    ] {
        let (xc, status) = x_cache(case, request("POST", "/prod/echo/p", lines, body));
        assert_eq!(xc, "BYPASS", "{case}");
        assert!(status.ends_with("detail=body"), "{case}: {status}");
    }
    assert_eq!(f.o.count("/echo/p"), 3);
    assert_eq!(x_cache("bodiless 3", bodiless()).0, "HIT");
    // A GET with a body is forwarded, never cached.
    let (xc, _) = x_cache(
        "GET with a body",
        request("GET", "/prod/echo/g", "Content-Length: 1\r\n", "x"),
    );
    assert_eq!(xc, "BYPASS");
    // A ResponseCache whose key reads the body: a body without the keyed field is not answered
    // from (or stored as) the bodiless request's entry.
    let form = |body: &str| {
        request(
            "POST",
            "/prod/echo/form",
            &format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ),
            body,
        )
    };
    assert_eq!(x_cache("form bodiless", form("")).0, "MISS");
    assert_eq!(x_cache("form bodiless again", form("")).0, "HIT");
    let (xc, status) = x_cache("form z=1", form("z=1"));
    assert_eq!(xc, "BYPASS", "a body without the keyed field: {status}");
    assert!(status.ends_with("detail=body"), "{status}");
    assert_eq!(x_cache("form user=a", form("user=a")).0, "MISS");
    assert_eq!(x_cache("form user=a again", form("user=a")).0, "HIT");
}

#[test]
fn an_unknown_underscores_value_is_a_load_error() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    d.write(
        "gateway.toml",
        "[server]\nunderscores_in_headers = \"keep\"\n",
    );
    let (ok, text) = crate::validation::diagnostics(&d);
    assert!(!ok, "{text}");
    assert!(
        text.contains("gateway.toml:2:26: error: `keep` is not a value of underscores_in_headers"),
        "{text}"
    );
    assert!(
        text.contains("write \"drop\", \"refuse\" or \"allow\""),
        "{text}"
    );
}
