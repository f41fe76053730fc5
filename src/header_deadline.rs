//! A total deadline on reading each request's header section (NGINX's `client_header_timeout`).
//!
//! Pingora reads the request header before any proxy hook runs and only bounds each single read
//! (60 s), so a client trickling one byte every few seconds (slowloris) holds a connection and a
//! task for as long as it likes. The deadline has to sit below Pingora, on the connection: the
//! proxy's [`ServerApp`] is wrapped so every accepted connection's stream is a
//! [`DeadlineStream`], which watches the bytes it hands to Pingora. From the first byte of a
//! request to the blank line that ends its header section it allows
//! `[server] client_header_timeout_ms`; past that it answers `408`, best effort, and fails the
//! read, and Pingora closes the connection. Idle keep-alive connections are not affected (Pingora's
//! keep-alive timeout covers them), nor are bodies (`client_body_timeout_ms` bounds each read).
//!
//! A response written marks the end of a request, so the next byte read starts the next header.
//! (A response that starts while a slow client is still sending its body would restart the
//! clock on body bytes; Pingora closes such connections after the response anyway.)

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::METRICS;
use crate::reload::ConfigHandle;

/// What a client that ran out of time is told (a request was never read, so no JSON envelope
/// keyed to it; the connection closes).
const TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: 81\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{\"error\":\"request_timeout\",\"message\":\"the request header did not arrive in time\"}";

/// The proxy application with a header deadline on every connection.
pub struct HeaderDeadlineApp<A> {
    inner: Arc<A>,
    handle: Arc<ConfigHandle>,
}

impl<A> HeaderDeadlineApp<A> {
    /// Wraps `inner`; the deadline is read from `handle`'s configuration for each new connection,
    /// so a reload applies to connections accepted afterwards.
    pub fn new(inner: A, handle: Arc<ConfigHandle>) -> Self {
        Self {
            inner: Arc::new(inner),
            handle,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeaderDeadlineApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // A connection handed back for reuse is already wrapped.
        let stream: Stream = if stream.as_any().is::<DeadlineStream>() {
            stream
        } else {
            let limit = self
                .handle
                .snapshot()
                .config
                .gateway
                .limits
                .client_header_timeout;
            Box::new(DeadlineStream::new(stream, limit))
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Where the connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: nothing of the next one read yet.
    Idle,
    /// Reading a header section that started at `started`.
    Header {
        started: Instant,
        /// Whether a non-empty line was seen (leading empty lines do not end the section).
        seen_line: bool,
        /// Whether the current line is empty so far (ignoring CR).
        line_empty: bool,
    },
    /// The header section is complete: body bytes and whatever follows are not watched.
    Body,
}

/// A connection stream that fails a read when a request's header section takes too long.
pub struct DeadlineStream {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    /// Armed only while a header read is waiting (a fast client never creates it).
    timer: Option<Pin<Box<Sleep>>>,
}

impl DeadlineStream {
    /// Wraps `inner` with a deadline of `limit` per header section.
    pub fn new(inner: Stream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            phase: Phase::Idle,
            timer: None,
        }
    }

    /// Follows the bytes just read to the end of the header section.
    fn observe(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Header {
                started: Instant::now(),
                seen_line: false,
                line_empty: true,
            };
        }
        let Phase::Header {
            started,
            mut seen_line,
            mut line_empty,
        } = self.phase
        else {
            return;
        };
        for &b in bytes {
            match b {
                b'\n' if line_empty && seen_line => {
                    self.phase = Phase::Body;
                    self.timer = None;
                    return;
                }
                b'\n' => {
                    seen_line |= !line_empty;
                    line_empty = true;
                }
                b'\r' => {}
                _ => line_empty = false,
            }
        }
        self.phase = Phase::Header {
            started,
            seen_line,
            line_empty,
        };
    }

    /// Whether the current header section's time is up (arming the timer if needed).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Phase::Header { started, .. } = self.phase else {
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
            .field("phase", &self.phase)
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
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = buf.filled().get(before..).unwrap_or_default();
                this.observe(got);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => {
                // Best effort: a socket whose send buffer is empty takes this at once; a client
                // that does not read it loses nothing it was owed.
                let _ = Pin::new(&mut this.inner).poll_write(cx, TIMEOUT_RESPONSE);
                this.phase = Phase::Body;
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
        // A response (not an interim `100 Continue`) ends the request it answers.
        if buf.starts_with(b"HTTP/") && !buf.starts_with(b"HTTP/1.1 1") {
            this.phase = Phase::Idle;
            this.timer = None;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if first.starts_with(b"HTTP/") && !first.starts_with(b"HTTP/1.1 1") {
                this.phase = Phase::Idle;
                this.timer = None;
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn phase_after(chunks: &[&[u8]]) -> &'static str {
        let (a, _b) = tokio::io::duplex(64);
        let mut s = DeadlineStream::new(Box::new(a), Duration::from_secs(1));
        for c in chunks {
            s.observe(c);
        }
        match s.phase {
            Phase::Idle => "idle",
            Phase::Header { .. } => "header",
            Phase::Body => "body",
        }
    }

    #[tokio::test]
    async fn the_blank_line_ends_the_header_section_however_it_is_split() {
        assert_eq!(phase_after(&[]), "idle");
        assert_eq!(phase_after(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]), "body");
        assert_eq!(
            phase_after(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r", b"\n"]),
            "body"
        );
        assert_eq!(
            phase_after(&[b"GET / HTTP/1.1\r\n", b"Host: a\r", b"\n", b"\r\n"]),
            "body"
        );
        assert_eq!(phase_after(&[b"GET / HTTP/1.1\nHost: a\n\n"]), "body");
        assert_eq!(phase_after(&[b"GET / HTTP/1.1\r\nHost: a\r\n"]), "header");
        // Empty lines before the request line do not end anything.
        assert_eq!(phase_after(&[b"\r\n\r\nGET / HTTP/1.1\r\n"]), "header");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_header_fails_at_the_deadline_with_a_408() {
        let (a, mut client) = tokio::io::duplex(4096);
        let mut s = DeadlineStream::new(Box::new(a), Duration::from_secs(10));
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(s.read(&mut buf).await.unwrap() > 0);
        let err = s.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let mut answer = vec![0u8; TIMEOUT_RESPONSE.len()];
        client.read_exact(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 408 "));
        let body_at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let text = String::from_utf8_lossy(&answer);
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
    async fn idle_connections_and_bodies_are_not_timed() {
        let (a, mut client) = tokio::io::duplex(4096);
        let mut s = DeadlineStream::new(Box::new(a), Duration::from_secs(10));
        let mut buf = [0u8; 64];
        // Idle: no byte yet, the deadline does not run.
        let idle = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf)).await;
        assert!(
            idle.is_err(),
            "an idle read is Pingora's keep-alive timeout's business"
        );
        // A whole header, then a body that takes its time.
        client
            .write_all(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
            .await
            .unwrap();
        assert!(s.read(&mut buf).await.unwrap() > 0);
        let body = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf)).await;
        assert!(
            body.is_err(),
            "a body read is not bounded by the header deadline"
        );
        // The response ends the request; the next one starts its own clock.
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(s.phase, Phase::Idle);
    }
}
