//! The `cachegate` command: run the gateway, validate a policies directory offline, or import an
//! Apigee bundle as a native stage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cachegate::diag::Diagnostics;
use cachegate::reload::ConfigHandle;
use cachegate::server::{self, ServerOptions};

/// mimalloc instead of the system allocator: a request allocates and frees dozens of small
/// buffers (headers, keys, labels) across threads, and glibc's malloc cost 30–40 % of pass-through
/// throughput in `make bench` (free-list consolidation under contention).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// cachegate — a policy-driven caching API gateway.
///
/// Policies live in a directory (default `policies/`): `gateway.toml` for listeners, then one
/// folder per API stage with a `stage.toml` and Apigee-style policy files (`*.xml` or `*.toml`).
#[derive(Parser)]
#[command(name = "cachegate", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  cachegate run --config policies\n  cachegate validate policies\n  cachegate import policies/weather --stage weather --out native/weather\n  cachegate schema --out schemas"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway: proxy on [server] listen, admin (/healthz, /metrics, /config) on [admin] listen.
    #[command(long_about = RUN_HELP)]
    Run {
        /// Directory holding gateway.toml and the stage folders.
        #[arg(long, short, default_value = "policies")]
        config: PathBuf,
        /// Take the listening sockets over from the running gateway (through `[server]
        /// upgrade_socket`) instead of binding them; then send the old process SIGQUIT. No
        /// connection is refused during the hand-over.
        #[arg(long)]
        upgrade: bool,
        /// The application log's format on stderr: `text` (colours only on a terminal) or
        /// `json` (one object per line, for log collectors).
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Check a policies directory without starting anything; exits non-zero on any error.
    ///
    /// Every problem is printed as `file:line:col: error: message`, with a hint on the next line.
    Validate {
        /// Directory holding gateway.toml and the stage folders (default `policies`).
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The same directory, spelt as `run` spells it.
        #[arg(long, short, value_name = "DIR", conflicts_with = "dir")]
        config: Option<PathBuf>,
    },
    /// Write an Apigee API proxy bundle as the equivalent native stage: stage.toml and one
    /// policy file per policy.
    ///
    /// BUNDLE is the apiproxy/ folder or the stage folder holding it (a stage.toml beside the
    /// bundle is carried over). The import refuses what a stage.toml cannot say (several
    /// TargetEndpoints, RouteRules that choose, fault rules, a PostClientFlow), naming it; the
    /// bundle itself runs on cachegate as it is. Nothing is written unless the imported stage
    /// compiles to exactly the bundle's.
    Import {
        /// The bundle: an apiproxy/ folder, or the folder holding one.
        bundle: PathBuf,
        /// The name of the stage (the name of its folder when it is loaded).
        #[arg(long)]
        stage: String,
        /// The stage folder to write (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// Replace the stage in a folder that is not empty.
        #[arg(long)]
        force: bool,
    },
    /// Write the JSON Schemas of gateway.toml and stage.toml (for editors and CI).
    Schema {
        /// Directory to write the schemas into.
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
        /// Only check that the files in --out are up to date; exit 1 if not.
        #[arg(long)]
        check: bool,
    },
}

/// `cachegate run --help`: what an operator needs besides the flags.
const RUN_HELP: &str = "Start the gateway: the proxy on [server] listen, the admin API (/healthz, \
/metrics, /config, POST /reload) on [admin] listen, both from gateway.toml in --config.

Signals:
  SIGHUP    reload the configuration now (it is also reloaded when a file in --config changes);
            a configuration with errors is refused and the running one keeps serving
  SIGTERM   graceful shutdown: stop accepting, finish requests in flight, exit as soon as
            none is left ([server] grace_period_secs at most)
  SIGINT    fast shutdown
  SIGQUIT   graceful shutdown after handing the listening sockets to a new process started
            with --upgrade (zero-downtime binary upgrade through [server] upgrade_socket)

Environment:
  RUST_LOG  log filter (default info), e.g. RUST_LOG=cachegate=debug; Pingora's own debug
            records, which print whole headers, stay at info unless RUST_LOG names pingora
  Secrets are never written in the policy files: they name environment variables instead —
  [admin] token_env (the admin API's bearer token), [[cache.invalidation.grants]] token_env
  (client invalidation tokens), [redis] encryption_keys_env (keys for encrypted entries). An unset
  variable disables what it guards, with a warning.

Exit status: 0 after a clean shutdown; non-zero when the configuration is invalid at start.";

/// Pingora's own records below `info` print whole request and response headers —
/// `Authorization`, `Cookie`, `Set-Cookie` — so when `RUST_LOG`'s default level is `debug` or
/// `trace` they are held at `info`, unless it names a `pingora` target itself (an operator
/// debugging Pingora, knowingly). A quieter `RUST_LOG` is left alone.
const PINGORA_CAPS: [&str; 3] = [
    "pingora_core=info",
    "pingora_proxy=info",
    "pingora_cache=info",
];

fn init_logging(json: bool) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let spec = std::env::var("RUST_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let directives: Vec<&str> = spec.split(',').map(str::trim).collect();
    // A bare level is the default for every target; `target=level` names one.
    let verbose = directives
        .iter()
        .any(|d| matches!(*d, "debug" | "trace" | "4" | "5"));
    let names_pingora = directives.iter().any(|d| {
        d.split_once('=')
            .is_some_and(|(target, _)| target.starts_with("pingora"))
    });
    if verbose && !names_pingora {
        for cap in PINGORA_CAPS {
            if let Ok(directive) = cap.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    // `init` also routes Pingora's `log` records into tracing. The application log goes to
    // stderr, so stdout carries nothing but access log lines (`[log] access_path = "stdout"`).
    // Colour codes only for a person at a terminal: a file or a collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.with_target(false).init();
    }
}

fn print_diagnostics(diags: &Diagnostics) {
    for d in diags.iter() {
        eprintln!("{d}");
    }
}

fn summary(diags: &Diagnostics) -> String {
    let errors = diags.error_count();
    let warnings = diags.0.len() - errors;
    format!("{errors} error(s), {warnings} warning(s)")
}

fn run(config: &Path, upgrade: bool) -> anyhow::Result<ExitCode> {
    let (handle, warnings) = match ConfigHandle::load(config) {
        Ok(v) => v,
        Err(diags) => {
            print_diagnostics(&diags);
            eprintln!(
                "cachegate: {} is not valid ({}); not starting",
                config.display(),
                summary(&diags)
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    print_diagnostics(&warnings);
    let snap = handle.snapshot();
    let g = &snap.config.gateway;
    tracing::info!(
        proxy = %g.listen,
        admin = %g.admin_listen,
        stages = snap.config.stages.len(),
        "cachegate starting."
    );
    // Pingora retries a busy address for a while and then panics inside its listener task,
    // leaving a process whose admin API still says it is healthy. Binding both addresses once
    // first turns that into one clear line and a failed start, before anything is up. (An
    // upgrade takes the sockets over instead of binding them.)
    if !upgrade {
        for (addr, setting) in [
            (g.listen, "[server] listen"),
            (g.admin_listen, "[admin] listen"),
        ] {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                eprintln!("cachegate: cannot listen on {addr} ({setting}): {e}; not starting");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    for s in &snap.config.stages {
        let targets: Vec<&str> = s.targets.iter().map(|t| t.target.url.as_str()).collect();
        tracing::info!(stage = %s.name, base_path = %s.base_path, targets = %targets.join(", "), "Stage loaded.");
    }
    drop(snap);
    let options = ServerOptions {
        upgrade,
        exit_when_drained: true,
        ..ServerOptions::default()
    };
    let server = server::build(handle, &options);
    server::run(server, Box::new(pingora::server::UnixShutdownSignalWatch));
    Ok(ExitCode::SUCCESS)
}

fn validate(dir: &Path) -> ExitCode {
    let outcome = cachegate::config::load(dir);
    print_diagnostics(&outcome.diagnostics);
    if outcome.config.is_some() {
        println!(
            "{}: valid ({})",
            dir.display(),
            summary(&outcome.diagnostics)
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "{}: invalid ({})",
            dir.display(),
            summary(&outcome.diagnostics)
        );
        ExitCode::FAILURE
    }
}

fn import(bundle: &Path, stage: &str, out: &Path, force: bool) -> ExitCode {
    match cachegate::config::import::import_bundle(bundle, stage, out, force) {
        Ok(done) => {
            print_diagnostics(&done.warnings);
            for p in &done.removed {
                println!("removed {}", p.display());
            }
            for p in &done.written {
                println!("wrote {}", p.display());
            }
            for (file, why) in &done.kept_as_xml {
                println!("kept {file} as the bundle's XML: {why}");
            }
            for n in &done.notes {
                eprintln!("note: {n}");
            }
            println!(
                "{}: imported stage `{stage}` from {} ({})",
                out.display(),
                bundle.display(),
                summary(&done.warnings)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let Some(d) = e.diagnostics() {
                print_diagnostics(d);
            }
            eprintln!("cachegate import: {e}");
            ExitCode::FAILURE
        }
    }
}

fn schema(out: &Path, check: bool) -> anyhow::Result<ExitCode> {
    let mut stale = false;
    for (name, text) in cachegate::config::schema::generate() {
        let path = out.join(name);
        if check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != text {
                eprintln!("{} is stale; run `make schemas`", path.display());
                stale = true;
            }
        } else {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(if stale {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            upgrade,
            log_format,
        } => {
            init_logging(log_format == "json");
            run(&config, upgrade)
        }
        Command::Validate { dir, config } => {
            let dir = config.or(dir).unwrap_or_else(|| PathBuf::from("policies"));
            Ok(validate(&dir))
        }
        Command::Import {
            bundle,
            stage,
            out,
            force,
        } => Ok(import(&bundle, &stage, &out, force)),
        Command::Schema { out, check } => schema(&out, check),
    }
}
