//! `cachegate-origin`: command-line entry point of the example upstream server.

use std::process::ExitCode;
use std::time::Duration;

use cachegate_origin::{Origin, OriginConfig, DEFAULT_BODY_SIZE};
use clap::Parser;

/// The example upstream for cachegate: a fast, deterministic JSON API with
/// ETags, status codes, Set-Cookie, delays and big bodies on demand.
#[derive(Debug, Parser)]
#[command(name = "cachegate-origin", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// Delay in milliseconds applied to every counted request.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Approximate body size in bytes of `GET /items/{id}` responses.
    #[arg(long, default_value_t = DEFAULT_BODY_SIZE)]
    body_size: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = OriginConfig {
        delay: Duration::from_millis(args.delay_ms),
        body_size: args.body_size,
    };
    // Install the signal handlers before announcing readiness, so a signal
    // sent right after the "listening" line is never fatal.
    let shutdown = match ShutdownSignal::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cachegate-origin: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let origin = match Origin::start(&args.listen, config).await {
        Ok(origin) => origin,
        Err(e) => {
            eprintln!("cachegate-origin: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "cachegate-origin listening on http://{} (delay {} ms)",
        origin.addr(),
        args.delay_ms
    );
    shutdown.wait().await;
    origin.shutdown();
    ExitCode::SUCCESS
}

/// Ctrl-C (SIGINT) and, on Unix, SIGTERM.
struct ShutdownSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(ShutdownSignal {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignal {})
        }
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
