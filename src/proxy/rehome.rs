//! Moves each accepted connection's socket onto the I/O driver of the thread that serves it.
//!
//! Pingora 0.9 runs a listener's accept loop on one runtime and hands every accepted connection
//! to a random runtime of its no-steal pool (`pingora_runtime::current_handle`), but the socket
//! stays registered with the epoll of the runtime that accepted it. For a connection served by
//! another thread, every readiness event is then taken by the accepting thread's driver and
//! passed on as a cross-thread wake-up (an eventfd write, then a context switch on the serving
//! thread), and one thread polls every connection. With two proxy threads that is half of all
//! connections: `perf` showed one eventfd write per two requests on the accepting thread
//! (`mio::Waker::wake` under the `current_thread` driver's turn).
//!
//! [`rehome`] registers the socket where the connection is served instead: it duplicates the
//! descriptor, registers the duplicate with the current runtime and drops Pingora's stream, which
//! deregisters and closes the original (the socket lives on in the duplicate). It runs before
//! anything is read from the connection. Plain TCP only: a TLS stream (or anything else that is
//! not Pingora's L4 stream) is returned as it is.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use pingora::protocols::l4::stream::{Stream as L4Stream, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};
use tokio::net::TcpStream;

/// `stream`, with its socket registered on the current runtime's I/O driver.
///
/// Only a TCP connection served by a single-thread runtime (Pingora's no-steal pool) is moved:
/// with one work-stealing runtime there is one driver and nothing to gain, a Unix socket or a
/// virtual stream has no TCP socket to duplicate, and without a runtime there is nowhere to
/// register. Any failure (no descriptor left) keeps Pingora's stream, which works, only with
/// the extra hop.
///
/// The rehomed stream does not support [`Peek`]: with Pingora's `h2c` detection on, every
/// HTTP/1 client would be taken for HTTP/2. cachegate never enables `h2c`.
pub fn rehome(stream: Stream) -> Stream {
    if !thread_has_own_driver() {
        return stream;
    }
    let Some(l4) = stream.as_any().downcast_ref::<L4Stream>() else {
        return stream;
    };
    let is_tcp = l4
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|_| ()))
        .is_some();
    if !is_tcp || l4.as_raw_fd() < 0 {
        return stream;
    }
    match HomeStream::from_l4(l4) {
        // `stream` is dropped here: deregistered from the accepting runtime, its descriptor
        // closed; the duplicate keeps the connection open.
        Ok(home) => Box::new(home),
        Err(e) => {
            tracing::debug!(error = %e, "Connection kept on the accepting thread's I/O driver.");
            stream
        }
    }
}

/// Whether the current task runs on a single-thread runtime, with an I/O driver of its own
/// thread (Pingora's no-steal pool), rather than on a shared work-stealing runtime or outside
/// any runtime. Read from the running runtime, not from the configuration: `[server]
/// work_stealing` only takes effect at a restart.
pub fn thread_has_own_driver() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// A plain TCP connection registered with the runtime that serves it, with what Pingora's L4
/// stream knew about it. Writes are buffered as Pingora buffers them (one TCP segment, so a
/// small response header and body leave in one `send`); reads go straight to the socket
/// (Pingora's HTTP layer reads into a buffer of its own).
pub struct HomeStream {
    io: BufWriter<TcpStream>,
    fd: RawFd,
    socket_digest: Option<Arc<SocketDigest>>,
    proxy_digest: Option<Arc<ProxyDigest>>,
    timing: Vec<Option<TimingDigest>>,
}

impl HomeStream {
    fn from_l4(l4: &L4Stream) -> io::Result<Self> {
        // SAFETY: `l4` owns this descriptor (a real one: the caller checked it is not a
        // virtual stream's -1) and is borrowed for the whole call, so it is open; it is only
        // duplicated here, never closed or taken over.
        #[allow(unsafe_code)] // The crate's only unsafe block: see SAFETY above.
        let borrowed = unsafe { BorrowedFd::borrow_raw(l4.as_raw_fd()) };
        let std = std::net::TcpStream::from(borrowed.try_clone_to_owned()?);
        std.set_nonblocking(true)?;
        // Registers the duplicate with the runtime this task runs on.
        let tcp = TcpStream::from_std(std)?;
        let fd = tcp.as_raw_fd();
        // The digest reads addresses from a descriptor number: it must be the duplicate's
        // (the original's number is free for reuse once Pingora's stream is dropped).
        let digest = SocketDigest::from_raw_fd(fd);
        if let Some(old) = l4.get_socket_digest() {
            if let Some(peer) = old.peer_addr.get() {
                let _ = digest.peer_addr.set(peer.clone());
            }
            if let Some(local) = old.local_addr.get() {
                let _ = digest.local_addr.set(local.clone());
            }
        }
        Ok(Self {
            io: BufWriter::with_capacity(DEFAULT_L4_WRITE_BUFFER_SIZE, tcp),
            fd,
            socket_digest: Some(Arc::new(digest)),
            proxy_digest: l4.get_proxy_digest(),
            timing: l4.get_timing_digest(),
        })
    }
}

impl std::fmt::Debug for HomeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeStream").field("fd", &self.fd).finish()
    }
}

impl Drop for HomeStream {
    /// Sends what is still buffered if the socket takes it at once, as Pingora's stream does.
    fn drop(&mut self) {
        let _ = self.io.flush().now_or_never();
    }
}

impl AsyncRead for HomeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for HomeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HomeStream {
    async fn shutdown(&mut self) {
        if let Err(e) = AsyncWriteExt::shutdown(&mut self.io).await {
            tracing::debug!(error = %e, "Failed to shut the connection down.");
        }
    }
}

impl UniqueID for HomeStream {
    fn id(&self) -> UniqueIDType {
        self.fd
    }
}

impl Ssl for HomeStream {}

#[async_trait]
impl Peek for HomeStream {}

impl GetTimingDigest for HomeStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.timing.clone()
    }

    fn get_read_pending_time(&self) -> Duration {
        Duration::ZERO
    }

    fn get_write_pending_time(&self) -> Duration {
        Duration::ZERO
    }
}

impl GetProxyDigest for HomeStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.proxy_digest.clone()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.proxy_digest = Some(Arc::new(digest));
    }
}

impl GetSocketDigest for HomeStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.socket_digest.clone()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.socket_digest = Some(Arc::new(socket_digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::AsyncReadExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A connection accepted on one runtime, as Pingora's accept loop makes it, and its client.
    fn accepted_on(rt: &tokio::runtime::Runtime) -> (Stream, std::net::TcpStream) {
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (tcp, peer) = listener.accept().await.unwrap();
            let mut l4 = L4Stream::from(tcp);
            let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
            digest.peer_addr.set(Some(peer.into())).unwrap();
            l4.set_socket_digest(digest);
            (Box::new(l4) as Stream, client)
        })
    }

    #[test]
    fn a_rehomed_connection_is_served_by_its_new_runtime_alone() {
        let accepting = runtime();
        let (stream, mut client) = accepted_on(&accepting);
        let accepted_fd = stream.id();
        let serving = runtime();
        let mut stream = serving.block_on(async { rehome(stream) });
        assert!(stream.as_any().is::<HomeStream>());
        assert_ne!(stream.id(), accepted_fd, "a registration of its own");
        let digest = stream.get_socket_digest().unwrap();
        assert_eq!(
            digest.peer_addr().and_then(|a| a.as_inet()).copied(),
            Some(client.local_addr().unwrap())
        );
        assert_eq!(
            digest.local_addr().and_then(|a| a.as_inet()).copied(),
            Some(client.peer_addr().unwrap())
        );
        // Without its socket moved, the connection would still be polled by this runtime's
        // driver, and fail once that is gone.
        drop(accepting);
        client.write_all(b"ping").unwrap();
        serving.block_on(async {
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            stream.write_all(b"pong").await.unwrap();
            stream.flush().await.unwrap();
        });
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        // Closing it closes the connection (the original descriptor is gone already).
        drop(stream);
        assert_eq!(client.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn other_streams_are_left_as_they_are() {
        let accepting = runtime();
        let (stream, _client) = accepted_on(&accepting);
        let home = accepting.block_on(async { rehome(stream) });
        let id = home.id();
        let again = accepting.block_on(async { rehome(home) });
        assert!(again.as_any().is::<HomeStream>());
        assert_eq!(again.id(), id);
    }

    #[test]
    fn connections_of_a_work_stealing_runtime_or_without_a_runtime_are_not_moved() {
        let accepting = runtime();
        let (stream, _client) = accepted_on(&accepting);
        let id = stream.id();
        let stealing = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let stream = stealing.block_on(async { rehome(stream) });
        assert!(stream.as_any().is::<L4Stream>());
        assert_eq!(stream.id(), id);
        let stream = rehome(stream);
        assert!(stream.as_any().is::<L4Stream>());
        assert_eq!(stream.id(), id);
    }

    #[test]
    fn what_is_buffered_is_sent_on_drop() {
        let rt = runtime();
        let (stream, mut client) = accepted_on(&rt);
        let mut stream = rt.block_on(async { rehome(stream) });
        rt.block_on(async move {
            // A connection in use (its socket known to be writable).
            stream.write_all(b"answer; ").await.unwrap();
            stream.flush().await.unwrap();
            stream.write_all(b"last words").await.unwrap();
            // Dropped where Pingora drops it: on the runtime, without a flush.
            drop(stream);
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"answer; last words");
    }
}
