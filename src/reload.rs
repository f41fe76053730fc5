//! The configuration handle: the current snapshot behind an `ArcSwap`, and reloads.
//!
//! A reload runs the whole load (parse → validate → compile) and swaps the new snapshot in only
//! when it is valid; requests in flight keep the `Arc` they started with. A rejected reload leaves
//! the old snapshot serving and is remembered for `GET /config`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::cache::store::TieredStore;
use crate::config::{self, RuntimeConfig};
use crate::diag::Diagnostics;
use crate::metrics::METRICS;

/// What `GET /config` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadStatus {
    /// Generation being served (1 for the configuration loaded at start).
    pub generation: u64,
    /// When the served configuration was loaded (Unix seconds).
    pub loaded_at: u64,
    /// The directory configuration is read from.
    pub source: PathBuf,
    /// The last rejected reload's diagnostics, cleared by the next accepted one.
    pub last_error: Option<String>,
    /// When the last reload was attempted (Unix seconds).
    pub last_attempt_at: Option<u64>,
    /// Settings that changed on disk but only take effect after a restart.
    pub restart_required: Vec<String>,
}

/// The live configuration.
pub struct ConfigHandle {
    dir: PathBuf,
    current: ArcSwap<Snapshot>,
    status: Mutex<ReloadStatus>,
    /// Serialises reloads so two triggers cannot interleave their swaps.
    reload_lock: tokio::sync::Mutex<()>,
    /// The gateway's cache store, whose per-stage tiers follow the configuration.
    store: OnceLock<&'static TieredStore>,
}

/// A configuration and its generation number.
#[derive(Debug)]
pub struct Snapshot {
    /// The generation (increments on every accepted reload).
    pub generation: u64,
    /// The configuration.
    pub config: RuntimeConfig,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ConfigHandle {
    /// Loads `dir`; fails with every diagnostic when the configuration is invalid.
    pub fn load(dir: &Path) -> Result<(Arc<Self>, Diagnostics), Diagnostics> {
        let outcome = config::load(dir);
        let Some(cfg) = outcome.config else {
            return Err(outcome.diagnostics);
        };
        Ok((Arc::new(Self::new(dir, cfg)), outcome.diagnostics))
    }

    /// Wraps an already loaded configuration as generation 1.
    pub fn new(dir: &Path, cfg: RuntimeConfig) -> Self {
        let status = ReloadStatus {
            generation: 1,
            loaded_at: unix(cfg.loaded_at),
            source: dir.to_path_buf(),
            last_error: None,
            last_attempt_at: None,
            restart_required: Vec::new(),
        };
        METRICS.config_generation.set(1);
        METRICS.prime(cfg.stages.iter().map(|s| s.name.as_str()));
        METRICS
            .config_last_success
            .set(i64::try_from(status.loaded_at).unwrap_or(i64::MAX));
        Self {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(Snapshot {
                generation: 1,
                config: cfg,
            }),
            status: Mutex::new(status),
            reload_lock: tokio::sync::Mutex::new(()),
            store: OnceLock::new(),
        }
    }

    /// Connects the gateway's store: its tiers are sized for the current configuration now and
    /// after every accepted reload. A second call is ignored.
    pub fn attach_store(&self, store: &'static TieredStore) {
        if self.store.set(store).is_ok() {
            configure_store(store, &self.current.load().config);
        }
    }

    /// The store, once attached.
    pub fn store(&self) -> Option<&'static TieredStore> {
        self.store.get().copied()
    }

    /// The snapshot to use for one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The reload status.
    pub fn status(&self) -> ReloadStatus {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the directory; swaps in the result when valid. Returns the new generation, or
    /// the diagnostics of the rejected attempt (the old configuration keeps serving).
    pub async fn reload(&self) -> Result<u64, Diagnostics> {
        let _guard = self.reload_lock.lock().await;
        let dir = self.dir.clone();
        // Loading resolves target host names: keep that off the async workers.
        let outcome = tokio::task::spawn_blocking(move || config::load(&dir))
            .await
            .unwrap_or_else(|e| config::LoadOutcome {
                config: None,
                diagnostics: Diagnostics(vec![crate::diag::Diagnostic::error(
                    &self.dir,
                    None,
                    format!("reload task failed: {e}"),
                )]),
            });
        let now = unix(SystemTime::now());
        let mut status = match self.status.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        status.last_attempt_at = Some(now);
        match outcome.config {
            Some(cfg) => {
                let old = self.current.load();
                let restart = restart_only_changes(&old.config, &cfg);
                let generation = old.generation + 1;
                status.generation = generation;
                status.loaded_at = unix(cfg.loaded_at);
                status.last_error = None;
                status.restart_required = restart;
                if let Some(store) = self.store.get() {
                    configure_store(store, &cfg);
                    flush_changed_stages(store, &old.config, &cfg);
                }
                METRICS.prime(cfg.stages.iter().map(|s| s.name.as_str()));
                self.current.store(Arc::new(Snapshot {
                    generation,
                    config: cfg,
                }));
                METRICS
                    .config_reloads
                    .with_label_values(&["accepted"])
                    .inc();
                METRICS
                    .config_generation
                    .set(i64::try_from(generation).unwrap_or(i64::MAX));
                METRICS
                    .config_last_success
                    .set(i64::try_from(status.loaded_at).unwrap_or(i64::MAX));
                tracing::info!(generation, "Configuration reloaded.");
                for s in &status.restart_required {
                    tracing::warn!(setting = %s, "Setting changed on disk; it takes effect after a restart.");
                }
                Ok(generation)
            }
            None => {
                status.last_error = Some(outcome.diagnostics.to_string());
                METRICS
                    .config_reloads
                    .with_label_values(&["rejected"])
                    .inc();
                tracing::error!(
                    generation = status.generation,
                    errors = %outcome.diagnostics,
                    "Configuration rejected; keeping the previous configuration."
                );
                Err(outcome.diagnostics)
            }
        }
    }
}

/// Flushes every stage whose cache semantics changed between `old` and `new`.
fn flush_changed_stages(store: &TieredStore, old: &RuntimeConfig, new: &RuntimeConfig) {
    for stage in &new.stages {
        if let Some(previous) = old.stage(&stage.name) {
            if previous.cache_fingerprint() != stage.cache_fingerprint() {
                let mut n = store.flush(&stage.name);
                // A bundle's later ProxyEndpoint (`shop.admin`) keeps its policies' entries in
                // its folder's stage partition, shared with the bundle's other endpoints.
                let folder = crate::runtime::stage::folder_stage(&stage.name);
                if folder != stage.name {
                    n += store.flush(folder);
                }
                tracing::info!(stage = %stage.name, entries = n, "Cache settings changed; stage cache flushed.");
            }
        }
    }
}

/// Creates, resizes or drops the local tiers (one per stage, one per environment cache) to
/// match `cfg`.
fn configure_store(store: &TieredStore, cfg: &RuntimeConfig) {
    let mut partitions: Vec<(String, u64)> = cfg
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.cache.capacity))
        .collect();
    // The environment's caches, shared by the stages' cache policies.
    if let Some(env) = &cfg.gateway.environment {
        partitions.extend(
            env.caches
                .iter()
                .map(|(name, capacity)| (env.partition(Some(name)), *capacity)),
        );
    }
    // Purge records live as long as the entries they may cover.
    let long: std::collections::HashSet<&str> = cfg
        .stages
        .iter()
        .flat_map(|s| s.long_lived_partitions())
        .collect();
    let partitions: Vec<(String, u64, std::time::Duration)> = partitions
        .into_iter()
        .map(|(name, capacity)| {
            let lifetime = if long.contains(name.as_str()) {
                crate::cache::purge::MAX_ENTRY_LIFETIME
            } else {
                crate::cache::purge::SHORT_ENTRY_LIFETIME
            };
            (name, capacity, lifetime)
        })
        .collect();
    store.configure(&partitions);
}

/// Settings that cannot change without a restart (listeners and threads are bound at start).
fn restart_only_changes(old: &RuntimeConfig, new: &RuntimeConfig) -> Vec<String> {
    let (o, n) = (&old.gateway, &new.gateway);
    let mut out = Vec::new();
    if o.listen != n.listen {
        out.push(format!("[server] listen ({} -> {})", o.listen, n.listen));
    }
    if o.threads != n.threads {
        out.push(format!("[server] threads ({} -> {})", o.threads, n.threads));
    }
    if o.work_stealing != n.work_stealing {
        out.push("[server] work_stealing".to_owned());
    }
    if o.upgrade_socket != n.upgrade_socket {
        out.push("[server] upgrade_socket".to_owned());
    }
    if o.upstream_ca_file != n.upstream_ca_file {
        out.push("[server] upstream_ca_file".to_owned());
    }
    if o.admin_listen != n.admin_listen {
        out.push(format!(
            "[admin] listen ({} -> {})",
            o.admin_listen, n.admin_listen
        ));
    }
    if o.admin_token_env != n.admin_token_env {
        out.push("[admin] token_env (the admin token is read at start)".to_owned());
    }
    if o.redis.as_ref().map(|r| &r.url) != n.redis.as_ref().map(|r| &r.url) {
        out.push("[redis] url".to_owned());
    }
    out
}
