//! `gateway.toml`: the listeners, request limits, admin API and the optional Redis tier, compiled
//! into [`GatewaySettings`].

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use super::ctx::FileCtx;
use super::values::{env_var_name, is_name};
use crate::config::file::{FileFlowHooks, FileGateway, FileRedis};
use crate::config::units::ByteSize;
use crate::runtime::stage::{
    Environment, FlowHooks, GatewaySettings, RedisSettings, RequestLimits, Underscores,
};

fn listen_addr(cx: &mut FileCtx, s: &Spanned<String>, key: &str) -> Option<SocketAddr> {
    match s.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            cx.error(
                s,
                format!(
                    "`{key} = \"{}\"` is not an IP address and port",
                    s.get_ref()
                ),
                Some(format!("write e.g. {key} = \"127.0.0.1:8080\"")),
            );
            None
        }
    }
}

/// Validates and compiles `gateway.toml`.
pub(crate) fn gateway(cx: &mut FileCtx, g: &FileGateway) -> Option<GatewaySettings> {
    let listen = listen_addr(cx, &g.server.listen, "listen");
    let admin_listen = listen_addr(cx, &g.admin.listen, "listen");
    let threads = *g.server.threads.get_ref();
    if !(1..=256).contains(&threads) {
        cx.error(
            &g.server.threads,
            format!("threads = {threads} is out of range"),
            Some("write a number from 1 to 256".into()),
        );
    }
    let limits = request_limits(cx, g);
    if let (Some(a), Some(b)) = (listen, admin_listen) {
        if a == b {
            cx.error(
                &g.admin.listen,
                "the admin listener uses the same address as the proxy",
                Some("give [admin] listen its own port, e.g. 127.0.0.1:9901".into()),
            );
        }
    }
    let admin_token_env = match &g.admin.token_env {
        Some(t) if env_var_name(cx, t) => {
            warn_unset(
                cx,
                t,
                "the admin API refuses every mutation (POST /reload, flush, invalidate)",
            );
            Some(t.get_ref().clone())
        }
        _ => None,
    };
    let org = g.organization.get_ref();
    if !is_name(org) {
        cx.error(
            &g.organization,
            format!("organization `{org}` must be letters, digits, `-`, `_` or `.`"),
            None,
        );
    }
    let redis = g.redis.as_ref().and_then(|r| redis_settings(cx, r));
    let environment = environment(cx, g);
    let target_servers = super::target::target_servers(cx, &g.target_servers);
    Some(GatewaySettings {
        organization: org.clone(),
        listen: listen?,
        threads: threads as usize,
        work_stealing: g.server.work_stealing,
        grace_period: Duration::from_secs(g.server.grace_period_secs),
        upgrade_socket: upgrade_socket(cx, &g.server.upgrade_socket),
        upstream_ca_file: g
            .server
            .upstream_ca_file
            .as_ref()
            .and_then(|v| super::tls::upstream_ca_file(cx, v)),
        limits,
        admin_listen: admin_listen?,
        admin_token_env,
        admin_mutations_per_second: bounded(
            cx,
            &g.admin.mutations_per_second,
            "mutations_per_second",
            1..=10_000,
        ) as u32,
        redis,
        environment,
        flow_hooks: flow_hooks(cx, &g.flow_hooks),
        target_servers,
        log: super::log::access_log(cx, &g.log),
    })
}

/// `[flow_hooks]`: names checked here; that each is a loaded shared flow is checked once the
/// shared flows are loaded (`config::mod`).
fn flow_hooks(cx: &mut FileCtx, h: &FileFlowHooks) -> FlowHooks {
    let mut name = |v: &Option<Spanned<String>>| {
        let v = v.as_ref()?;
        let n = v.get_ref().trim();
        if is_name(n) {
            Some(n.to_owned())
        } else {
            cx.error(
                v,
                format!("`{n}` is not a shared flow name (letters, digits, `-`, `_` or `.`)"),
                Some(
                    "name a shared flow of policies/sharedflows/ by its <SharedFlowBundle name>"
                        .into(),
                ),
            );
            None
        }
    };
    FlowHooks {
        pre_proxy: name(&h.pre_proxy),
        pre_target: name(&h.pre_target),
        post_target: name(&h.post_target),
        post_proxy: name(&h.post_proxy),
    }
}

/// `environment`, `default_cache_capacity` and `[[caches]]`.
fn environment(cx: &mut FileCtx, g: &FileGateway) -> Option<Environment> {
    let Some(env) = &g.environment else {
        if let Some(c) = &g.default_cache_capacity {
            cx.error(c, "default_cache_capacity needs an environment", Some("write environment = \"test\" (the Apigee environment the stages are deployed to)".into()));
        }
        if let Some(c) = g.caches.first() {
            cx.error(&c.name, "[[caches]] are caches of an environment, and none is set", Some("write environment = \"test\" (the Apigee environment the stages are deployed to)".into()));
        }
        return None;
    };
    let name = env.get_ref();
    if !is_name(name) || name.contains('.') {
        cx.error(
            env,
            format!("environment `{name}` must be letters, digits, `-` or `_`"),
            None,
        );
    }
    let capacity = |cx: &mut FileCtx, c: &Spanned<ByteSize>| {
        let v = c.get_ref().0;
        if v == 0 {
            cx.error(
                c,
                "a cache's capacity must be greater than 0",
                Some("write e.g. capacity = \"64MiB\"".into()),
            );
        }
        v
    };
    let default = g
        .default_cache_capacity
        .as_ref()
        .map_or(crate::config::defaults::DEFAULT_CAPACITY, |c| {
            capacity(cx, c)
        });
    let mut caches = vec![(String::new(), default)];
    for c in &g.caches {
        let n = c.name.get_ref();
        if !is_name(n) || n.contains('.') {
            cx.error(
                &c.name,
                format!("cache name `{n}` must be letters, digits, `-` or `_`"),
                None,
            );
        } else if caches.iter().any(|(o, _)| o == n) {
            cx.error(&c.name, format!("a second cache named `{n}`"), None);
        }
        let cap = capacity(cx, &c.capacity);
        caches.push((n.clone(), cap));
    }
    Some(Environment {
        name: name.clone(),
        caches,
    })
}

/// The `[server]` request limits.
fn request_limits(cx: &mut FileCtx, g: &FileGateway) -> RequestLimits {
    RequestLimits {
        max_uri_bytes: bounded(
            cx,
            &g.server.max_uri_bytes,
            "max_uri_bytes",
            256..=PINGORA_HEADER_BYTES,
        ),
        max_header_bytes: bounded(
            cx,
            &g.server.max_request_header_bytes,
            "max_request_header_bytes",
            1024..=PINGORA_HEADER_BYTES,
        ),
        max_headers: bounded(
            cx,
            &g.server.max_request_headers,
            "max_request_headers",
            1..=256,
        ),
        client_header_timeout: bounded_ms(
            cx,
            &g.server.client_header_timeout_ms,
            "client_header_timeout_ms",
            100..=120_000,
        ),
        client_body_timeout: bounded_ms(
            cx,
            &g.server.client_body_timeout_ms,
            "client_body_timeout_ms",
            100..=600_000,
        ),
        client_send_timeout: bounded_ms(
            cx,
            &g.server.client_send_timeout_ms,
            "client_send_timeout_ms",
            100..=600_000,
        ),
        underscores_in_headers: underscores(cx, &g.server.underscores_in_headers),
        keepalive_timeout: Duration::from_secs(bounded(
            cx,
            &g.server.keepalive_timeout,
            "keepalive_timeout",
            1..=3_600,
        ) as u64),
        keepalive_requests: u32::try_from(bounded(
            cx,
            &g.server.keepalive_requests,
            "keepalive_requests",
            1..=1_000_000,
        ))
        .unwrap_or(u32::MAX),
    }
}

/// `[server] underscores_in_headers`.
fn underscores(cx: &mut FileCtx, v: &Spanned<String>) -> Underscores {
    match v.get_ref().as_str() {
        "drop" => Underscores::Drop,
        "refuse" => Underscores::Refuse,
        "allow" => Underscores::Allow,
        other => {
            cx.error(
                v,
                format!("`{other}` is not a value of underscores_in_headers"),
                Some("write \"drop\", \"refuse\" or \"allow\"".into()),
            );
            Underscores::Drop
        }
    }
}

/// The optional `[redis]` section: a single Redis reached over plain TCP or a Unix socket.
fn redis_settings(cx: &mut FileCtx, r: &FileRedis) -> Option<RedisSettings> {
    let url = r.url.get_ref();
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("redis" | "redis+unix" | "unix") => {}
        Some(cluster) if cluster.contains("cluster") => {
            cx.error(
                &r.url,
                "Redis Cluster is not supported: cachegate's shared tier talks to one Redis",
                Some("point url at a single Redis primary (with replicas for failover), or at a cluster-aware proxy".into()),
            );
            return None;
        }
        Some("rediss") => {
            cx.error(
                &r.url,
                "rediss:// (TLS) is not supported by this build",
                Some("use redis:// on a trusted network, or a local TLS tunnel".into()),
            );
            return None;
        }
        _ => {
            cx.error(
                &r.url,
                format!("`{}` is not a Redis URL", crate::util::redact_url(url)),
                Some("write url = \"redis://127.0.0.1:6379\"".into()),
            );
            return None;
        }
    }
    if url
        .split_once("://")
        .is_some_and(|(_, rest)| rest.is_empty())
    {
        cx.error(
            &r.url,
            "the Redis URL has no host",
            Some("write url = \"redis://127.0.0.1:6379\"".into()),
        );
        return None;
    }
    let max_local_ttl_ms = *r.max_local_ttl_ms.get_ref();
    if !(100..=3_600_000).contains(&max_local_ttl_ms) {
        cx.error(
            &r.max_local_ttl_ms,
            "max_local_ttl_ms must be between 100 and 3600000",
            Some("a few seconds bounds cross-instance staleness: max_local_ttl_ms = 5000".into()),
        );
    }
    let lookup = *r.lookup_timeout_ms.get_ref();
    if !(1..=30_000).contains(&lookup) {
        cx.error(
            &r.lookup_timeout_ms,
            "lookup_timeout_ms must be between 1 and 30000",
            Some("tens of milliseconds is typical: lookup_timeout_ms = 50".into()),
        );
    }
    Some(RedisSettings {
        url: url.clone(),
        key_prefix: r.key_prefix.get_ref().clone(),
        lookup_timeout: Duration::from_millis(lookup),
        connect_timeout: Duration::from_millis(*r.connect_timeout_ms.get_ref()),
        max_local_ttl: Duration::from_millis(max_local_ttl_ms),
        encryption_keys_env: r
            .encryption_keys_env
            .as_ref()
            .filter(|e| env_var_name(cx, e))
            .inspect(|e| {
                warn_unset(
                    cx,
                    e,
                    "entries of `encrypted` stages are not written to Redis",
                )
            })
            .map(|e| e.get_ref().clone()),
    })
}

/// Warns (at `validate` and at start-up) when the environment variable a setting names is not
/// set, saying what is off without it: the setting is valid, so this is no error, but the
/// operator otherwise learns of it only when the feature fails.
fn warn_unset(cx: &mut FileCtx, env: &Spanned<String>, consequence: &str) {
    let name = env.get_ref();
    if std::env::var_os(name).is_none_or(|v| v.is_empty()) {
        cx.warning(
            env,
            format!("environment variable {name} is not set: {consequence}"),
            Some(format!("export {name}=… before starting cachegate")),
        );
    }
}

/// The most request header bytes Pingora 0.9 reads before refusing the request itself.
const PINGORA_HEADER_BYTES: u32 = 1_048_575;

/// A request size limit within `range`, whose top is what Pingora itself accepts (1 MiB of header
/// bytes, 256 header fields): a larger limit could never be reached and would mislead the
/// operator.
fn bounded(
    cx: &mut FileCtx,
    v: &Spanned<u32>,
    name: &str,
    range: std::ops::RangeInclusive<u32>,
) -> usize {
    let n = *v.get_ref();
    if !range.contains(&n) {
        cx.error(
            v,
            format!("{name} = {n} is out of range"),
            Some(format!(
                "write a number from {} to {}",
                range.start(),
                range.end()
            )),
        );
    }
    n.clamp(*range.start(), *range.end()) as usize
}

/// `[server] upgrade_socket`: Pingora binds it with `unwrap`, so a path it cannot bind (relative,
/// or longer than a Unix socket address holds) would crash the upgrade instead of failing here.
fn upgrade_socket(cx: &mut FileCtx, v: &Spanned<String>) -> String {
    let path = v.get_ref();
    if !path.starts_with('/') || path.len() > 100 {
        cx.error(
            v,
            format!("upgrade_socket = {path:?} cannot be a Unix socket path"),
            Some(
                "write an absolute path of at most 100 bytes, e.g. \"/run/cachegate/upgrade.sock\""
                    .into(),
            ),
        );
    }
    path.clone()
}

/// [`bounded`] for a number of milliseconds.
fn bounded_ms(
    cx: &mut FileCtx,
    v: &Spanned<u32>,
    name: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Duration {
    Duration::from_millis(bounded(cx, v, name, range) as u64)
}
