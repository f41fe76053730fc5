//! SIGUSR1 reopens the access log file: logrotate renames the file, then signals the gateway
//! (`postrotate kill -USR1`), and the next lines go to a new file at the configured path.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

/// A background service that calls [`super::writer::reopen`] on every SIGUSR1 until shutdown.
pub struct ReopenOnSignal;

#[async_trait]
impl BackgroundService for ReopenOnSignal {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "Cannot install the SIGUSR1 handler; the access log file is not reopened on rotation."
                );
                return;
            }
        };
        loop {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                got = usr1.recv() => {
                    if got.is_none() {
                        break;
                    }
                    tracing::info!("SIGUSR1 received; reopening the access log.");
                    super::writer::reopen();
                }
            }
        }
    }
}
