//! The metrics an operator's dashboard reads exist from the start, with zero series, and the
//! admin listener answers `HEAD /metrics`.

use crate::harness::{client, origin, repo, PolicyDir, TestGateway};

/// Every `cachegate_*` metric name the shipped Grafana dashboard queries, as exported families
/// (a histogram's `_bucket`/`_sum`/`_count` series belong to their family).
fn dashboard_families() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("examples/grafana/dashboard.json"))
        .expect("the dashboard");
    let mut names: Vec<String> = text
        .match_indices("cachegate_")
        .map(|(i, _)| {
            text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect::<String>()
        })
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .map_or(n.clone(), str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn every_dashboard_metric_exists_before_the_first_request() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "freshmetrics",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    );
    let gw = TestGateway::start(d);
    // No request to the stage has been made. The registry is shared by every test of this
    // process, so a series labelled with this test's stage is what proves the priming.
    let text = gw.metrics().await;
    let families = dashboard_families();
    assert!(families.len() >= 15, "{families:?}");
    for family in &families {
        let series: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(family.as_str())
                    .is_some_and(|rest| rest.starts_with(['{', ' ', '_']))
            })
            .collect();
        assert!(!series.is_empty(), "no series of {family}");
        let staged = text.contains(&format!("# TYPE {family} ")) && {
            let has_stage_label = series.iter().any(|l| l.contains("stage=\""));
            !has_stage_label || series.iter().any(|l| l.contains("stage=\"freshmetrics\""))
        };
        assert!(staged, "{family} has no series for the new stage");
    }
    assert!(text.contains("cachegate_build_info{pingora=\"0.9.1\",version=\""));
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(&format!("\n{process} ")), "no {process}");
    }
}

#[tokio::test]
async fn head_metrics_answers_like_get_without_a_body() {
    let o = origin();
    let gw = TestGateway::start(PolicyDir::new(&o));
    let resp = client()
        .head(gw.admin("/metrics"))
        .send()
        .await
        .expect("HEAD /metrics");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let len: usize = resp.headers()["content-length"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    assert!(len > 1_000, "the exposition's length, {len}");
    assert!(resp.bytes().await.expect("body").is_empty());
    let resp = client()
        .post(gw.admin("/metrics"))
        .send()
        .await
        .expect("POST /metrics");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
}
