//! The LoadBalancer's algorithms and health rules, without a network.

use super::*;

fn server(name: &str, weight: u32, fallback: bool) -> Server {
    let port = 9000 + name.len() as u16;
    Server {
        name: name.to_owned(),
        host: Host {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            host_header: format!("127.0.0.1:{port}"),
            tls: None,
        },
        url: format!("http://127.0.0.1:{port}"),
        weight,
        fallback,
        enabled: true,
    }
}

fn balancer(algorithm: Algorithm, servers: Vec<Server>, max_failures: u32) -> Arc<Balancer> {
    Arc::new(Balancer::new(
        algorithm,
        servers,
        max_failures,
        true,
        vec![503],
        Duration::from_secs(300),
        None,
    ))
}

/// The names of `n` servers picked one after the other (each lease released at once).
fn picks(b: &Arc<Balancer>, n: usize, now: Instant) -> Vec<String> {
    (0..n)
        .map(|_| {
            b.pick(0, now)
                .map_or("-".to_owned(), |l| l.server().name.clone())
        })
        .collect()
}

#[test]
fn round_robin_takes_the_servers_in_the_order_listed() {
    let b = balancer(
        Algorithm::RoundRobin,
        vec![
            server("a", 1, false),
            server("bb", 1, false),
            server("ccc", 1, false),
        ],
        0,
    );
    assert_eq!(
        picks(&b, 6, Instant::now()),
        ["a", "bb", "ccc", "a", "bb", "ccc"]
    );
}

#[test]
fn weighted_keeps_the_ratio_over_every_cycle() {
    let b = balancer(
        Algorithm::Weighted,
        vec![server("a", 1, false), server("bb", 2, false)],
        0,
    );
    let got = picks(&b, 300, Instant::now());
    assert_eq!(got.iter().filter(|n| *n == "a").count(), 100);
    assert_eq!(got.iter().filter(|n| *n == "bb").count(), 200);
    for cycle in got.chunks(3) {
        assert_eq!(cycle.iter().filter(|n| *n == "bb").count(), 2, "{cycle:?}");
    }
}

#[test]
fn least_connections_prefers_the_server_with_fewest_requests_in_flight() {
    let b = balancer(
        Algorithm::LeastConnections,
        vec![server("a", 1, false), server("bb", 1, false)],
        0,
    );
    let now = Instant::now();
    let first = b.pick(0, now).unwrap();
    let second = b.pick(0, now).unwrap();
    assert_ne!(first.index(), second.index(), "the idle one is taken");
    let held = first.index();
    drop(second);
    // One request still in flight on `held`: the other server gets the next three.
    for _ in 0..3 {
        let l = b.pick(0, now).unwrap();
        assert_ne!(l.index(), held);
    }
    assert_eq!(b.in_flight(held), 1);
    drop(first);
    assert_eq!(b.in_flight(held), 0);
}

#[test]
fn tried_servers_are_left_out_of_a_retry() {
    let b = balancer(
        Algorithm::RoundRobin,
        vec![server("a", 1, false), server("bb", 1, false)],
        0,
    );
    let now = Instant::now();
    let first = b.pick(0, now).unwrap();
    let tried = 1u64 << first.index();
    let retry = b.pick(tried, now).unwrap();
    assert_ne!(retry.index(), first.index());
    assert!(b.pick(tried | 1 << retry.index(), now).is_none());
    assert!(!b.has_candidate(0b11, now));
}

#[test]
fn max_failures_consecutive_failures_take_a_server_out_and_a_success_resets_the_count() {
    let b = balancer(
        Algorithm::RoundRobin,
        vec![server("a", 1, false), server("bb", 1, false)],
        3,
    );
    let now = Instant::now();
    assert!(!b.failed(0, now));
    assert!(!b.failed(0, now));
    b.succeeded(0);
    assert!(!b.failed(0, now));
    assert!(!b.failed(0, now));
    assert!(b.failed(0, now), "the third in a row");
    assert!(!b.in_rotation(0));
    assert_eq!(picks(&b, 4, now), ["bb", "bb", "bb", "bb"]);
}

#[test]
fn max_failures_zero_never_takes_a_server_out() {
    let b = balancer(
        Algorithm::RoundRobin,
        vec![server("a", 1, false), server("bb", 1, false)],
        0,
    );
    let now = Instant::now();
    for _ in 0..100 {
        assert!(!b.failed(0, now));
    }
    assert!(b.in_rotation(0));
}

#[test]
fn the_fallback_serves_only_while_every_other_server_is_out() {
    let b = balancer(
        Algorithm::RoundRobin,
        vec![
            server("a", 1, false),
            server("bb", 1, false),
            server("fb", 1, true),
        ],
        1,
    );
    let now = Instant::now();
    assert_eq!(picks(&b, 4, now), ["a", "bb", "a", "bb"]);
    b.failed(0, now);
    assert_eq!(picks(&b, 2, now), ["bb", "bb"]);
    // Tried but still in rotation: no fallback for this request.
    assert!(b.pick(1 << 1, now).is_none());
    b.failed(1, now);
    assert_eq!(picks(&b, 3, now), ["fb", "fb", "fb"]);
    // The fallback out too: nothing (Apigee answers 503).
    b.failed(2, now);
    assert!(b.pick(0, now).is_none());
    b.succeeded(1);
    assert_eq!(picks(&b, 2, now), ["bb", "bb"]);
}

#[test]
fn a_server_out_of_rotation_gets_one_trial_per_period_and_a_response_brings_it_back() {
    let b = balancer(
        Algorithm::RoundRobin,
        vec![server("a", 1, false), server("bb", 1, false)],
        1,
    );
    let t0 = Instant::now();
    b.failed(0, t0);
    let before = t0 + Duration::from_secs(299);
    assert_eq!(picks(&b, 2, before), ["bb", "bb"]);
    let due = t0 + Duration::from_secs(301);
    assert!(b.has_candidate(1 << 1, due), "a trial is due");
    // One trial, then the others again until it answers.
    assert_eq!(picks(&b, 3, due), ["a", "bb", "bb"]);
    // The trial failed: another period.
    b.failed(0, due);
    assert_eq!(picks(&b, 1, due + Duration::from_secs(200)), ["bb"]);
    let again = due + Duration::from_secs(301);
    let trial = b.pick(0, again).unwrap();
    assert_eq!(trial.server().name, "a");
    b.succeeded(trial.index());
    drop(trial);
    assert!(b.in_rotation(0));
    let mut both = picks(&b, 2, again);
    both.sort();
    assert_eq!(both, ["a", "bb"], "back in the round");
}

#[test]
fn a_disabled_server_is_never_chosen() {
    let mut off = server("bb", 1, false);
    off.enabled = false;
    let b = balancer(Algorithm::RoundRobin, vec![server("a", 1, false), off], 0);
    assert_eq!(picks(&b, 3, Instant::now()), ["a", "a", "a"]);
}

#[test]
fn with_a_health_monitor_only_its_polls_bring_a_server_back() {
    let b = Arc::new(Balancer::new(
        Algorithm::RoundRobin,
        vec![server("a", 1, false), server("bb", 1, false)],
        1,
        true,
        Vec::new(),
        Duration::from_secs(1),
        Some(Monitor {
            interval: Duration::from_secs(5),
            check: Check::Tcp {
                connect_timeout: Duration::from_secs(1),
                port: None,
            },
        }),
    ));
    let t0 = Instant::now();
    b.failed(0, t0);
    assert_eq!(
        picks(&b, 2, t0 + Duration::from_secs(3600)),
        ["bb", "bb"],
        "no trial requests"
    );
    b.succeeded(0);
    assert!(b.in_rotation(0));
}
