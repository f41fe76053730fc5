//! Test harness: policy directories, an in-process gateway, the example origin, a private Redis.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cachegate::reload::ConfigHandle;
use cachegate::server::{self, ChannelShutdown, ServerOptions};
use cachegate_origin::{Origin, OriginConfig};
use pingora::server::ShutdownSignal;

/// The admin token every test gateway uses.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A free loopback port. Bind-then-drop can race with another process taking the port, which
/// is acceptable on a test machine; the gateway start below fails loudly if it happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `f` until it returns true or `timeout` passes; panics with `what` on timeout.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Blocks until `addr` accepts TCP connections.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listening on {addr} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The example origin on an ephemeral port, with its own runtime.
pub fn origin() -> Origin {
    Origin::start_background("127.0.0.1:0", OriginConfig::default()).expect("origin starts")
}

/// A policies directory in a temporary folder. `{{ORIGIN}}` in any written file is replaced with
/// the origin's `host:port`.
pub struct PolicyDir {
    pub dir: tempfile::TempDir,
    pub proxy_port: u16,
    pub admin_port: u16,
    origin: String,
}

impl PolicyDir {
    /// An empty directory whose gateway.toml listens on fresh ports.
    pub fn new(origin: &Origin) -> Self {
        let proxy_port = free_port();
        // Two probes can hand out the same just-released port while other tests run.
        let admin_port = std::iter::repeat_with(free_port)
            .find(|p| *p != proxy_port)
            .expect("a second free port");
        let d = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            proxy_port,
            admin_port,
            origin: origin.addr().to_string(),
        };
        // Work stealing on: many gateways start and stop in this one process, and Pingora's
        // no-steal runtime remembers its pool per thread ID in a `thread_local::ThreadLocal`,
        // whose IDs are reused by later threads — a later gateway's threads then hand their
        // connections to a stopped runtime and never listen. (One gateway per process, as in
        // production, is unaffected; `cli::default_runtime_serves_misses_and_hits` runs the
        // real binary with the default.)
        d.write(
            "gateway.toml",
            &format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\nthreads = 1\nwork_stealing = true\ngrace_period_secs = 0\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
                d.proxy_port, d.admin_port
            ),
        );
        d
    }

    /// Adds a `[redis]` section (the shared tier) to gateway.toml.
    pub fn with_redis(&self, url: &str, extra: &str) -> &Self {
        let path = self.dir.path().join("gateway.toml");
        let mut text = std::fs::read_to_string(&path).expect("gateway.toml");
        text.push_str(&format!("[redis]\nurl = \"{url}\"\n{extra}\n"));
        std::fs::write(path, text).expect("write");
        self
    }

    /// Sets `lines` (`key = value`, each ending in a newline) in gateway.toml's `[server]`
    /// section, replacing the harness's own value of a key.
    pub fn server_settings(&self, lines: &str) -> &Self {
        self.settings("server", lines)
    }

    /// Sets `lines` in gateway.toml's `[admin]` section (see [`Self::server_settings`]).
    pub fn admin_settings(&self, lines: &str) -> &Self {
        self.settings("admin", lines)
    }

    fn settings(&self, section: &str, lines: &str) -> &Self {
        let path = self.dir.path().join("gateway.toml");
        let keys: Vec<String> = lines
            .lines()
            .filter_map(|l| l.split('=').next())
            .map(|k| format!("{} =", k.trim()))
            .collect();
        let header = format!("[{section}]");
        let mut current = String::new();
        let mut text = String::new();
        for l in std::fs::read_to_string(&path)
            .expect("gateway.toml")
            .lines()
        {
            if l.starts_with('[') {
                current = l.to_owned();
            }
            if current == header && keys.iter().any(|k| l.starts_with(k.as_str())) {
                continue;
            }
            text.push_str(l);
            text.push('\n');
            if l == header {
                text.push_str(lines);
            }
        }
        std::fs::write(path, text).expect("write");
        self
    }

    /// Writes `rel` (creating folders), substituting `{{ORIGIN}}`.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text.replace("{{ORIGIN}}", &self.origin)).expect("write");
        self
    }

    /// Copies the real Apigee bundle at `fixture` (a folder under
    /// `tests/fixtures/apigee-bundles/` holding `apiproxy/`) to `<stage>/apiproxy/`, changing
    /// only each `<URL>` of its TargetEndpoints and RouteRules to `http://{{ORIGIN}}` + `path`
    /// (the samples' targets are public https hosts this machine cannot reach).
    pub fn bundle(&self, stage: &str, fixture: &str, path: &str) -> &Self {
        let from = repo()
            .join("tests/fixtures/apigee-bundles")
            .join(fixture)
            .join("apiproxy");
        let url = regex_lite_url();
        for entry in walk(&from) {
            let rel = entry.strip_prefix(&from).expect("under the bundle");
            let text = std::fs::read_to_string(&entry).expect("bundle file");
            let text = if rel.starts_with("targets") || rel.starts_with("proxies") {
                url(&text, &format!("http://{{{{ORIGIN}}}}{path}"))
            } else {
                text
            };
            self.write(
                &format!("{stage}/apiproxy/{}", rel.to_string_lossy()),
                &text,
            );
        }
        self
    }

    /// Copies the fixture shared flow bundle `fixture` (the folder holding `sharedflowbundle/`,
    /// under tests/fixtures/apigee-bundles) to `sharedflows/<name>/sharedflowbundle/`.
    pub fn shared_flow_fixture(&self, name: &str, fixture: &str) -> &Self {
        let from = repo()
            .join("tests/fixtures/apigee-bundles")
            .join(fixture)
            .join("sharedflowbundle");
        for entry in walk(&from) {
            let rel = entry.strip_prefix(&from).expect("under the bundle");
            let text = std::fs::read_to_string(&entry).expect("bundle file");
            self.write(
                &format!(
                    "sharedflows/{name}/sharedflowbundle/{}",
                    rel.to_string_lossy()
                ),
                &text,
            );
        }
        self
    }

    /// A stage folder with `stage.toml` = `toml`.
    pub fn stage(&self, name: &str, toml: &str) -> &Self {
        self.write(&format!("{name}/stage.toml"), toml)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A gateway running in-process on its own thread, stopped on drop.
pub struct TestGateway {
    pub dir: PolicyDir,
    pub handle: Arc<ConfigHandle>,
    pub url: String,
    pub admin_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<ShutdownSignal>>,
    thread: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Loads `dir` (panicking with the diagnostics if invalid) and serves it.
    pub fn start(dir: PolicyDir) -> Self {
        let (handle, _warnings) = match ConfigHandle::load(dir.path()) {
            Ok(v) => v,
            Err(d) => panic!("test configuration is invalid:\n{d}"),
        };
        let server = server::build(
            Arc::clone(&handle),
            &ServerOptions {
                admin_token: Some(ADMIN_TOKEN.to_owned()),
                ..ServerOptions::default()
            },
        );
        let (signal, tx) = ChannelShutdown::new();
        let thread = std::thread::spawn(move || server::run(server, Box::new(signal)));
        let proxy: SocketAddr = format!("127.0.0.1:{}", dir.proxy_port)
            .parse()
            .expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", dir.admin_port)
            .parse()
            .expect("addr");
        wait_listening(proxy, Duration::from_secs(20));
        wait_listening(admin, Duration::from_secs(20));
        Self {
            url: format!("http://{proxy}"),
            admin_url: format!("http://{admin}"),
            dir,
            handle,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The admin listener's Prometheus exposition.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub fn admin(&self, path: &str) -> String {
        format!("{}{path}", self.admin_url)
    }

    /// The JSON an unauthenticated admin GET of `path` answers (`/config`, `/healthz`).
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        client()
            .get(self.admin(path))
            .send()
            .await
            .expect("req")
            .json()
            .await
            .expect("json")
    }
}

impl TestGateway {
    /// Stops the gateway as SIGTERM does (stop accepting, let in-flight requests finish within
    /// `grace_period_secs`) and waits until it has stopped.
    pub fn stop_gracefully(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(ShutdownSignal::GracefulTerminate);
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("the server thread ends without panicking");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(ShutdownSignal::FastShutdown);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The value of one exact series (`name{labels}` as exposed) in a Prometheus text, 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every sample of metric `name` whose labels include each of `labels`
/// (`key="value"` fragments).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter(|l| labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An HTTP client that does not pool connections across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A private `redis-server` on a free loopback port, killed on drop. Panics — never skips — when
/// redis-server is not installed: `make test` installs it.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server is required for this test and could not start ({e}); run `make test`, which installs it"));
        wait_listening(
            format!("127.0.0.1:{port}").parse().expect("addr"),
            Duration::from_secs(10),
        );
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command with a raw RESP request and returns the raw reply (tests only).
    pub fn command(&self, args: &[&str]) -> String {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect redis");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("write");
        let mut buf = vec![0u8; 1 << 20];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// How many times Redis has run `command` (lower case) since it started (`INFO commandstats`).
    pub fn calls(&self, command: &str) -> u64 {
        let info = self.command(&["INFO", "commandstats"]);
        let tag = format!("cmdstat_{command}:calls=");
        info.split(&tag)
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("a call count"))
    }

    /// Kills the server (to test Redis being down).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port (after `kill`).
    pub fn restart(&mut self) {
        self.child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server restarts");
        wait_listening(
            format!("127.0.0.1:{}", self.port).parse().expect("addr"),
            Duration::from_secs(10),
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository root (for fixtures and shipped policies).
/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Replaces the text of every `<URL>…</URL>` element.
fn regex_lite_url() -> impl Fn(&str, &str) -> String {
    |text: &str, to: &str| {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("<URL>") {
            let Some(j) = rest[i..].find("</URL>") else {
                break;
            };
            out.push_str(&rest[..i + 5]);
            out.push_str(to);
            rest = &rest[i + j..];
        }
        out.push_str(rest);
        out
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A response read whole through reqwest: status, headers and body text.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    /// `X-Cache` (`HIT`/`MISS`/…), empty when absent.
    pub fn x_cache(&self) -> &str {
        self.header("x-cache")
    }

    /// A header's value, empty when absent or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `ttl=` of the `Cache-Status` header (seconds of freshness left).
    pub fn status_ttl(&self) -> i64 {
        let status = self.header("cache-status");
        status
            .split("ttl=")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ttl in {status:?}"))
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Asserts that two answers to the same request are the same to a client: status, body and
/// every header, except `Date` and the counting-down `Age` (±1 s) and `Cache-Status` `ttl=`.
/// For comparing the proxy's fast hit path with pingora's.
pub fn assert_same_answer(fast: &Resp, slow: &Resp) {
    assert_eq!(fast.status, slow.status);
    assert_eq!(fast.body, slow.body);
    let names = |r: &Resp| {
        let mut v: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(names(fast), names(slow));
    for (name, value) in &fast.headers {
        match name.as_str() {
            // Each answer carries its own request's id.
            "date" | "x-request-id" => {}
            "age" => {
                let age = |r: &Resp| r.header("age").parse::<i64>().expect("age");
                assert!((age(fast) - age(slow)).abs() <= 1);
            }
            "cache-status" => {
                let stem = |r: &Resp| {
                    r.header("cache-status")
                        .rsplit_once('=')
                        .map(|(s, _)| s.to_owned())
                };
                assert_eq!(stem(fast), stem(slow));
            }
            _ => assert_eq!(Some(value), slow.headers.get(name), "{name}"),
        }
    }
}

/// Sends `req` and reads the whole response.
pub async fn send(req: reqwest::RequestBuilder) -> Resp {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.text().await.expect("body");
    Resp {
        status,
        headers,
        body,
    }
}

/// A plain GET through the shared client.
pub async fn get(url: &str) -> Resp {
    send(client().get(url)).await
}

/// A target answering its n-th request with `responses[n]` (the last one from then on), then
/// closing the connection; counts requests.
pub fn scripted_target(
    responses: &'static [&'static [u8]],
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&hits);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let response = responses
                .get(n)
                .or(responses.last())
                .copied()
                .unwrap_or_default();
            let _ = conn.write_all(response);
        }
    });
    (port, hits)
}

/// A target answering every request with `response` (then closing); counts requests.
pub fn raw_target(
    response: &'static [u8],
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let responses: &'static [&'static [u8]] = Box::leak(Box::new([response]));
    scripted_target(responses)
}
