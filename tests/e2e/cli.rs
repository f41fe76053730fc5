//! The `cachegate` binary: help, validate's exit codes and output.

use std::process::Command;

use crate::harness::{origin, repo, PolicyDir};

fn cachegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cachegate"))
}

/// A running `cachegate run`, killed when dropped (a failed assertion must not leave it running).
struct Running(Option<std::process::Child>);

impl Running {
    /// Stops the process and returns what it printed.
    fn stop(mut self) -> std::process::Output {
        let mut child = self.0.take().expect("running");
        child.kill().expect("stop cachegate");
        child.wait_with_output().expect("output")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `cachegate run` on `d` with `env`, its output sent to `output()`, and waits until its
/// proxy listens on `proxy`.
fn run_binary(
    d: &PolicyDir,
    proxy: u16,
    env: &[(&str, &str)],
    output: fn() -> std::process::Stdio,
) -> Running {
    let child = cachegate()
        .args(["run", "--config"])
        .arg(d.path())
        .envs(env.iter().copied())
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("start cachegate");
    let running = Running(Some(child));
    crate::harness::wait_listening(
        format!("127.0.0.1:{proxy}").parse().expect("addr"),
        std::time::Duration::from_secs(20),
    );
    running
}

#[test]
fn help_explains_the_commands() {
    let out = cachegate().arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "validate", "schema", "policies"] {
        assert!(
            text.contains(word),
            "--help does not mention {word}:\n{text}"
        );
    }
}

#[test]
fn validate_accepts_the_shipped_policies() {
    let out = cachegate()
        .arg("validate")
        .arg(repo().join("policies"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "shipped policies are invalid:\n{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (0 error(s)"));
}

#[test]
fn validate_names_file_line_and_column_of_a_misspelt_element() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n[[flows]]\nname = \"all\"\nrequest = [\"RC\"]\nresponse = [\"RC\"]\n");
    d.write(
        "prod/RC.xml",
        "<ResponseCache name=\"RC\">\n  <CacheKey><KeyFragment ref=\"request.uri\"/></CacheKey>\n  <ExcludeErrorRespons>true</ExcludeErrorRespons>\n</ResponseCache>\n",
    );
    let out = cachegate()
        .arg("validate")
        .arg(d.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:3:3: error: unknown element <ExcludeErrorRespons>",
        d.path().join("prod/RC.xml").display()
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
    assert!(
        stderr.contains("did you mean <ExcludeErrorResponse>"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("invalid (1 error(s)"));
}

#[test]
fn run_refuses_an_invalid_directory() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"ftp://nowhere\"\n");
    let out = cachegate()
        .args(["run", "--config"])
        .arg(d.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "stage.toml:1:10: error: target `ftp://nowhere` is not an http:// or https:// URL"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("not starting"), "{stderr}");
}

/// SEC-23: secrets never reach the logs. The real binary runs at `debug` verbosity while requests
/// carry canary credentials — client Authorization and Cookie, a granted and a wrong invalidation
/// token, the admin token and a wrong one — and nothing it prints contains any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    use crate::harness::client;

    const ADMIN: &str = "admin-canary-5f1e";
    const GRANT: &str = "grant-canary-9c2d";
    let canaries = [
        ADMIN,
        GRANT,
        "client-auth-canary-77aa",
        "cookie-canary-31bb",
        "wrong-grant-canary-04cc",
        "wrong-admin-canary-e8dd",
    ];
    let o = origin();
    let d = PolicyDir::new(&o);
    d.admin_settings("token_env = \"CANARY_ADMIN_TOKEN\"\n");
    let (proxy, admin) = (d.proxy_port, d.admin_port);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n[[cache.invalidation.grants]]\nname = \"ops\"\ntoken_env = \"CANARY_GRANT_TOKEN\"\nresources = [\"GET/items/*\"]\n",
    );
    let child = run_binary(
        &d,
        proxy,
        &[
            ("RUST_LOG", "debug"),
            ("CANARY_ADMIN_TOKEN", ADMIN),
            ("CANARY_GRANT_TOKEN", GRANT),
        ],
        std::process::Stdio::piped,
    );
    let p = |path: &str| format!("http://127.0.0.1:{proxy}{path}");
    let a = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    let c = client();
    let requests = [
        c.get(p("/prod/items/1"))
            .bearer_auth("client-auth-canary-77aa")
            .header("cookie", "sid=cookie-canary-31bb"),
        c.get(p("/prod/items/1")),
        c.get(p("/prod/items/1"))
            .header("cache-control", "max-age=0")
            .bearer_auth(GRANT),
        c.get(p("/prod/items/1"))
            .header("cache-control", "max-age=0")
            .bearer_auth("wrong-grant-canary-04cc"),
        c.post(a("/stages/prod/cache/flush")).bearer_auth(ADMIN),
        c.post(a("/stages/prod/cache/flush"))
            .bearer_auth("wrong-admin-canary-e8dd"),
        c.post(a("/reload")).bearer_auth(ADMIN),
        c.get(a("/config")),
    ];
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.send().await.expect("request").status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 403, 200, 200]);
    let metrics = c
        .get(a("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let out = child.stop();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The run was logged (so an empty log cannot pass), and audited.
    assert!(logs.contains("DEBUG"), "no debug output:\n{logs}");
    assert!(logs.contains("Admin reload requested"), "{logs}");
    for canary in canaries {
        assert!(!logs.contains(canary), "{canary} is in the logs:\n{logs}");
        assert!(!metrics.contains(canary), "{canary} is in the metrics");
    }
}

/// The default runtime (`work_stealing = false`: each proxy thread serves its own connections)
/// in the real binary: concurrent misses and hits over several keys all succeed, and every key
/// is then a hit. The in-process gateways of the other tests run with work stealing (see the
/// harness), so this is the test of the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_runtime_serves_misses_and_hits() {
    use crate::harness::get;

    let o = origin();
    let d = PolicyDir::new(&o);
    // The defaults: two threads, no work stealing.
    d.server_settings("threads = 2\nwork_stealing = false\n");
    let proxy = d.proxy_port;
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    );
    let child = run_binary(&d, proxy, &[], std::process::Stdio::null);
    let url = |i: usize| format!("http://127.0.0.1:{proxy}/prod/items/{}", i % 20);
    let burst: Vec<_> = (0..200).map(|i| tokio::spawn(get_status(url(i)))).collect();
    let mut statuses = Vec::new();
    for b in burst {
        statuses.push(b.await.expect("request task"));
    }
    let then: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..20 {
            v.push(get(&url(i)).await.x_cache().to_owned());
        }
        v
    };
    drop(child);
    assert!(statuses.iter().all(|s| *s == 200), "statuses: {statuses:?}");
    assert!(
        then.iter().all(|x| x == "HIT"),
        "x-cache afterwards: {then:?}"
    );

    async fn get_status(url: String) -> u16 {
        crate::harness::client()
            .get(url)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }
}

#[test]
fn validate_takes_the_directory_as_run_does() {
    for args in [
        vec!["validate", "--config"],
        vec!["validate", "-c"],
        vec!["validate"],
    ] {
        let out = cachegate()
            .args(&args)
            .arg(repo().join("policies"))
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid (0 error(s)"));
    }
    // Both spellings at once is a usage error, not a silent choice.
    let out = cachegate()
        .args(["validate", "policies", "--config", "policies"])
        .output()
        .expect("run");
    assert!(!out.status.success());
}

#[test]
fn run_help_explains_signals_environment_and_secrets() {
    let out = cachegate().args(["run", "--help"]).output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "SIGHUP",
        "SIGTERM",
        "SIGQUIT",
        "RUST_LOG",
        "token_env",
        "--upgrade",
    ] {
        assert!(
            text.contains(word),
            "run --help does not mention {word}:\n{text}"
        );
    }
}

#[test]
fn a_busy_address_fails_the_start_with_one_clear_line() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    // Something else holds the proxy's address.
    let _busy = std::net::TcpListener::bind(("127.0.0.1", d.proxy_port)).expect("bind");
    let child = cachegate()
        .args(["run", "--config"])
        .arg(d.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cachegate");
    let mut running = Running(Some(child));
    // It must exit by itself, promptly (a half-started gateway would keep running).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        let child = running.0.as_mut().expect("running");
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running on a busy address"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success(), "started on a busy address");
    let out = running
        .0
        .take()
        .expect("running")
        .wait_with_output()
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let addr = format!("127.0.0.1:{}", d.proxy_port);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} ([server] listen)")),
        "{stderr}"
    );
    // Nothing else came up: the admin listener is free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", d.admin_port)).is_ok());
}

#[test]
fn validate_warns_about_an_unset_token_variable() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.admin_settings("token_env = \"CACHEGATE_TEST_SURELY_UNSET_TOKEN\"\n");
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    let out = cachegate()
        .arg("validate")
        .arg(d.path())
        .env_remove("CACHEGATE_TEST_SURELY_UNSET_TOKEN")
        .output()
        .expect("run");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("warning: environment variable CACHEGATE_TEST_SURELY_UNSET_TOKEN is not set"),
        "{stderr}"
    );
    let out = cachegate()
        .arg("validate")
        .arg(d.path())
        .env("CACHEGATE_TEST_SURELY_UNSET_TOKEN", "t")
        .output()
        .expect("run");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("is not set"));
}

/// Starts `cachegate run` with `extra` arguments, waits until it listens, stops it, and returns
/// what it wrote to stderr (the application log).
fn application_log(extra: &[&str]) -> String {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    let child = cachegate()
        .args(["run", "--config"])
        .arg(d.path())
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cachegate");
    let running = Running(Some(child));
    crate::harness::wait_listening(
        format!("127.0.0.1:{}", d.proxy_port).parse().expect("addr"),
        std::time::Duration::from_secs(20),
    );
    String::from_utf8_lossy(&running.stop().stderr).into_owned()
}

#[test]
fn the_application_log_is_plain_text_or_json_never_colour_codes_in_a_pipe() {
    let text = application_log(&[]);
    assert!(text.contains("cachegate starting."), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe: {text:?}");
    let json = application_log(&["--log-format", "json"]);
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"cachegate starting.\"")),
        "{json}"
    );
}

#[test]
fn sigterm_exits_as_soon_as_the_requests_in_flight_are_done() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let o = origin();
    let d = PolicyDir::new(&o);
    d.server_settings("grace_period_secs = 30\n");
    d.stage("raw", "target = \"http://{{ORIGIN}}\"\n");
    let proxy = d.proxy_port;
    let mut running = run_binary(&d, proxy, &[], std::process::Stdio::null);
    // A slow request is in flight when SIGTERM arrives.
    let slow = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy)).expect("connect");
        s.write_all(
            b"GET /raw/slow?ms=1500 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while o.count("/slow") == 0 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = running.0.as_ref().expect("running").id().to_string();
    let signalled = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    // The request in flight is finished...
    let answer = slow.join().expect("client");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    // ...and the process exits right after, long before the 30 s grace period.
    let status = loop {
        let child = running.0.as_mut().expect("running");
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "still running {:?} after SIGTERM",
            signalled.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let _ = running.0.take();
}
