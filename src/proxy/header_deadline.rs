//! A total deadline on reading each request's header section (NGINX's `client_header_timeout`).
//!
//! Pingora reads the request header before any proxy hook runs and only bounds each single read
//! (60 s), so a client trickling one byte every few seconds (slowloris) holds a connection and a
//! task for as long as it likes. The deadline has to sit below Pingora, on the connection: every
//! accepted connection's stream is wrapped in a [`DeadlineStream`] ([`HeaderDeadlineApp`]).
//!
//! The stream does not guess where requests start and end from the bytes (bodies drained after an
//! early answer, pipelined requests and uploads that outlive their response would fool it). It is
//! told: [`ArmingApp`] arms it just before Pingora reads each request's header, and the proxy's
//! first hook disarms it ([`header_complete`]). While armed, the clock starts at the first byte
//! and `[server] client_header_timeout_ms` later a waiting read fails: the client gets a `408`
//! (best effort) and Pingora closes the connection. An idle keep-alive connection (armed, no byte
//! yet) is Pingora's keep-alive timeout's business; bodies have `client_body_timeout_ms` per read.
//! No response is ever in progress while the stream is armed, so the `408` cannot land inside one.
//!
//! The same stream bounds writes: a write (or flush) that makes no progress for
//! `[server] client_send_timeout_ms` fails, so a client that stops reading — a response, or the
//! answers to requests it pipelines — is let go. (Pingora's own write timeout covers a whole
//! buffer, so it would cut off a slow but steady reader of a large cached body, and it does not
//! cover response headers.)
//!
//! And the stream keeps a bounded record of what it read ([`HeadLog`]), from which the proxy
//! recovers a request line that Pingora rewrote before any hook could see it
//! ([`original_target`]).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::head_log::{Body, HeadLog, Original};
use crate::metrics::METRICS;
use crate::reload::ConfigHandle;

/// Room in the head log beyond one largest head, for requests pipelined behind it (bodies are
/// not kept).
const HEAD_LOG_SLACK: usize = 16 * 1024;

/// What a client that ran out of time is told (a request was never read, so no JSON envelope
/// keyed to it; the connection closes).
const TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: 81\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{\"error\":\"request_timeout\",\"message\":\"the request header did not arrive in time\"}";

/// The proxy application with a header deadline on every connection.
pub struct HeaderDeadlineApp<A> {
    inner: Arc<ArmingApp<A>>,
    handle: Arc<ConfigHandle>,
}

impl<A> HeaderDeadlineApp<A> {
    /// Wraps `inner`; the deadline is read from `handle`'s configuration for each new connection,
    /// so a reload applies to connections accepted afterwards.
    pub fn new(inner: A, handle: Arc<ConfigHandle>) -> Self {
        Self {
            inner: Arc::new(ArmingApp {
                inner: Arc::new(inner),
            }),
            handle,
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for HeaderDeadlineApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let snap = self.handle.snapshot();
        let limits = &snap.config.gateway.limits;
        let stream = crate::proxy::rehome::rehome(stream);
        let stream: Stream = Box::new(
            DeadlineStream::new(stream, limits.client_header_timeout)
                .with_send_timeout(limits.client_send_timeout)
                .with_head_log(limits.max_uri_bytes + limits.max_header_bytes + HEAD_LOG_SLACK),
        );
        // Pingora's HTTP/1 connection loop (the blanket `ServerApp` of an `HttpServerApp`).
        ServerApp::process_new(&self.inner, stream, shutdown).await
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.inner.as_ref()).await;
    }
}

/// Arms the connection's deadline before Pingora reads each request on it.
pub struct ArmingApp<A> {
    inner: Arc<A>,
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for ArmingApp<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if let Some(s) = deadline_stream(&session) {
            s.arm();
        }
        self.inner.process_new_http(session, shutdown).await
    }

    fn h2_options(&self) -> Option<pingora::protocols::http::v2::server::H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}

fn deadline_stream(session: &ServerSession) -> Option<&DeadlineStream> {
    session.stream()?.as_any().downcast_ref::<DeadlineStream>()
}

/// Stops the header clock of `session`'s connection: its header section has been read.
pub fn header_complete(session: &ServerSession) {
    if let Some(s) = deadline_stream(session) {
        s.disarm();
    }
}

/// The target `session`'s current request was received with, when Pingora rewrote its request
/// line (see `head_log`); `None` when the connection keeps no record.
pub fn original_target(session: &ServerSession, head: &[u8]) -> Option<Original> {
    let log = deadline_stream(session)?.log.as_ref()?;
    let mut log = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Some(log.take_target(head))
}

/// Tells `session`'s connection record how the body after the head just looked up is framed,
/// so its bytes are skipped (see `head_log`).
pub fn body_follows(session: &ServerSession, body: Body) {
    if let Some(log) = deadline_stream(session).and_then(|s| s.log.as_ref()) {
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .expect_body(body);
    }
}

/// A connection stream that fails a read when an armed header read takes too long.
pub struct DeadlineStream {
    inner: Stream,
    limit: Duration,
    /// Set while Pingora reads a request header (atomics: armed through shared references).
    armed: AtomicBool,
    /// Set by [`Self::arm`]: the next read starts a new header (forget the old clock).
    fresh: AtomicBool,
    /// When the first byte of the current header arrived.
    started: Option<Instant>,
    /// Created only when an armed read has to wait (a fast client never creates it).
    timer: Option<Pin<Box<Sleep>>>,
    /// Longest a write may make no progress (`None`: unbounded).
    send_limit: Option<Duration>,
    /// Running while a write is stalled; cleared by any progress.
    write_timer: Option<Pin<Box<Sleep>>>,
    /// What was read, for [`original_target`] (a lock: read through the session's shared
    /// reference; written only here, through `&mut`, without locking).
    log: Option<std::sync::Mutex<HeadLog>>,
}

impl DeadlineStream {
    /// Wraps `inner` with a deadline of `limit` per header section (unarmed).
    pub fn new(inner: Stream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            armed: AtomicBool::new(false),
            fresh: AtomicBool::new(false),
            started: None,
            timer: None,
            send_limit: None,
            write_timer: None,
            log: None,
        }
    }

    /// Also records up to `cap` bytes of what is read (see [`original_target`]).
    pub fn with_head_log(mut self, cap: usize) -> Self {
        self.log = Some(std::sync::Mutex::new(HeadLog::new(cap)));
        self
    }

    /// Also fails a write that makes no progress for `limit`.
    pub fn with_send_timeout(mut self, limit: Duration) -> Self {
        self.send_limit = Some(limit);
        self
    }

    /// Follows a write's outcome: progress clears the stall timer, a stall runs it, and a stall
    /// past the send limit becomes a `TimedOut` error.
    fn write_outcome<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.write_timer = None;
            return res;
        }
        let Some(limit) = self.send_limit else {
            return res;
        };
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            self.write_timer = None;
            METRICS.client_timeouts.with_label_values(&["send"]).inc();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client accepted nothing within the send deadline",
            )));
        }
        res
    }

    /// A request header is about to be read: its clock starts at its first byte.
    pub fn arm(&self) {
        self.fresh.store(true, Ordering::Relaxed);
        self.armed.store(true, Ordering::Relaxed);
    }

    /// The header has been read: reads are no longer timed.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }

    /// Whether the current header's time is up (arming the timer if needed).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(started) = self.started else {
            return false;
        };
        let deadline = started + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(cx).is_ready()
    }
}

impl fmt::Debug for DeadlineStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineStream")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("armed", &self.armed)
            .finish()
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let armed = this.armed.load(Ordering::Relaxed);
        if this.fresh.swap(false, Ordering::Relaxed) || !armed {
            this.started = None;
            this.timer = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if armed && this.started.is_none() && buf.filled().len() > before {
                    this.started = Some(Instant::now());
                }
                if let (Some(log), Some(read)) = (this.log.as_mut(), buf.filled().get(before..)) {
                    if !read.is_empty() {
                        log.get_mut()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .record(read);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if armed && this.expired(cx) => {
                // Best effort: a socket whose send buffer is empty takes this at once; a client
                // that does not read it loses nothing it was owed.
                let _ = Pin::new(&mut this.inner).poll_write(cx, TIMEOUT_RESPONSE);
                this.disarm();
                this.timer = None;
                METRICS.client_timeouts.with_label_values(&["header"]).inc();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request header deadline passed",
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.write_outcome(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.write_outcome(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_flush(cx);
        this.write_outcome(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for DeadlineStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for DeadlineStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for DeadlineStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for DeadlineStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for DeadlineStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for DeadlineStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.inner.set_socket_digest(socket_digest);
    }
}

#[async_trait]
impl Peek for DeadlineStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn pair() -> (DeadlineStream, DuplexStream) {
        let (a, client) = tokio::io::duplex(4096);
        (
            DeadlineStream::new(Box::new(a), Duration::from_secs(10)),
            client,
        )
    }

    /// A read that does not finish within a minute (of paused time).
    async fn waits(s: &mut DeadlineStream) -> bool {
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
            .await
            .is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_header_fails_at_the_deadline_with_a_408() {
        let (mut s, mut client) = pair();
        s.arm();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(s.read(&mut buf).await.unwrap() > 0);
        let before = Instant::now();
        let err = s.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(before.elapsed(), Duration::from_secs(10));
        let mut answer = vec![0u8; TIMEOUT_RESPONSE.len()];
        client.read_exact(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 408 "));
        let text = String::from_utf8_lossy(&answer);
        let body_at = text.find("\r\n\r\n").unwrap() + 4;
        let announced: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            answer.len() - body_at,
            announced,
            "Content-Length matches the body"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unarmed_reads_and_idle_armed_reads_are_not_timed() {
        let (mut s, mut client) = pair();
        // Unarmed (a body, a drained body, anything after the header): never timed.
        client.write_all(b"partial").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(s.read(&mut buf).await.unwrap() > 0);
        assert!(waits(&mut s).await);
        // Armed but nothing of the next request yet: keep-alive idle time, not timed.
        s.arm();
        assert!(waits(&mut s).await);
        // Armed, a first byte, then disarmed (header read): no longer timed.
        client.write_all(b"G").await.unwrap();
        assert!(s.read(&mut buf).await.unwrap() > 0);
        s.disarm();
        assert!(waits(&mut s).await);
    }

    #[tokio::test(start_paused = true)]
    async fn each_arming_starts_a_new_clock() {
        let (mut s, mut client) = pair();
        let mut buf = [0u8; 64];
        s.arm();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(s.read(&mut buf).await.unwrap() > 0);
        s.disarm();
        // Long after the first header's deadline, the next request gets its own 10 s.
        tokio::time::sleep(Duration::from_secs(30)).await;
        s.arm();
        client.write_all(b"GET").await.unwrap();
        assert!(s.read(&mut buf).await.unwrap() > 0);
        let before = Instant::now();
        assert!(s.read(&mut buf).await.is_err());
        assert_eq!(before.elapsed(), Duration::from_secs(10));
    }
}
