//! Hot reload triggers: a debounced watcher on the configuration directory, and SIGHUP.
//!
//! Both triggers end in [`ConfigHandle::reload`], which does the actual work (parse → validate →
//! compile off the async threads, atomic swap, old configuration kept on errors, logging and
//! metrics). This module only decides *when* to call it:
//!
//! * File changes are debounced: editors save in several steps (temp file + rename, truncate +
//!   write, delete + re-create), and reloading in the middle would read a half-written file. After
//!   the first relevant event we wait until the directory has been quiet for the debounce window
//!   and then reload once, so every such sequence ends in exactly one reload of the final content.
//! * SIGHUP reloads at once (the operator asked explicitly; there is nothing to wait for).
//! * One task runs every reload, so reloads never overlap; changes seen while a reload runs are
//!   queued and produce one more reload after it.

use std::path::{Component, Path};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use notify::event::{Event, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::reload::ConfigHandle;

/// Default quiet period before a file change is reloaded: long enough to cover an editor's
/// write-temp-and-rename sequence, short enough to feel immediate.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// Capacity of the channel from notify's thread to the watcher task.
///
/// Bounded so a flood of events (a `git checkout`, a recursive copy) cannot grow memory without
/// limit. When it is full the event is dropped, which loses nothing: only relevant events are
/// queued, so a full channel means an event is waiting that the task has not received yet. The
/// task receives it after the dropped change already happened on disk, and the reload it
/// schedules (which starts even later) reads that change.
const CHANNEL_CAPACITY: usize = 256;

/// Watches the configuration directory and reloads on changes and on SIGHUP.
///
/// Run it as a Pingora background service
/// (`pingora::services::background::background_service("config watcher", watcher)`). It signals
/// readiness once the file watch and the SIGHUP handler are installed, so a service that depends
/// on it starts only when changes can no longer be missed.
pub struct ConfigWatcher {
    handle: Arc<ConfigHandle>,
    debounce: Duration,
}

impl ConfigWatcher {
    /// A watcher for `handle`'s source directory with the default debounce (200 ms).
    pub fn new(handle: Arc<ConfigHandle>) -> Self {
        Self {
            handle,
            debounce: DEFAULT_DEBOUNCE,
        }
    }

    /// Sets the quiet period a file change must be followed by before it is reloaded.
    #[cfg(test)]
    pub fn with_debounce(self, d: Duration) -> Self {
        Self {
            debounce: d,
            ..self
        }
    }

    /// The watcher loop; `ready` is notified once both triggers are installed.
    async fn run(&self, mut shutdown: ShutdownWatch, ready: Option<ServiceReadyNotifier>) {
        if *shutdown.borrow() {
            return;
        }
        let dir = self.handle.status().source;
        let (tx, mut events) = mpsc::channel::<Event>(CHANNEL_CAPACITY);
        // Kept alive for the life of the loop: dropping it removes the inotify watches.
        let watcher = watch_dir(&dir, tx);
        let mut files_open = watcher.is_some();
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "Cannot install the SIGHUP handler; reload with POST /reload instead."
                );
                None
            }
        };
        if let Some(ready) = ready {
            ready.notify_ready();
        }

        // When the pending reload is due: `None` when nothing is pending.
        let mut due: Option<Instant> = None;
        loop {
            tokio::select! {
                // Shutdown first, so a stream of events cannot delay it.
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                Some(()) = next_hangup(&mut hup) => {
                    tracing::info!("SIGHUP received; reloading the configuration.");
                    // The reload reads everything now on disk, which covers every change queued
                    // so far: forget them rather than reload twice.
                    while events.try_recv().is_ok() {}
                    due = None;
                    self.reload().await;
                }
                event = events.recv(), if files_open => match event {
                    Some(event) => {
                        tracing::debug!(
                            paths = ?event.paths,
                            kind = ?event.kind,
                            "Configuration change detected."
                        );
                        // Every relevant event restarts the quiet period.
                        due = Some(Instant::now() + self.debounce);
                    }
                    // notify's thread is gone (it only ends with the watcher); SIGHUP still works.
                    None => files_open = false,
                },
                () = sleep_until(due), if due.is_some() => {
                    due = None;
                    self.reload().await;
                }
            }
        }
        drop(watcher);
        tracing::debug!("Configuration watcher stopped.");
    }

    /// One reload. `ConfigHandle::reload` logs and counts the outcome itself.
    async fn reload(&self) {
        match self.handle.reload().await {
            Ok(generation) => tracing::debug!(generation, "Triggered reload accepted."),
            Err(_) => tracing::debug!("Triggered reload rejected."),
        }
    }
}

#[async_trait]
impl BackgroundService for ConfigWatcher {
    /// Signals readiness only once the watch is in place (instead of at once, as the default
    /// does), so dependants never start while an edit could still go unnoticed.
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready_notifier: ServiceReadyNotifier,
    ) {
        self.run(shutdown, Some(ready_notifier)).await;
    }

    /// Runs until `shutdown` becomes true.
    async fn start(&self, shutdown: ShutdownWatch) {
        self.run(shutdown, None).await;
    }
}

/// Starts a recursive watch on `dir` that forwards relevant events to `tx`; `None` (after
/// logging why) when the watch cannot be created, e.g. when inotify limits are exhausted.
fn watch_dir(dir: &Path, tx: mpsc::Sender<Event>) -> Option<RecommendedWatcher> {
    let root = dir.to_path_buf();
    // Runs on notify's own thread: filter there, so the channel only ever holds events that
    // must lead to a reload (see CHANNEL_CAPACITY).
    let handler = move |result: notify::Result<Event>| match result {
        Ok(event) if is_relevant(&root, &event) => {
            // Full: a reload is already pending. Closed: the task is shutting down.
            let _ = tx.try_send(event);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "Configuration watcher error."),
    };
    let mut watcher = match RecommendedWatcher::new(handler, notify::Config::default()) {
        Ok(w) => w,
        Err(e) => {
            watch_failed(dir, &e);
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
        watch_failed(dir, &e);
        return None;
    }
    tracing::info!(
        dir = %dir.display(),
        "Watching {} for configuration changes.",
        dir.display()
    );
    Some(watcher)
}

fn watch_failed(dir: &Path, e: &notify::Error) {
    tracing::error!(
        dir = %dir.display(),
        error = %e,
        "Cannot watch the configuration directory: hot reload on file changes is off. \
         SIGHUP and POST /reload still work."
    );
}

/// Whether `event` may have changed the configuration.
///
/// Access events never do, and a reload reads every file, so reacting to them would loop.
/// Everything else counts when at least one of its paths is a real configuration name: a rename
/// from `stage.toml.tmp` onto `stage.toml` touches an ignored name *and* a real one and counts,
/// while vim's swap, backup and `4913` probe files alone do not. An event without paths (notify's
/// "rescan" after an inotify queue overflow) counts, since anything may have changed.
fn is_relevant(root: &Path, event: &Event) -> bool {
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.is_empty() || event.paths.iter().any(|p| !is_ignored_path(root, p))
}

/// Whether `path` is (inside) a file or folder the loader ignores. Every component below the
/// root is checked: files inside `.git/` or an ignored folder are ignored too.
fn is_ignored_path(root: &Path, path: &Path) -> bool {
    match path.strip_prefix(root) {
        Ok(rel) => rel.components().any(|c| match c {
            Component::Normal(name) => is_ignored_name(&name.to_string_lossy()),
            _ => false,
        }),
        // Not under the root as spelled (should not happen): judge by the file name alone.
        Err(_) => path
            .file_name()
            .is_some_and(|name| is_ignored_name(&name.to_string_lossy())),
    }
}

/// Editor and tool droppings: hidden files, backups (`~`), vim swap files, temp files, and
/// vim's `4913` write-permission probe. Matches the names the loader skips.
fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp")
        || name == "4913"
}

/// The next SIGHUP, or never when the handler could not be installed.
async fn next_hangup(hup: &mut Option<Signal>) -> Option<()> {
    match hup {
        Some(s) => {
            let got = s.recv().await;
            if got.is_none() {
                // The signal driver is gone: stop polling a stream that will never fire again.
                *hup = None;
            }
            got
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `due`, or forever when nothing is pending.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;
    use std::sync::LazyLock;
    use tokio::sync::{watch, RwLock, RwLockReadGuard};
    use tokio::task::JoinHandle;

    const DEBOUNCE: Duration = Duration::from_millis(100);
    const DEADLINE: Duration = Duration::from_secs(5);
    const GATEWAY: &str = "[server]\nlisten = \"127.0.0.1:1\"\n[admin]\nlisten = \"127.0.0.1:2\"\n";
    const STAGE: &str = "target = \"http://127.0.0.1:9\"\n";

    /// SIGHUP reaches every watcher in the process: the SIGHUP test takes this for writing, every
    /// other test holds it for reading, so no test sees another test's signal.
    static SIGNAL_LOCK: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

    struct Fixture {
        _dir: tempfile::TempDir,
        stage: PathBuf,
        handle: Arc<ConfigHandle>,
        shutdown: watch::Sender<bool>,
        task: JoinHandle<()>,
        _guard: Option<RwLockReadGuard<'static, ()>>,
    }

    impl Fixture {
        /// A valid configuration directory with a running, ready watcher.
        async fn start() -> Self {
            let guard = SIGNAL_LOCK.read().await;
            let mut f = Self::start_unguarded().await;
            f._guard = Some(guard);
            f
        }

        async fn start_unguarded() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("gateway.toml"), GATEWAY).unwrap();
            fs::create_dir(dir.path().join("s")).unwrap();
            let stage = dir.path().join("s").join("stage.toml");
            fs::write(&stage, STAGE).unwrap();
            let (handle, _) = ConfigHandle::load(dir.path()).unwrap();
            assert_eq!(handle.snapshot().generation, 1);
            let watcher = ConfigWatcher::new(Arc::clone(&handle)).with_debounce(DEBOUNCE);
            let (shutdown, shutdown_rx) = watch::channel(false);
            let (ready_tx, mut ready_rx) = watch::channel(false);
            let task = tokio::spawn(async move {
                watcher
                    .start_with_ready_notifier(shutdown_rx, ServiceReadyNotifier::new(ready_tx))
                    .await;
            });
            tokio::time::timeout(DEADLINE, ready_rx.wait_for(|r| *r))
                .await
                .unwrap()
                .unwrap();
            Self {
                _dir: dir,
                stage,
                handle,
                shutdown,
                task,
                _guard: None,
            }
        }

        fn generation(&self) -> u64 {
            self.handle.snapshot().generation
        }

        /// Polls until the generation is at least `n`; panics after the deadline.
        async fn wait_generation(&self, n: u64) {
            let start = Instant::now();
            while self.generation() < n {
                assert!(
                    start.elapsed() < DEADLINE,
                    "generation stayed at {}, expected {n}",
                    self.generation()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// Waits out a settle interval (twice the debounce plus slack for the reload itself).
        async fn settle(&self) {
            tokio::time::sleep(DEBOUNCE * 2 + Duration::from_millis(100)).await;
        }

        async fn stop(self) {
            self.shutdown.send(true).unwrap();
            tokio::time::timeout(DEADLINE, self.task)
                .await
                .unwrap()
                .unwrap();
        }
    }

    #[tokio::test]
    async fn edit_triggers_reload() {
        let f = Fixture::start().await;
        fs::write(&f.stage, format!("{STAGE}api_name = \"x\"\n")).unwrap();
        f.wait_generation(2).await;
        f.settle().await;
        assert_eq!(f.generation(), 2, "one edit, one reload");
        assert!(f.handle.status().last_error.is_none());
        f.stop().await;
    }

    #[tokio::test]
    async fn atomic_rename_save_reloads_once() {
        let f = Fixture::start().await;
        let tmp = f.stage.with_file_name("stage.toml.tmp");
        fs::write(&tmp, format!("{STAGE}api_name = \"renamed\"\n")).unwrap();
        fs::rename(&tmp, &f.stage).unwrap();
        f.wait_generation(2).await;
        f.settle().await;
        assert_eq!(f.generation(), 2, "one rename save, one reload");
        let snap = f.handle.snapshot();
        assert!(format!("{:?}", snap.config).contains("renamed"));
        f.stop().await;
    }

    #[tokio::test]
    async fn burst_of_writes_is_debounced() {
        let f = Fixture::start().await;
        for i in 0..10 {
            fs::write(&f.stage, format!("{STAGE}api_name = \"v{i}\"\n")).unwrap();
        }
        f.wait_generation(2).await;
        f.settle().await;
        let g = f.generation();
        assert!(g <= 3, "10 quick writes gave {} reloads", g - 1);
        assert!(format!("{:?}", f.handle.snapshot().config).contains("\"v9\""));
        f.stop().await;
    }

    #[tokio::test]
    async fn invalid_edit_keeps_config_then_fix_reloads() {
        let f = Fixture::start().await;
        fs::write(&f.stage, "target = \"ftp://x\"\n").unwrap();
        let start = Instant::now();
        while f.handle.status().last_error.is_none() {
            assert!(start.elapsed() < DEADLINE, "invalid edit was not reported");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            f.generation(),
            1,
            "invalid configuration must not be swapped in"
        );
        fs::write(&f.stage, STAGE).unwrap();
        f.wait_generation(2).await;
        assert!(f.handle.status().last_error.is_none());
        f.stop().await;
    }

    #[tokio::test]
    async fn editor_temp_files_are_ignored() {
        let f = Fixture::start().await;
        let s = f.stage.parent().unwrap().to_path_buf();
        fs::write(s.join(".stage.toml.swp"), "swap").unwrap();
        fs::write(s.join("stage.toml~"), STAGE).unwrap();
        fs::write(s.join("4913"), "").unwrap();
        fs::remove_file(s.join("4913")).unwrap();
        fs::write(s.join("stage.toml.tmp"), STAGE).unwrap();
        fs::remove_file(s.join("stage.toml.tmp")).unwrap();
        f.settle().await;
        f.settle().await;
        assert_eq!(f.generation(), 1);
        assert!(
            f.handle.status().last_attempt_at.is_none(),
            "no reload attempted"
        );
        // The watcher was live all along: a real edit still reloads exactly once.
        fs::write(&f.stage, format!("{STAGE}api_name = \"x\"\n")).unwrap();
        f.wait_generation(2).await;
        f.settle().await;
        assert_eq!(f.generation(), 2);
        f.stop().await;
    }

    #[tokio::test]
    async fn sighup_reloads() {
        let _guard = SIGNAL_LOCK.write().await;
        // Keeps a SIGHUP handler installed for the whole process even if the watcher's failed,
        // so the signal can never take the default action (terminating the test binary).
        let _own = signal(SignalKind::hangup()).unwrap();
        let f = Fixture::start_unguarded().await;
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        f.wait_generation(2).await;
        f.stop().await;
    }

    #[tokio::test]
    async fn shutdown_ends_the_task() {
        let _guard = SIGNAL_LOCK.read().await;
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("gateway.toml"), GATEWAY).unwrap();
        let (handle, _) = ConfigHandle::load(dir.path()).unwrap();
        let watcher = ConfigWatcher::new(handle);
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move { watcher.start(rx).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).unwrap();
        tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn unwatchable_directory_still_starts_and_stops() {
        let _guard = SIGNAL_LOCK.read().await;
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("gateway.toml"), GATEWAY).unwrap();
        let (handle, _) = ConfigHandle::load(dir.path()).unwrap();
        // The watch cannot be created once the directory is gone: the error is logged and the
        // service keeps running (for SIGHUP) until shutdown.
        dir.close().unwrap();
        let watcher = ConfigWatcher::new(handle);
        let (tx, rx) = watch::channel(false);
        let (ready_tx, mut ready_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            watcher
                .start_with_ready_notifier(rx, ServiceReadyNotifier::new(ready_tx))
                .await;
        });
        tokio::time::timeout(DEADLINE, ready_rx.wait_for(|r| *r))
            .await
            .unwrap()
            .unwrap();
        assert!(!task.is_finished());
        tx.send(true).unwrap();
        tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    }

    #[test]
    fn relevance_filter() {
        use notify::event::{AccessKind, CreateKind, ModifyKind, RenameMode};
        let root = Path::new("/cfg");
        let ev = |kind, paths: &[&str]| {
            let mut e = Event::new(kind);
            for p in paths {
                e = e.add_path(PathBuf::from(p));
            }
            e
        };
        let data = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert!(is_relevant(root, &ev(data, &["/cfg/s/stage.toml"])));
        assert!(is_relevant(root, &ev(data, &["/cfg/gateway.toml"])));
        assert!(!is_relevant(
            root,
            &ev(EventKind::Access(AccessKind::Any), &["/cfg/s/stage.toml"])
        ));
        for ignored in [
            "/cfg/s/.stage.toml.swp",
            "/cfg/s/stage.toml~",
            "/cfg/s/4913",
            "/cfg/s/stage.toml.tmp",
            "/cfg/.git/index",
        ] {
            assert!(!is_relevant(root, &ev(data, &[ignored])), "{ignored}");
        }
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert!(is_relevant(
            root,
            &ev(both, &["/cfg/s/stage.toml.tmp", "/cfg/s/stage.toml"])
        ));
        assert!(is_relevant(
            root,
            &ev(EventKind::Create(CreateKind::Folder), &["/cfg/new"])
        ));
        assert!(is_relevant(root, &ev(EventKind::Other, &[])));
        // A root that itself lives under a hidden folder is not ignored.
        assert!(is_relevant(
            Path::new("/home/u/.config/gw"),
            &ev(data, &["/home/u/.config/gw/s/stage.toml"])
        ));
    }
}
