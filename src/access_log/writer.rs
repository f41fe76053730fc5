//! The access log writer: lines go through a bounded queue to a thread of their own, which
//! writes them in batches, so a slow disk or a blocked stdout never holds up a request.
//!
//! When the queue is full a line is dropped and counted (`cachegate_access_log_dropped_total`)
//! rather than waited for. A file is opened for append and reopened after [`reopen`] (SIGUSR1),
//! which is how logrotate's rename-then-signal rotation hands the gateway a fresh file. A
//! configuration reload that changes `access_path` starts a writer for the new destination; the
//! old one writes what it still holds and ends.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::metrics::METRICS;
use crate::runtime::access_log::LogDestination;

/// Lines the queue holds before new ones are dropped: several seconds of a busy gateway's
/// lines, a few MiB at most.
const QUEUE_LINES: usize = 16_384;

/// Bytes gathered into one write.
const BATCH_BYTES: usize = 64 * 1024;

/// Incremented by [`reopen`]; each writer reopens its file when it sees a new value.
static REOPEN: AtomicU64 = AtomicU64::new(0);

/// Makes every access log writer reopen its file before its next write (what SIGUSR1 does).
pub fn reopen() {
    REOPEN.fetch_add(1, Ordering::AcqRel);
}

/// A gateway's access log: the writer of the destination its configuration names.
#[derive(Default)]
pub struct AccessLog {
    current: ArcSwapOption<Sink>,
    /// Held while a writer for a new destination is started, so only one is.
    switching: Mutex<()>,
}

impl AccessLog {
    /// Queues `line` for `destination`, starting its writer on first use or when the
    /// destination changed.
    pub fn write(&self, destination: &LogDestination, line: String) {
        if let Some(sink) = self
            .current
            .load()
            .as_ref()
            .filter(|s| s.destination == *destination)
        {
            sink.send(line);
            return;
        }
        self.switch(destination).send(line);
    }

    fn switch(&self, destination: &LogDestination) -> Arc<Sink> {
        let _guard = match self.switching.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(sink) = self
            .current
            .load_full()
            .filter(|s| s.destination == *destination)
        {
            return sink;
        }
        let sink = Arc::new(Sink::start(destination.clone()));
        self.current.store(Some(Arc::clone(&sink)));
        sink
    }
}

/// One destination's queue; its thread ends once the sink is dropped and the queue drained.
struct Sink {
    destination: LogDestination,
    tx: SyncSender<String>,
}

impl Sink {
    fn start(destination: LogDestination) -> Self {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let to = destination.clone();
        let spawned = std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || run(Output::new(to), &rx));
        if let Err(e) = spawned {
            // The receiver is gone with the closure: every line is counted as dropped.
            tracing::error!(error = %e, "Cannot start the access log writer; lines are dropped.");
        }
        Self { destination, tx }
    }

    fn send(&self, line: String) {
        if self.tx.try_send(line).is_err() {
            METRICS.access_log_dropped.inc();
        }
    }
}

/// How long the writer rests once it has written everything queued. While it rests, queueing a
/// line costs a request no wake-up of the writer (a system call and a context switch each): on
/// a busy gateway it wakes at most this often, and a line reaches the log this much later at most.
const REST: Duration = Duration::from_millis(10);

/// The writer thread: waits for a line, gathers what else is queued, writes it at once, and
/// rests when the queue is empty.
fn run(mut out: Output, rx: &Receiver<String>) {
    let mut buf = Vec::with_capacity(BATCH_BYTES);
    while let Ok(line) = rx.recv() {
        buf.clear();
        buf.extend_from_slice(line.as_bytes());
        let mut lines = 1u64;
        let drained = loop {
            if buf.len() >= BATCH_BYTES {
                break false;
            }
            match rx.try_recv() {
                Ok(l) => {
                    buf.extend_from_slice(l.as_bytes());
                    lines += 1;
                }
                Err(_) => break true,
            }
        };
        out.write(&buf, lines);
        if drained {
            std::thread::sleep(REST);
        }
    }
}

/// Where a writer writes, and whether it is failing (so a failure is logged once, not per line).
struct Output {
    destination: LogDestination,
    file: Option<File>,
    seen: u64,
    failing: bool,
}

impl Output {
    fn new(destination: LogDestination) -> Self {
        Self {
            destination,
            file: None,
            seen: REOPEN.load(Ordering::Acquire),
            failing: false,
        }
    }

    fn write(&mut self, buf: &[u8], lines: u64) {
        let generation = REOPEN.load(Ordering::Acquire);
        if generation != self.seen {
            self.seen = generation;
            self.file = None;
        }
        let result = match &self.destination {
            LogDestination::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf).and_then(|()| out.flush())
            }
            LogDestination::File(path) => {
                if self.file.is_none() {
                    match OpenOptions::new().create(true).append(true).open(path) {
                        Ok(f) => self.file = Some(f),
                        Err(e) => {
                            self.failed(lines, &e);
                            return;
                        }
                    }
                }
                match self.file.as_mut() {
                    Some(f) => f.write_all(buf),
                    None => Ok(()),
                }
            }
        };
        match result {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("The access log is written again.");
            }
            Ok(()) => {}
            Err(e) => {
                // Opened again on the next write: the file may have been removed or its disk
                // may have room again.
                self.file = None;
                self.failed(lines, &e);
            }
        }
    }

    fn failed(&mut self, lines: u64, e: &std::io::Error) {
        METRICS.access_log_dropped.inc_by(lines);
        if !self.failing {
            self.failing = true;
            let to = match &self.destination {
                LogDestination::Stdout => "stdout".to_owned(),
                LogDestination::File(p) => p.display().to_string(),
            };
            tracing::error!(
                error = %e,
                to = %to,
                "Cannot write the access log; lines are dropped until it can."
            );
        }
    }
}
