//! The `cachegate` binary: help, validate's exit codes and output.

use std::process::Command;

use crate::harness::{origin, repo, PolicyDir};

fn cachegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cachegate"))
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
        stderr.contains("stage.toml:1:10: error: target `ftp://nowhere` is not an http:// URL"),
        "{stderr}"
    );
    assert!(stderr.contains("not starting"), "{stderr}");
}

/// SEC-23: secrets never reach the logs. The real binary runs at `debug` verbosity while requests
/// carry canary credentials — client Authorization and Cookie, a granted and a wrong invalidation
/// token, the admin token and a wrong one — and nothing it prints contains any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    use crate::harness::{client, free_port, wait_listening};
    use std::time::Duration;

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
    let (proxy, admin) = (free_port(), free_port());
    d.write(
        "gateway.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{proxy}\"\nthreads = 1\ngrace_period_secs = 0\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken_env = \"CANARY_ADMIN_TOKEN\"\n"
        ),
    );
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n[[cache.invalidation.grants]]\nname = \"ops\"\ntoken_env = \"CANARY_GRANT_TOKEN\"\nresources = [\"GET/items/*\"]\n",
    );
    let mut child = cachegate()
        .args(["run", "--config"])
        .arg(d.path())
        .env("RUST_LOG", "debug")
        .env("CANARY_ADMIN_TOKEN", ADMIN)
        .env("CANARY_GRANT_TOKEN", GRANT)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cachegate");
    let p = |path: &str| format!("http://127.0.0.1:{proxy}{path}");
    let a = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    wait_listening(
        format!("127.0.0.1:{proxy}").parse().expect("addr"),
        Duration::from_secs(20),
    );
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
    child.kill().expect("stop cachegate");
    let out = child.wait_with_output().expect("output");
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
