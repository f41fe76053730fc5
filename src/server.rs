//! Assembles the Pingora server: the proxy service on `[server] listen` and the admin service on
//! `[admin] listen`, from a loaded configuration.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tokio::sync::oneshot;

use crate::admin::{AdminApp, AdminAuth};
use crate::cache::fanout::SharedTierService;
use crate::cache::pingora_bridge::GatewayCache;
use crate::cache::store::TieredStore;
use crate::reload::ConfigHandle;
use crate::watch::ConfigWatcher;

/// Options that the configuration does not carry (tests and embedding).
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Admin token to use instead of reading `[admin] token_env` from the environment.
    pub admin_token: Option<String>,
    /// Take the listening sockets over from a running gateway (`cachegate run --upgrade`)
    /// instead of binding them.
    pub upgrade: bool,
    /// End the process as soon as a graceful shutdown has no request left in flight (the
    /// `cachegate` binary; never in-process, where it would end the host program).
    pub exit_when_drained: bool,
}

/// Builds a ready-to-run server for `handle`'s configuration.
pub fn build(handle: Arc<ConfigHandle>, options: &ServerOptions) -> Server {
    let snap = handle.snapshot();
    let g = &snap.config.gateway;
    let conf = ServerConf {
        threads: g.threads,
        grace_period_seconds: Some(g.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(g.grace_period.as_secs().max(1)),
        upgrade_sock: g.upgrade_socket.clone(),
        work_stealing: g.work_stealing,
        // Trust anchors of TLS targets; without it, the platform's roots (rustls-native-certs,
        // which honours SSL_CERT_FILE/SSL_CERT_DIR).
        ca_file: g
            .upstream_ca_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade: options.upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    let cache = match &g.redis {
        Some(r) => GatewayCache::with_store(TieredStore::with_max_local_ttl(r.max_local_ttl)),
        None => GatewayCache::new(),
    };
    handle.attach_store(cache.store());
    let proxy = crate::proxy::service(
        Arc::clone(&handle),
        cache,
        &server.configuration,
        &g.listen.to_string(),
    );

    let auth = match &options.admin_token {
        Some(t) => AdminAuth::with_token(t),
        None => AdminAuth::from_env(g.admin_token_env.as_deref()),
    };
    let mut admin = Service::new(
        "cachegate admin".to_owned(),
        HttpServer::new_app(AdminApp::new(Arc::clone(&handle), auth, g.listen)),
    );
    admin.add_tcp(&g.admin_listen.to_string());

    // The watcher reloads on file changes and SIGHUP; the proxy starts once it is watching, so
    // no edit made after start-up can be missed.
    let watcher = server.add_service(pingora::services::background::background_service(
        "config watcher",
        ConfigWatcher::new(Arc::clone(&handle)),
    ));
    let proxy = server.add_service(proxy);
    proxy.add_dependency(&watcher);
    if let Some(r) = &g.redis {
        server.add_service(pingora::services::background::background_service(
            "shared cache tier",
            SharedTierService::new(cache.store(), r.clone(), instance_id()),
        ));
    }
    server.add_service(admin);
    // logrotate's `postrotate kill -USR1`: the access log file is reopened.
    server.add_service(pingora::services::background::background_service(
        "access log reopen",
        crate::access_log::ReopenOnSignal,
    ));
    if options.exit_when_drained {
        server.add_service(pingora::services::background::background_service(
            "exit when drained",
            ExitWhenDrained {
                grace: g.grace_period,
            },
        ));
    }
    server
}

/// Pingora waits out the whole grace period on a graceful shutdown (SIGTERM, or SIGQUIT after
/// an upgrade hand-over), even with nothing left to do, so an idle gateway took
/// `grace_period_secs` to stop. Once the shutdown has begun (the listeners stop accepting),
/// this ends the process as soon as no request is in flight; with requests still running at the
/// end of the grace period it does nothing, and Pingora's own shutdown goes on as before.
struct ExitWhenDrained {
    grace: std::time::Duration,
}

#[async_trait]
impl pingora::services::background::BackgroundService for ExitWhenDrained {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + self.grace;
        // Idle twice in a row, 20 ms apart: a request accepted just before the listeners closed
        // has had time to be counted.
        let mut idle = 0;
        while tokio::time::Instant::now() < deadline {
            idle = if crate::proxy::in_flight::count() == 0 {
                idle + 1
            } else {
                0
            };
            if idle >= 2 {
                tracing::info!("Graceful shutdown: no request in flight; exiting.");
                // The access log writer writes what is queued within 10 ms.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                std::process::exit(0);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// A shutdown signal driven by a channel, for running the server inside another program (or a
/// test) and stopping it without process signals.
pub struct ChannelShutdown(tokio::sync::Mutex<Option<oneshot::Receiver<ShutdownSignal>>>);

impl ChannelShutdown {
    /// The watcher and the sender that triggers it.
    pub fn new() -> (Self, oneshot::Sender<ShutdownSignal>) {
        let (tx, rx) = oneshot::channel();
        (Self(tokio::sync::Mutex::new(Some(rx))), tx)
    }
}

#[async_trait]
impl ShutdownSignalWatch for ChannelShutdown {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().await.take();
        match rx {
            Some(rx) => rx.await.unwrap_or(ShutdownSignal::FastShutdown),
            // Already consumed: never fire again.
            None => std::future::pending().await,
        }
    }
}

/// Runs `server` until `signal` fires.
pub fn run(server: Server, signal: Box<dyn ShutdownSignalWatch>) {
    server.run(RunArgs {
        shutdown_signal: signal,
    });
}

/// A random identifier for this gateway instance (tells its own invalidation messages apart).
fn instance_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}
