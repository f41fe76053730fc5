use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn masks_listed_parameters_whatever_their_case_or_encoding() {
    let n = names(&["token", "api_key"]);
    assert_eq!(
        mask_query("/a/b?x=1&Token=s3cr3t&api%5Fkey=k&y=2", &n),
        "/a/b?x=1&Token=***&api%5Fkey=***&y=2"
    );
    assert_eq!(mask_query("/a?TOKEN=abc", &n), "/a?TOKEN=***");
    // Nothing to mask: the same string, not a copy.
    assert!(matches!(mask_query("/a?x=1", &n), Cow::Borrowed("/a?x=1")));
    assert!(matches!(mask_query("/a", &n), Cow::Borrowed("/a")));
    // A name alone has no value; a name that only contains a listed one is another name.
    assert_eq!(mask_query("/a?token&tokens=1", &n), "/a?token&tokens=1");
    // Repeated parameters are all masked; an empty list masks nothing.
    assert_eq!(
        mask_query("/a?token=1&token=2", &n),
        "/a?token=***&token=***"
    );
    assert_eq!(mask_query("/a?token=1", &[]), "/a?token=1");
}

#[test]
fn decodes_names_before_comparing() {
    assert_eq!(decoded_lower("API%5FKey"), "api_key");
    assert_eq!(decoded_lower("a+b"), "a b");
    assert_eq!(decoded_lower("bad%zz%"), "bad%zz%");
}

#[test]
fn times_are_rfc3339_utc_with_milliseconds() {
    let t = UNIX_EPOCH + Duration::from_millis(1_796_693_946_123);
    assert_eq!(rfc3339(t), "2026-12-08T01:39:06.123Z");
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(millis(Duration::from_micros(1234)), 1.234);
}

fn entry<'a>() -> Entry<'a> {
    Entry {
        time: rfc3339(UNIX_EPOCH + Duration::from_millis(1_796_693_946_123)),
        request_id: "3f2a",
        client: "127.0.0.1:50000",
        method: "GET",
        path: "/prod/items/1?token=***",
        protocol: "HTTP/1.1",
        status: 200,
        bytes: 1024,
        duration_ms: 1.5,
        upstream_addr: Some("127.0.0.1:9000"),
        upstream_status: Some(200),
        upstream_time_ms: Some(0.75),
        stage: Some("prod"),
        resource: Some("/items/{id}"),
        flow: None,
        cache: Some("MISS"),
        cache_status: Some("cachegate; fwd=uri-miss; stored"),
        tier: None,
        key: Some("0123456789abcdef"),
        user_agent: Some("curl/8 \"x\""),
    }
}

#[test]
fn json_lines_have_stable_field_names_and_nulls() {
    let line = entry().json();
    assert!(line.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "time",
        "request_id",
        "client",
        "method",
        "path",
        "protocol",
        "status",
        "bytes",
        "duration_ms",
        "upstream_addr",
        "upstream_status",
        "upstream_time_ms",
        "stage",
        "resource",
        "flow",
        "cache",
        "cache_status",
        "tier",
        "key",
        "user_agent",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(v["status"], 200);
    assert_eq!(v["upstream_time_ms"], 0.75);
    assert!(v["flow"].is_null() && v["tier"].is_null());
    assert_eq!(v["time"], "2026-12-08T01:39:06.123Z");
    // Field order is the struct's: `time` first.
    assert!(line.starts_with("{\"time\":"));
}

#[test]
fn text_lines_have_the_documented_shape() {
    let line = entry().text();
    assert_eq!(
        line,
        "127.0.0.1:50000 - - [2026-12-08T01:39:06.123Z] \"GET /prod/items/1?token=*** HTTP/1.1\" 200 1024 1.5 \
         rid=3f2a stage=prod resource=\"/items/{id}\" flow=\"-\" cache=MISS tier=- key=0123456789abcdef \
         upstream=127.0.0.1:9000 upstream_status=200 upstream_ms=0.75 \
         cache_status=\"cachegate; fwd=uri-miss; stored\" ua=\"curl/8 \\x22x\\x22\"\n"
    );
    let mut e = entry();
    e.upstream_addr = None;
    e.upstream_status = None;
    e.upstream_time_ms = None;
    e.path = "/a\nb";
    let line = e.text();
    assert!(line.contains("upstream=- upstream_status=- upstream_ms=-"));
    assert!(line.contains("\"GET /a\\x0Ab HTTP/1.1\""));
    assert_eq!(line.matches('\n').count(), 1);
}

#[test]
fn a_new_destination_gets_its_own_writer_and_reopen_moves_to_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.log");
    let log = AccessLog::default();
    let to = crate::runtime::access_log::LogDestination::File(first.clone());
    log.write(&to, "one\n".to_owned());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let wait = |p: &std::path::Path, want: &str| {
        let deadline = SystemTime::now() + Duration::from_secs(5);
        while read(p) != want {
            assert!(
                SystemTime::now() < deadline,
                "{} holds {:?}",
                p.display(),
                read(p)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait(&first, "one\n");
    let rotated = dir.path().join("a.log.1");
    std::fs::rename(&first, &rotated).unwrap();
    reopen();
    log.write(&to, "two\n".to_owned());
    wait(&first, "two\n");
    assert_eq!(read(&rotated), "one\n");
    let second = dir.path().join("b.log");
    let to_b = crate::runtime::access_log::LogDestination::File(second.clone());
    log.write(&to_b, "three\n".to_owned());
    wait(&second, "three\n");
}

#[test]
fn lines_that_cannot_be_written_are_counted_as_dropped() {
    let dropped = || crate::metrics::METRICS.access_log_dropped.get();
    let before = dropped();
    let log = AccessLog::default();
    let to = crate::runtime::access_log::LogDestination::File(
        "/nonexistent-cachegate-dir/access.log".into(),
    );
    log.write(&to, "lost\n".to_owned());
    let deadline = SystemTime::now() + Duration::from_secs(5);
    while dropped() <= before {
        assert!(
            SystemTime::now() < deadline,
            "the lost line was not counted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
