//! `cachegate-origin`: the example upstream server for cachegate.
//!
//! A small, fast and deterministic HTTP/1.1 JSON API used by `make run`, the
//! integration tests and the benchmarks. It runs on hyper with keep-alive,
//! does no per-request logging, and exposes knobs (query parameters) to make
//! responses cacheable or not, slow, big, failing, and so on.
//!
//! # Endpoints
//!
//! | Request | Response |
//! |---|---|
//! | `GET /items/{id}` | 200 JSON item, strong `ETag`, 304 on a matching `If-None-Match` |
//! | `GET /items` | 200 JSON list of known items, with `ETag` |
//! | `PUT\|POST\|PATCH /items/{id}` | bumps the item version, 200 JSON |
//! | `DELETE /items/{id}` | bumps the item version, 204 |
//! | `ANY /echo/...` | 200 JSON describing the request as received (method, path, query, headers, body length and SHA-256) |
//! | `GET /slow?ms=N` | waits `N` ms, then 200 JSON |
//! | `GET /big?bytes=N[&chunked=1]` | `N` bytes of `text/plain` (up to 64 MiB), optionally chunked |
//! | `GET /reset-mid-body` | announces `Content-Length: 100000`, sends 1000 bytes, closes the connection |
//! | `GET /__counts[?path=P]`, `GET /__counts?total` | request counters: all, one path's, or the total alone (not counted) |
//! | `POST /__reset` | resets the counters (not counted) |
//! | anything else | 404 JSON |
//!
//! Query parameters honoured on every counted request (they combine freely):
//! `status=NNN`, `cookie=1`, `cache_control=V`, `expires=SECS`, `delay_ms=N`,
//! `etag=0`, `last_modified=1`, `vary=H`, `size=N`.
//!
//! Every response carries `X-Origin-Seq`, a global sequence number that is
//! incremented for every counted request.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Default approximate size in bytes of a `GET /items/{id}` body.
pub const DEFAULT_BODY_SIZE: usize = 1024;
/// Largest `size=N` honoured for `GET /items/{id}` (16 MiB).
pub const MAX_ITEM_SIZE: usize = 16 * 1024 * 1024;
/// Largest `bytes=N` honoured for `GET /big` (64 MiB).
pub const MAX_BIG_BYTES: usize = 64 * 1024 * 1024;
/// The fixed date sent as `Last-Modified` when `last_modified=1` is given.
pub const FIXED_LAST_MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

/// Content-Length announced by `GET /reset-mid-body`.
const RESET_ANNOUNCED_LEN: usize = 100_000;
/// Bytes actually sent by `GET /reset-mid-body` before the connection is closed.
const RESET_SENT_LEN: usize = 1000;
/// Upper bound for any requested delay (`delay_ms`, `/slow?ms=`): 10 minutes.
const MAX_DELAY_MS: u64 = 600_000;
/// Line of the `/big` body pattern; the body byte at offset `i` is `BIG_LINE[i % 64]`.
const BIG_LINE: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n";
/// Size of the shared pattern buffer (a multiple of `BIG_LINE.len()`).
const PATTERN_LEN: usize = 64 * 1024;

/// Configuration of an [`Origin`].
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Delay applied to every counted request before it is answered.
    pub delay: Duration,
    /// Approximate size in bytes of a `GET /items/{id}` body (`size=N` overrides it per request).
    pub body_size: usize,
}

impl Default for OriginConfig {
    /// No delay, [`DEFAULT_BODY_SIZE`] item bodies.
    fn default() -> Self {
        OriginConfig {
            delay: Duration::ZERO,
            body_size: DEFAULT_BODY_SIZE,
        }
    }
}

impl OriginConfig {
    /// A default configuration with the given per-request delay.
    pub fn with_delay(delay: Duration) -> Self {
        OriginConfig {
            delay,
            ..OriginConfig::default()
        }
    }
}

/// Handle to a running origin server.
///
/// Dropping the handle shuts the server down (like [`Origin::shutdown`]).
#[derive(Debug)]
pub struct Origin {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown_tx: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Origin {
    /// Binds `addr` (use `"127.0.0.1:0"` for an ephemeral port) and serves on
    /// the current tokio runtime (spawned task). Returns once the listener is bound.
    pub async fn start(addr: &str, config: OriginConfig) -> io::Result<Origin> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let state = Arc::new(State::new(config));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, Arc::clone(&state), shutdown_rx));
        Ok(Origin {
            addr: local,
            state,
            shutdown_tx,
            thread: None,
        })
    }

    /// Same as [`Origin::start`], but starts its own multi-thread tokio runtime
    /// (2 worker threads) on a background std thread, so sync tests and
    /// non-tokio callers can use it. Returns once the listener is bound.
    pub fn start_background(addr: &str, config: OriginConfig) -> io::Result<Origin> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local = std_listener.local_addr()?;
        let state = Arc::new(State::new(config));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("cachegate-origin".to_owned())
            .spawn(move || {
                // The runtime is created and dropped on this thread only, so
                // it never gets dropped inside the caller's async context.
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("cachegate-origin-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let listener = {
                    let _guard = rt.enter();
                    match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                };
                let _ = ready_tx.send(Ok(()));
                rt.block_on(accept_loop(listener, thread_state, shutdown_rx));
                // Cancels the remaining connection tasks.
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Origin {
                addr: local,
                state,
                shutdown_tx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other(
                    "origin server thread exited during start-up",
                ))
            }
        }
    }

    /// The address the server is listening on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the server, e.g. `http://127.0.0.1:9000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Number of requests received for exactly this path (without query
    /// string; a `?query` suffix in `path` is ignored), any method.
    pub fn count(&self, path: &str) -> u64 {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        self.state.count(path)
    }

    /// Total number of counted requests received.
    pub fn total(&self) -> u64 {
        self.state.counters().total
    }

    /// Resets the per-path counts and the total (item versions and the
    /// `X-Origin-Seq` sequence are kept).
    pub fn reset_counts(&self) {
        self.state.reset_counts();
    }

    /// Stops accepting, closes connections and shuts the server down (also done on drop).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Shared state

#[derive(Debug, Default)]
struct Counters {
    total: u64,
    per_path: HashMap<String, u64>,
}

#[derive(Debug)]
struct State {
    config: OriginConfig,
    counters: Mutex<Counters>,
    versions: Mutex<BTreeMap<String, u64>>,
    seq: AtomicU64,
    cookie_seq: AtomicU64,
}

impl State {
    fn new(config: OriginConfig) -> Self {
        State {
            config,
            counters: Mutex::new(Counters::default()),
            versions: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(0),
            cookie_seq: AtomicU64::new(0),
        }
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn versions(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request for `path`; returns (sequence number, count for the path).
    fn record(&self, path: &str) -> (u64, u64) {
        let count = {
            let mut c = self.counters();
            c.total += 1;
            match c.per_path.get_mut(path) {
                Some(n) => {
                    *n += 1;
                    *n
                }
                None => {
                    c.per_path.insert(path.to_owned(), 1);
                    1
                }
            }
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        (seq, count)
    }

    fn count(&self, path: &str) -> u64 {
        self.counters().per_path.get(path).copied().unwrap_or(0)
    }

    fn reset_counts(&self) {
        let mut c = self.counters();
        c.total = 0;
        c.per_path.clear();
    }

    fn current_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Current version of an item (registering it with version 1 if unknown).
    fn item_version(&self, id: &str) -> u64 {
        let mut v = self.versions();
        match v.get(id) {
            Some(n) => *n,
            None => {
                v.insert(id.to_owned(), 1);
                1
            }
        }
    }

    /// Increments an item's version and returns the new one.
    fn bump_version(&self, id: &str) -> u64 {
        let mut v = self.versions();
        let n = v.entry(id.to_owned()).or_insert(1);
        *n += 1;
        *n
    }

    fn next_cookie(&self) -> u64 {
        splitmix64(self.cookie_seq.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

// ---------------------------------------------------------------------------
// Server loop

/// Resolves once shutdown is requested (or the handle is gone).
async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = wait_shutdown(&mut shutdown) => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(
                    stream,
                    Arc::clone(&state),
                    shutdown.clone(),
                ));
            }
            // Typically EMFILE: back off briefly instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    });
    // Accept as many header fields as Pingora forwards (hyper's default is 100), so the gateway's
    // own limits are what tests observe.
    let conn = http1::Builder::new()
        .keep_alive(true)
        .pipeline_flush(true)
        .max_headers(256)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = wait_shutdown(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}

// ---------------------------------------------------------------------------
// Response body

/// The response body type: a full buffer, a generated pattern, or a body that
/// fails part-way (to make hyper drop the connection).
enum OriginBody {
    Full(Option<Bytes>),
    /// `remaining` bytes of the `/big` pattern, in chunks of `chunk` bytes;
    /// `exact` announces the length (Content-Length) instead of streaming chunked.
    Pattern {
        remaining: usize,
        chunk: usize,
        exact: bool,
    },
    /// Sends `RESET_SENT_LEN` bytes, waits a little so they get flushed, then errors.
    Truncated {
        sent: bool,
        pause: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

impl OriginBody {
    fn empty() -> Self {
        OriginBody::Full(None)
    }

    fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            OriginBody::Full(None)
        } else {
            OriginBody::Full(Some(bytes))
        }
    }
}

fn pattern() -> &'static Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut v = Vec::with_capacity(PATTERN_LEN);
        while v.len() < PATTERN_LEN {
            v.extend_from_slice(BIG_LINE);
        }
        Bytes::from(v)
    })
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            OriginBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            OriginBody::Pattern {
                remaining, chunk, ..
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(*chunk).min(PATTERN_LEN);
                *remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(pattern().slice(0..n)))))
            }
            OriginBody::Truncated { sent, pause } => {
                if !*sent {
                    *sent = true;
                    return Poll::Ready(Some(Ok(Frame::data(pattern().slice(0..RESET_SENT_LEN)))));
                }
                let sleep = pause
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
                match sleep.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "cachegate-origin: deliberate reset mid-body",
                    )))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OriginBody::Full(b) => b.is_none(),
            OriginBody::Pattern { remaining, .. } => *remaining == 0,
            OriginBody::Truncated { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OriginBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            OriginBody::Pattern {
                remaining,
                exact: true,
                ..
            } => SizeHint::with_exact(*remaining as u64),
            OriginBody::Pattern { .. } | OriginBody::Truncated { .. } => SizeHint::default(),
        }
    }
}

// ---------------------------------------------------------------------------
// Request handling

type Resp = Response<OriginBody>;

/// Query parameters, decoded, in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (url_decode(k), url_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn get_u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("1" | "true" | "yes" | "on"))
    }
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut resp = Response::new(OriginBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn json_value(status: StatusCode, value: &Value) -> Resp {
    json_response(status, value.to_string().into_bytes())
}

fn empty_response(status: StatusCode) -> Resp {
    let mut resp = Response::new(OriginBody::empty());
    *resp.status_mut() = status;
    resp
}

fn not_found(path: &str) -> Resp {
    json_value(
        StatusCode::NOT_FOUND,
        &json!({"error": "not found", "path": path}),
    )
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut resp = json_value(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method not allowed"}),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn set_seq(resp: &mut Resp, seq: u64) {
    resp.headers_mut().insert(
        HeaderName::from_static("x-origin-seq"),
        HeaderValue::from(seq),
    );
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything the request handlers need.
struct Ctx<'a> {
    state: &'a State,
    method: Method,
    path: String,
    raw_query: String,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
    count: u64,
    seq: u64,
}

async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let query = Query::parse(&raw_query);

    if path.starts_with("/__") {
        // Drain the body so the connection stays reusable; admin requests are not counted.
        let _ = body.collect().await;
        let mut resp = admin(state, &parts.method, &path, &query);
        set_seq(&mut resp, state.current_seq());
        return resp;
    }

    // Count before anything slow, so tests can observe in-flight requests.
    let (seq, count) = state.record(&path);
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };

    let extra = Duration::from_millis(query.get_u64("delay_ms").unwrap_or(0).min(MAX_DELAY_MS));
    let delay = state.config.delay + extra;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let ctx = Ctx {
        state,
        method: parts.method,
        path,
        raw_query,
        query,
        headers: parts.headers,
        body,
        count,
        seq,
    };
    let mut resp = route(&ctx).await;
    if let Some(status) = ctx.query.get("status") {
        resp = status_override(status, resp);
    }
    decorate(&ctx, &mut resp);
    set_seq(&mut resp, seq);
    resp
}

async fn route(ctx: &Ctx<'_>) -> Resp {
    let path = ctx.path.as_str();
    if path == "/items" || path == "/items/" {
        return match ctx.method {
            Method::GET | Method::HEAD => items_list(ctx),
            _ => method_not_allowed("GET, HEAD"),
        };
    }
    if let Some(id) = path.strip_prefix("/items/") {
        if !id.contains('/') {
            return item(ctx, id);
        }
        return not_found(path);
    }
    if path == "/echo" || path.starts_with("/echo/") {
        return echo(ctx);
    }
    match path {
        "/slow" => {
            let ms = ctx.query.get_u64("ms").unwrap_or(0).min(MAX_DELAY_MS);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            json_value(
                StatusCode::OK,
                &json!({"slept_ms": ms, "request_count": ctx.count, "seq": ctx.seq}),
            )
        }
        "/big" => big(ctx),
        "/reset-mid-body" => {
            let mut resp = Response::new(OriginBody::Truncated {
                sent: false,
                pause: None,
            });
            let headers = resp.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(RESET_ANNOUNCED_LEN),
            );
            resp
        }
        _ => not_found(path),
    }
}

fn admin(state: &State, method: &Method, path: &str, query: &Query) -> Resp {
    match path {
        "/__counts" => {
            if *method != Method::GET && *method != Method::HEAD {
                return method_not_allowed("GET, HEAD");
            }
            match query.get("path") {
                Some(p) => json_value(StatusCode::OK, &json!({"path": p, "count": state.count(p)})),
                // The total alone: after a load test the per-path map can hold millions of keys.
                None if query.get("total").is_some() => {
                    json_value(StatusCode::OK, &json!({"total": state.counters().total}))
                }
                None => {
                    let c = state.counters();
                    let paths: BTreeMap<&str, u64> =
                        c.per_path.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                    json_value(StatusCode::OK, &json!({"total": c.total, "paths": paths}))
                }
            }
        }
        "/__reset" => {
            if *method != Method::POST {
                return method_not_allowed("POST");
            }
            state.reset_counts();
            json_value(StatusCode::OK, &json!({"reset": true}))
        }
        _ => not_found(path),
    }
}

/// FNV-1a, 64 bits: a stable, dependency-free hash for ETags.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn item_etag(id: &str, version: u64) -> String {
    format!(
        "\"{:016x}\"",
        fnv1a(&[id.as_bytes(), version.to_string().as_bytes()])
    )
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, `*` matches).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t).to_owned()
    };
    let want = strip(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == want)
}

fn etag_enabled(ctx: &Ctx<'_>) -> bool {
    !matches!(ctx.query.get("etag"), Some("0" | "false" | "no" | "off"))
}

/// 304 if validators match (and no status override is requested).
fn not_modified(ctx: &Ctx<'_>, etag: &str) -> Option<Resp> {
    if ctx.query.get("status").is_none() && if_none_match(&ctx.headers, etag) {
        let mut resp = empty_response(StatusCode::NOT_MODIFIED);
        if let Ok(v) = HeaderValue::from_str(etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Some(resp);
    }
    None
}

fn with_etag(mut resp: Resp, etag: Option<&str>) -> Resp {
    if let Some(Ok(v)) = etag.map(HeaderValue::from_str) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

fn item(ctx: &Ctx<'_>, id: &str) -> Resp {
    let state = ctx.state;
    match ctx.method {
        Method::GET | Method::HEAD => {
            let version = state.item_version(id);
            let etag = etag_enabled(ctx).then(|| item_etag(id, version));
            if let Some(resp) = etag.as_deref().and_then(|e| not_modified(ctx, e)) {
                return resp;
            }
            let target = ctx
                .query
                .get_u64("size")
                .map_or(state.config.body_size, |n| {
                    usize::try_from(n).unwrap_or(MAX_ITEM_SIZE)
                })
                .min(MAX_ITEM_SIZE);
            let head = format!(
                "{{\"id\":{},\"name\":{},\"version\":{},\"served_at_ms\":{},\"request_count\":{},\"query\":{},\"padding\":\"",
                json_str(id),
                json_str(&format!("item {id}")),
                version,
                unix_ms(),
                ctx.count,
                json_str(&ctx.raw_query),
            );
            let pad = target.saturating_sub(head.len() + 2);
            let mut body = Vec::with_capacity(head.len() + pad + 2);
            body.extend_from_slice(head.as_bytes());
            body.resize(head.len() + pad, b'x');
            body.extend_from_slice(b"\"}");
            with_etag(json_response(StatusCode::OK, body), etag.as_deref())
        }
        Method::PUT | Method::POST | Method::PATCH => {
            let version = state.bump_version(id);
            let etag = etag_enabled(ctx).then(|| item_etag(id, version));
            let resp = json_value(
                StatusCode::OK,
                &json!({
                    "id": id,
                    "version": version,
                    "method": ctx.method.as_str(),
                    "received_bytes": ctx.body.len(),
                    "request_count": ctx.count,
                }),
            );
            with_etag(resp, etag.as_deref())
        }
        Method::DELETE => {
            state.bump_version(id);
            empty_response(StatusCode::NO_CONTENT)
        }
        _ => method_not_allowed("GET, HEAD, PUT, POST, PATCH, DELETE"),
    }
}

fn items_list(ctx: &Ctx<'_>) -> Resp {
    let items: Vec<Value> = ctx
        .state
        .versions()
        .iter()
        .map(|(id, v)| json!({"id": id, "version": v}))
        .collect();
    let items = Value::Array(items);
    let etag = etag_enabled(ctx).then(|| {
        format!(
            "\"{:016x}\"",
            fnv1a(&[b"items", items.to_string().as_bytes()])
        )
    });
    if let Some(resp) = etag.as_deref().and_then(|e| not_modified(ctx, e)) {
        return resp;
    }
    let count = items.as_array().map_or(0, Vec::len);
    let body = json!({
        "items": items,
        "count": count,
        "served_at_ms": unix_ms(),
        "request_count": ctx.count,
    });
    with_etag(json_value(StatusCode::OK, &body), etag.as_deref())
}

fn echo(ctx: &Ctx<'_>) -> Resp {
    let mut headers = serde_json::Map::new();
    for name in ctx.headers.keys() {
        let joined = ctx
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let body = json!({
        "method": ctx.method.as_str(),
        "path": ctx.path,
        "query": ctx.raw_query,
        "headers": headers,
        "body_len": ctx.body.len(),
        "body_sha256": sha256_hex(&ctx.body),
        "request_count": ctx.count,
        "seq": ctx.seq,
    });
    let mut resp = json_value(StatusCode::OK, &body);
    if let Ok(v) = HeaderValue::from_str(&ctx.path) {
        resp.headers_mut()
            .insert(HeaderName::from_static("x-echo-path"), v);
    }
    resp
}

/// Lower-case hex SHA-256 of `data`.
fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn big(ctx: &Ctx<'_>) -> Resp {
    let n = ctx
        .query
        .get_u64("bytes")
        .map_or(0, |n| usize::try_from(n).unwrap_or(MAX_BIG_BYTES))
        .min(MAX_BIG_BYTES);
    let chunked = ctx.query.flag("chunked");
    let body = if chunked {
        // Several chunks even for small bodies, each a multiple of the line length.
        let line = BIG_LINE.len();
        let chunk = n.div_ceil(4).div_ceil(line) * line;
        OriginBody::Pattern {
            remaining: n,
            chunk: chunk.clamp(line, PATTERN_LEN),
            exact: false,
        }
    } else {
        OriginBody::Pattern {
            remaining: n,
            chunk: PATTERN_LEN,
            exact: true,
        }
    };
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Applies `status=NNN`: that status with body `{"status":NNN}` (no body for
/// 204/304), dropping the handler's validators. Invalid values give a 400.
fn status_override(raw: &str, resp: Resp) -> Resp {
    let status = raw
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|s| (200..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status else {
        return json_value(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid status", "status": raw}),
        );
    };
    drop(resp);
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        empty_response(status)
    } else {
        json_value(status, &json!({"status": status.as_u16()}))
    }
}

/// Applies the header-only query parameters to any response.
fn decorate(ctx: &Ctx<'_>, resp: &mut Resp) {
    let q = &ctx.query;
    let headers = resp.headers_mut();
    if q.flag("cookie") {
        let value = format!("session={:016x}; Path=/", ctx.state.next_cookie());
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    if let Some(Ok(v)) = q.get("cache_control").map(HeaderValue::from_str) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    if let Some(secs) = q.get("expires").and_then(|s| s.trim().parse::<i64>().ok()) {
        let at = if secs >= 0 {
            unix_secs().saturating_add(secs.unsigned_abs())
        } else {
            unix_secs().saturating_sub(secs.unsigned_abs())
        };
        if let Ok(v) = HeaderValue::from_str(&http_date(at)) {
            headers.insert(header::EXPIRES, v);
        }
    }
    if q.flag("last_modified") {
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static(FIXED_LAST_MODIFIED),
        );
    }
    if let Some(Ok(v)) = q.get("vary").map(HeaderValue::from_str) {
        headers.append(header::VARY, v);
    }
    // `header=Name:value`, repeatable: any response header, appended as given (a second
    // `header=` with the same name adds a second field line). `{count}` in the value becomes
    // this path's request count, so each fetch (and each 304) can carry a new value.
    for spec in q.get_all("header") {
        let Some((name, value)) = spec.split_once(':') else {
            continue;
        };
        let value = value.replace("{count}", &ctx.count.to_string());
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim_start()),
        ) {
            headers.append(n, v);
        }
    }
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (RFC 9110 HTTP-date).
fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    // Civil-from-days (H. Hinnant), for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Debug)]
    struct RawResponse {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl RawResponse {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("JSON body")
        }
    }

    async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.reserve(64 * 1024);
        let n = stream.read_buf(buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    fn find(buf: &[u8], needle: &[u8]) -> Option<usize> {
        buf.windows(needle.len()).position(|w| w == needle)
    }

    /// Reads one response from `stream`; `buf` holds bytes read ahead.
    async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(buf, b"\r\n\r\n") {
                break i;
            }
            fill(stream, buf).await?;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if status == 204 || status == 304 {
        } else if let Some(len) = get("content-length") {
            let len: usize = len.parse().expect("content-length");
            while buf.len() < len {
                fill(stream, buf).await?;
            }
            body = buf.drain(..len).collect();
        } else if get("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(i) = find(buf, b"\r\n") {
                        break i;
                    }
                    fill(stream, buf).await?;
                };
                let size_str = String::from_utf8_lossy(&buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_str.trim(), 16).expect("chunk size");
                buf.drain(..line_end + 2);
                while buf.len() < size + 2 {
                    fill(stream, buf).await?;
                }
                body.extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            loop {
                match fill(stream, buf).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            body = std::mem::take(buf);
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// One request on a fresh connection.
    async fn request(
        addr: SocketAddr,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut req =
            format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");
        let mut buf = Vec::new();
        read_response(&mut stream, &mut buf)
            .await
            .expect("response")
    }

    async fn get(addr: SocketAddr, target: &str) -> RawResponse {
        request(addr, "GET", target, &[], b"").await
    }

    async fn start() -> Origin {
        Origin::start("127.0.0.1:0", OriginConfig::default())
            .await
            .expect("start origin")
    }

    #[tokio::test]
    async fn item_json_etag_and_304() {
        let origin = start().await;
        let addr = origin.addr();

        let r = get(addr, "/items/1").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body.len(), DEFAULT_BODY_SIZE);
        assert_eq!(r.header("content-length"), Some("1024"));
        let v = r.json();
        assert_eq!(v["id"], "1");
        assert_eq!(v["name"], "item 1");
        assert_eq!(v["version"], 1);
        assert_eq!(v["request_count"], 1);
        assert_eq!(v["query"], "");
        assert!(v["served_at_ms"].as_u64().expect("served_at_ms") > 0);
        let etag = r.header("etag").expect("etag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert_eq!(r.header("x-origin-seq"), Some("1"));

        // Same ETag on a second GET, different sequence.
        let r2 = get(addr, "/items/1?a=b").await;
        assert_eq!(r2.header("etag"), Some(etag.as_str()));
        assert_eq!(r2.header("x-origin-seq"), Some("2"));
        assert_eq!(r2.json()["query"], "a=b");
        assert_eq!(r2.json()["request_count"], 2);

        let r = request(addr, "GET", "/items/1", &[("If-None-Match", &etag)], b"").await;
        assert_eq!(r.status, 304);
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        let r = request(
            addr,
            "GET",
            "/items/1",
            &[("If-None-Match", "\"nope\", W/\"x\"")],
            b"",
        )
        .await;
        assert_eq!(r.status, 200);

        // Other items have other ETags.
        let other = get(addr, "/items/2").await;
        assert_ne!(other.header("etag"), Some(etag.as_str()));

        // Writes bump the version and change the ETag.
        let r = request(addr, "PUT", "/items/1", &[], b"hello").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["version"], 2);
        assert_eq!(r.json()["received_bytes"], 5);
        let r = request(addr, "GET", "/items/1", &[("If-None-Match", &etag)], b"").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["version"], 2);
        let etag2 = r.header("etag").expect("etag").to_owned();
        assert_ne!(etag, etag2);
        let r = request(addr, "DELETE", "/items/1", &[], b"").await;
        assert_eq!(r.status, 204);
        assert_eq!(get(addr, "/items/1").await.json()["version"], 3);

        // size=N and etag=0.
        let r = get(addr, "/items/1?size=5000&etag=0").await;
        assert_eq!(r.body.len(), 5000);
        assert_eq!(r.header("etag"), None);
        // Smaller than the fixed fields: no padding, still valid JSON.
        assert_eq!(get(addr, "/items/1?size=1").await.json()["padding"], "");

        // The list knows both items.
        let r = get(addr, "/items").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["count"], 2);
        let list_etag = r.header("etag").expect("list etag").to_owned();
        let r = request(addr, "GET", "/items", &[("If-None-Match", &list_etag)], b"").await;
        assert_eq!(r.status, 304);

        assert_eq!(origin.count("/items/1"), 10);
        assert_eq!(origin.count("/items/1?ignored"), 10);
    }

    #[tokio::test]
    async fn status_cookie_and_header_params() {
        let origin = start().await;
        let addr = origin.addr();
        let r = get(
            addr,
            "/items/7?status=503&cookie=1&cache_control=public%2C%20max-age%3D60&expires=60&vary=Accept-Encoding&last_modified=1",
        )
        .await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json(), json!({"status": 503}));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("etag"), None);
        let cookie = r.header("set-cookie").expect("set-cookie");
        assert!(
            cookie.starts_with("session=") && cookie.ends_with("; Path=/"),
            "{cookie}"
        );
        assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
        assert!(r.header("expires").expect("expires").ends_with(" GMT"));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(r.header("last-modified"), Some(FIXED_LAST_MODIFIED));

        // Cookies differ between responses.
        let c2 = get(addr, "/items/7?cookie=1").await;
        assert_ne!(c2.header("set-cookie"), Some(cookie));
        assert_eq!(c2.status, 200);

        assert_eq!(get(addr, "/nope?status=404").await.status, 404);
        assert_eq!(get(addr, "/items/7?status=204").await.status, 204);
        assert_eq!(get(addr, "/items/7?status=42").await.status, 400);
        let r = get(addr, "/missing/thing").await;
        assert_eq!(r.status, 404);
        assert_eq!(
            r.json(),
            json!({"error": "not found", "path": "/missing/thing"})
        );
        assert!(r.header("x-origin-seq").is_some());
    }

    #[tokio::test]
    async fn counts_and_admin_endpoints() {
        let origin = start().await;
        let addr = origin.addr();
        get(addr, "/items/2").await;
        get(addr, "/items/2?x=1").await;
        request(addr, "POST", "/items/2", &[], b"{}").await;
        get(addr, "/echo/z").await;
        assert_eq!(origin.count("/items/2"), 3);
        assert_eq!(origin.total(), 4);

        let r = get(addr, "/__counts?path=/items/2").await;
        assert_eq!(r.json(), json!({"path": "/items/2", "count": 3}));
        let r = get(addr, "/__counts").await;
        assert_eq!(
            r.json(),
            json!({"total": 4, "paths": {"/items/2": 3, "/echo/z": 1}})
        );
        assert_eq!(r.header("x-origin-seq"), Some("4"));
        let r = get(addr, "/__counts?total").await;
        assert_eq!(r.json(), json!({"total": 4}));
        // Admin requests are not counted.
        assert_eq!(origin.total(), 4);

        let r = request(addr, "POST", "/__reset", &[], b"").await;
        assert_eq!(r.status, 200);
        assert_eq!(origin.total(), 0);
        assert_eq!(origin.count("/items/2"), 0);
        get(addr, "/items/2").await;
        assert_eq!(origin.count("/items/2"), 1);
        origin.reset_counts();
        assert_eq!(origin.total(), 0);
        assert_eq!(get(addr, "/__nothing").await.status, 404);
        assert_eq!(origin.total(), 0);
    }

    #[tokio::test]
    async fn echo_reports_request() {
        let origin = start().await;
        let addr = origin.addr();
        let r = request(
            addr,
            "POST",
            "/echo/a/b?x=1&y=two",
            &[
                ("X-Forwarded-For", "10.0.0.1"),
                ("X-Multi", "one"),
                ("X-Multi", "two"),
            ],
            b"12345",
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-echo-path"), Some("/echo/a/b"));
        let v = r.json();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/echo/a/b");
        assert_eq!(v["query"], "x=1&y=two");
        assert_eq!(v["body_len"], 5);
        assert_eq!(v["request_count"], 1);
        assert_eq!(v["headers"]["host"], addr.to_string());
        assert_eq!(v["headers"]["x-forwarded-for"], "10.0.0.1");
        assert_eq!(v["headers"]["x-multi"], "one, two");
        assert_eq!(get(addr, "/echo").await.status, 200);
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests() {
        let origin = start().await;
        let mut stream = TcpStream::connect(origin.addr()).await.expect("connect");
        let mut buf = Vec::new();
        let mut seqs = Vec::new();
        for _ in 0..3 {
            stream
                .write_all(b"GET /items/9 HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("write");
            let r = read_response(&mut stream, &mut buf)
                .await
                .expect("response");
            assert_eq!(r.status, 200);
            seqs.push(r.header("x-origin-seq").expect("seq").to_owned());
        }
        assert_eq!(seqs, ["1", "2", "3"]);
        // HEAD: headers only.
        stream
            .write_all(b"HEAD /items/9 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            fill(&mut stream, &mut buf).await.expect("read");
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"));
        assert!(head.contains("etag:"));
    }

    #[tokio::test]
    async fn big_bodies() {
        let origin = start().await;
        let addr = origin.addr();
        let r = get(addr, "/big?bytes=200000").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("content-length"), Some("200000"));
        assert_eq!(r.body.len(), 200_000);
        assert!(r
            .body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == BIG_LINE[i % 64]));

        let r = get(addr, "/big?bytes=1000&chunked=1").await;
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.header("content-length"), None);
        assert_eq!(r.body.len(), 1000);
        assert!(r
            .body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == BIG_LINE[i % 64]));

        let r = get(addr, "/big?bytes=300000&chunked=1").await;
        assert_eq!(r.body.len(), 300_000);
        assert!(r
            .body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == BIG_LINE[i % 64]));

        let r = get(addr, "/big").await;
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
    }

    #[tokio::test]
    async fn reset_mid_body_truncates() {
        let origin = start().await;
        let mut stream = TcpStream::connect(origin.addr()).await.expect("connect");
        stream
            .write_all(b"GET /reset-mid-body HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut all = Vec::new();
        let mut tmp = [0u8; 8192];
        loop {
            match stream.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&tmp[..n]),
            }
        }
        let head_end = find(&all, b"\r\n\r\n").expect("headers");
        let head = String::from_utf8_lossy(&all[..head_end]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-length: 100000"), "{head}");
        assert_eq!(all.len() - head_end - 4, RESET_SENT_LEN);
        assert_eq!(origin.count("/reset-mid-body"), 1);
    }

    #[tokio::test]
    async fn delay_and_in_flight_counting() {
        let origin = Origin::start(
            "127.0.0.1:0",
            OriginConfig::with_delay(Duration::from_millis(150)),
        )
        .await
        .expect("start");
        let addr = origin.addr();
        let started = std::time::Instant::now();
        let pending = tokio::spawn(async move { get(addr, "/slow?ms=100").await });
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(origin.count("/slow"), 1);
        assert!(!pending.is_finished());
        let r = pending.await.expect("join");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["slept_ms"], 100);
        assert!(started.elapsed() >= Duration::from_millis(250));

        let started = std::time::Instant::now();
        get(addr, "/items/1?delay_ms=100").await;
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let origin = start().await;
        let addr = origin.addr();
        assert_eq!(get(addr, "/items/1").await.status, 200);
        origin.shutdown();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn background_runtime_for_sync_callers() {
        use std::io::{Read, Write};
        let origin =
            Origin::start_background("127.0.0.1:0", OriginConfig::default()).expect("start");
        let addr = origin.addr();
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET /items/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("read");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("\"id\":\"5\""));
        assert_eq!(origin.count("/items/5"), 1);
        assert_eq!(origin.total(), 1);
        // An idle keep-alive connection must not keep the server alive.
        let _idle = std::net::TcpStream::connect(addr).expect("connect");
        origin.shutdown();
        assert!(std::net::TcpStream::connect(addr).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_704_067_200), FIXED_LAST_MODIFIED);
        assert_eq!(
            http_date(951_782_400 + 3_661),
            "Tue, 29 Feb 2000 01:01:01 GMT"
        );
        assert_eq!(url_decode("a%2Cb+c%zz%4"), "a,b c%zz%4");
        assert_eq!(item_etag("1", 1), item_etag("1", 1));
        assert_ne!(item_etag("1", 1), item_etag("1", 2));
        assert_ne!(item_etag("11", 1), item_etag("1", 11));
    }
}
