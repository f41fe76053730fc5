//! Test fixtures shared by the tier's unit tests: a throwaway `redis-server` per test, settings,
//! entries and keys, and waiting helpers. Separate because the tests of several files (`tests`,
//! `codec`, `conn`) use them.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::codec::{from_unix_ms, unix_ms};
use super::tasks::SubscriptionEvent;
use crate::cache::entry::{Entry, StoreKey};
use crate::cache::seal::Sealer;
use crate::metrics::METRICS;
use crate::runtime::stage::RedisSettings;

pub(super) struct RedisServer {
    child: Option<Child>,
    pub(super) port: u16,
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub(super) fn start() -> Self {
        Self::start_on(free_port())
    }

    pub(super) fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "local",
                "--dir",
                &std::env::temp_dir().to_string_lossy(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need `redis-server` on PATH (e.g. apt-get install \
                     redis-server): cannot start it: {e}"
                )
            });
        let mut server = Self {
            child: Some(child),
            port,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server on port {} exited early: {status}", self.port);
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not become ready",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal (`STOP`, `CONT`) to this server.
    pub(super) fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} {pid} failed");
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub(super) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(super) async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(super) fn settings(url: &str) -> RedisSettings {
    RedisSettings {
        url: url.to_owned(),
        key_prefix: "cgtest".into(),
        lookup_timeout: Duration::from_millis(50),
        connect_timeout: Duration::from_millis(300),
        max_local_ttl: Duration::from_secs(5),
        encryption_keys_env: None,
    }
}

pub(super) fn sealer() -> Arc<Sealer> {
    use base64::Engine as _;
    let k = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    Arc::new(Sealer::parse("TEST_KEYS", &format!("1:{k}")).unwrap())
}

/// Whole milliseconds, as the wire keeps them.
pub(super) fn now_ms() -> SystemTime {
    from_unix_ms(unix_ms(SystemTime::now()))
}

pub(super) fn entry(body: &str, ttl: Duration) -> Entry {
    let created = now_ms();
    Entry {
        meta: Bytes::from_static(b"meta-blob"),
        body: Bytes::from(body.to_owned()),
        created,
        expires_at: created + ttl,
        prefixes: vec![[1u8; 16], [2u8; 16]].into(),
        decoded: Default::default(),
    }
}

pub(super) fn sk(b: u8) -> StoreKey {
    StoreKey([b; 16])
}

pub(super) async fn eventually<F, Fut, T>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn next_event(
    rx: &mut mpsc::Receiver<SubscriptionEvent>,
    within: Duration,
) -> SubscriptionEvent {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("no subscription event in time")
        .expect("subscription channel closed")
}

pub(super) fn dropped(reason: &str) -> u64 {
    METRICS
        .redis_write_dropped
        .with_label_values(&[reason])
        .get()
}
