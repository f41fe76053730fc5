//! Validation and compilation of the TOML file model into the runtime model.
//!
//! Every check pushes a diagnostic and carries on, so one run reports every problem. A section
//! that fails produces `None`, and the caller only builds a `RuntimeConfig` when no error was
//! recorded. Cross-file checks (flows → policies, variable references, TTL bounds) live in
//! `crossref.rs`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::defaults::MAX_TTL_SECS;
use super::file::{FileGateway, FileGrant, FileStage, FileSteps};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::runtime::flow::condition::Condition;
use crate::runtime::resource::ResourcePattern;
use crate::runtime::stage::{
    CacheMode, Flow, FlowSteps, GatewaySettings, Grant, InvalidationSettings, KeyParameter,
    MethodOverride, RedisSettings, RequestLimits, StageCache, Step, Target, UnauthorizedStrategy,
};

/// Positions inside one file: turns TOML spans into line:col and records diagnostics.
pub(crate) struct FileCtx<'a> {
    /// The file (as the user named it).
    pub path: &'a Path,
    /// Its text.
    pub text: &'a str,
    /// Where problems go.
    pub diags: &'a mut Diagnostics,
}

impl FileCtx<'_> {
    pub(crate) fn pos<T>(&self, s: &Spanned<T>) -> Option<Pos> {
        let span = s.span();
        // Defaults carry an empty 0..0 span: point at the file, not at line 1.
        (span.end > 0).then(|| Pos::from_offset(self.text, span.start))
    }

    pub(crate) fn error<T>(
        &mut self,
        at: &Spanned<T>,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::error(self.path, self.pos(at), msg);
        d.hint = hint;
        self.diags.push(d);
    }

    pub(crate) fn warning<T>(
        &mut self,
        at: &Spanned<T>,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::warning(self.path, self.pos(at), msg);
        d.hint = hint;
        self.diags.push(d);
    }
}

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

fn env_var_name(cx: &mut FileCtx, s: &Spanned<String>) -> bool {
    let v = s.get_ref();
    let ok = v
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        cx.error(
            s,
            "this is not an environment variable name (the value is not shown: it may be a secret)",
            Some(
                "name the variable, not its value: e.g. token_env = \"CACHEGATE_ADMIN_TOKEN\""
                    .into(),
            ),
        );
    }
    ok
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
    let limits = RequestLimits {
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
    };
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
        Some(t) if env_var_name(cx, t) => Some(t.get_ref().clone()),
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
    let redis = g.redis.as_ref().and_then(|r| {
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
                    format!("`{}` is not a Redis URL", redact(url)),
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
                Some(
                    "a few seconds bounds cross-instance staleness: max_local_ttl_ms = 5000".into(),
                ),
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
                .map(|e| e.get_ref().clone()),
        })
    });
    Some(GatewaySettings {
        organization: org.clone(),
        listen: listen?,
        threads: threads as usize,
        work_stealing: g.server.work_stealing,
        grace_period: Duration::from_secs(g.server.grace_period_secs),
        upgrade_socket: upgrade_socket(cx, &g.server.upgrade_socket),
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
    })
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

/// Hides a password in a URL for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Letters, digits, `-`, `_`, `.`; non-empty.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The stage's base path: validated, defaulting to `/<stage>`.
pub(crate) fn base_path(cx: &mut FileCtx, stage: &str, s: &FileStage) -> Option<String> {
    let Some(bp) = &s.base_path else {
        return Some(format!("/{stage}"));
    };
    let v = bp.get_ref();
    let hint = Some(format!(
        "write base_path = \"/{stage}\", or \"/\" to serve the whole host"
    ));
    if !v.starts_with('/') {
        cx.error(bp, format!("base_path `{v}` must start with `/`"), hint);
        return None;
    }
    if v.len() > 1 && v.ends_with('/') {
        cx.error(
            bp,
            format!("base_path `{v}` must not end with `/`"),
            Some(format!("write base_path = \"{}\"", v.trim_end_matches('/'))),
        );
        return None;
    }
    if v.contains(['?', '#', '*', '{', '}', ' '])
        || v.contains("//")
        || v.split('/').any(|seg| seg == "." || seg == "..")
    {
        cx.error(bp, format!("base_path `{v}` must be a plain path (no `?`, `#`, wildcards, spaces, `//` or dot segments)"), hint);
        return None;
    }
    Some(v.clone())
}

/// Parses and resolves `target`. Resolution happens here, at load time, so the request path
/// never does DNS (and Pingora's `HttpPeer::new` would panic on a failed lookup).
pub(crate) fn target(cx: &mut FileCtx, s: &FileStage) -> Option<Target> {
    let t = &s.target;
    let url = t.get_ref();
    let hint = Some(
        "write target = \"http://127.0.0.1:9000\" (optionally with a path: http://host:port/api)"
            .to_owned(),
    );
    let Some(rest) = url.strip_prefix("http://") else {
        if url.starts_with("https://") {
            cx.error(
                t,
                "https targets are not supported by this build (it has no TLS)",
                Some("point the stage at a plain-HTTP target, e.g. a local sidecar".into()),
            );
        } else {
            cx.error(t, format!("target `{url}` is not an http:// URL"), hint);
        }
        return None;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        cx.error(
            t,
            "credentials in the target URL are not supported",
            Some("remove `user:password@` from the target".into()),
        );
        return None;
    }
    if path.contains(['?', '#']) {
        cx.error(
            t,
            "the target URL must not have a query string or fragment",
            hint,
        );
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            cx.error(t, "unterminated IPv6 address in target", hint);
            return None;
        };
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        cx.error(t, "the target URL has no host", hint);
        return None;
    }
    let port: u16 = match port {
        None => 80,
        Some(p) => match p.parse() {
            Ok(p) if p > 0 => p,
            _ => {
                cx.error(t, format!("`{p}` is not a valid port"), hint);
                return None;
            }
        },
    };
    let addr = match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs.next(),
        Err(_) => None,
    };
    let Some(addr) = addr else {
        cx.error(
            t,
            format!("cannot resolve target host `{host}`"),
            Some("use a resolvable host name or an IP address".into()),
        );
        return None;
    };
    let host_header = if authority.starts_with('[') {
        if port == 80 {
            format!("[{host}]")
        } else {
            format!("[{host}]:{port}")
        }
    } else if port == 80 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    let ms = |v: &Spanned<u64>, key: &str, cx: &mut FileCtx| {
        if *v.get_ref() == 0 {
            cx.error(v, format!("{key} must be greater than 0"), None);
        }
        Duration::from_millis(*v.get_ref())
    };
    Some(Target {
        url: url.clone(),
        addr,
        host_header,
        path_prefix: path.trim_end_matches('/').to_owned(),
        connect_timeout: ms(&s.connect_timeout_ms, "connect_timeout_ms", cx),
        read_timeout: ms(&s.read_timeout_ms, "read_timeout_ms", cx),
        write_timeout: ms(&s.write_timeout_ms, "write_timeout_ms", cx),
    })
}

fn ttl(cx: &mut FileCtx, v: &Spanned<u64>, key: &str) -> u64 {
    let ttl = *v.get_ref();
    if ttl > MAX_TTL_SECS {
        cx.error(
            v,
            format!("{key} = {ttl} exceeds the maximum of {MAX_TTL_SECS} seconds"),
            Some(format!(
                "write {key} = {MAX_TTL_SECS} or less (0 disables caching)"
            )),
        );
    }
    ttl.min(MAX_TTL_SECS)
}

fn pattern(cx: &mut FileCtx, v: &Spanned<String>) -> Option<ResourcePattern> {
    match ResourcePattern::parse(v.get_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            cx.error(
                v,
                e,
                Some("write e.g. \"/items/{id}\", \"/items/*\" or \"/*\"".into()),
            );
            None
        }
    }
}

/// Declared resource templates.
pub(crate) fn resources(cx: &mut FileCtx, s: &FileStage) -> Vec<ResourcePattern> {
    let mut out: Vec<ResourcePattern> = Vec::new();
    for r in &s.resources {
        if let Some(p) = pattern(cx, r) {
            if out.iter().any(|o| o.as_str() == p.as_str()) {
                cx.error(r, format!("resource `{p}` is declared twice"), None);
            }
            out.push(p);
        }
    }
    out
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn method(cx: &mut FileCtx, v: &Spanned<String>) -> Option<Option<String>> {
    let m = v.get_ref();
    if m == "*" {
        return Some(None);
    }
    let upper = m.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        if upper != *m {
            cx.warning(
                v,
                format!("method `{m}` is written in lower case"),
                Some(format!("write \"{upper}\"")),
            );
        }
        return Some(Some(upper));
    }
    cx.error(
        v,
        format!("`{m}` is not an HTTP method"),
        Some(format!("write one of {} or \"*\"", METHODS.join(", "))),
    );
    None
}

/// `[cache]` including method overrides and invalidation.
pub(crate) fn cache(cx: &mut FileCtx, s: &FileStage, resources: &[ResourcePattern]) -> StageCache {
    let c = &s.cache;
    let ttl_secs = ttl(cx, &c.ttl, "ttl");
    let capacity = c.capacity.get_ref().0;
    if capacity == 0 {
        cx.error(
            &c.capacity,
            "capacity must be greater than 0",
            Some("write e.g. capacity = \"64MiB\"".into()),
        );
    }
    let max_object_size = c.max_object_size.get_ref().0;
    if max_object_size == 0 {
        cx.error(
            &c.max_object_size,
            "max_object_size must be greater than 0",
            Some("write e.g. max_object_size = 1048576".into()),
        );
    } else if capacity > 0 && max_object_size > capacity {
        cx.error(&c.max_object_size, format!("max_object_size ({max_object_size} bytes) is larger than capacity ({capacity} bytes)"), Some("raise capacity or lower max_object_size".into()));
    }
    for (v, key) in [
        (&c.stale_while_revalidate, "stale_while_revalidate"),
        (&c.stale_if_error, "stale_if_error"),
    ] {
        if *v.get_ref() > 86_400 {
            cx.error(
                v,
                format!("{key} = {} is over one day", v.get_ref()),
                Some(format!("write {key} = 86400 or less")),
            );
        }
    }

    let lock_timeout_ms = *c.lock_timeout_ms.get_ref();
    if !(1..=60_000).contains(&lock_timeout_ms) {
        cx.error(
            &c.lock_timeout_ms,
            format!("lock_timeout_ms = {lock_timeout_ms} is out of range"),
            Some("write a value from 1 to 60000".into()),
        );
    }
    let mut overrides = Vec::new();
    for m in &c.method {
        let resource = pattern(cx, &m.resource);
        let method = method(cx, &m.method);
        let ttl_secs = m.ttl.as_ref().map(|t| ttl(cx, t, "ttl"));
        if m.caching.is_none() && m.ttl.is_none() && m.encrypted.is_none() {
            cx.warning(
                &m.resource,
                "this [[cache.method]] override changes nothing",
                Some("set caching, ttl or encrypted".into()),
            );
        }
        if let (Some(resource), Some(method)) = (resource, method) {
            if overrides.iter().any(|o: &MethodOverride| {
                o.resource.as_str() == resource.as_str() && o.method == method
            }) {
                cx.error(
                    &m.resource,
                    format!(
                        "a second override for {} {resource}",
                        method.as_deref().unwrap_or("*")
                    ),
                    Some("merge the two [[cache.method]] entries".into()),
                );
            }
            overrides.push(MethodOverride {
                resource,
                method,
                caching: m.caching,
                ttl_secs,
                encrypted: m.encrypted,
            });
        }
    }
    // Most specific first, so the runtime takes the first match; the sort is stable, so among
    // equally specific overrides the file order decides.
    overrides.sort_by(|a, b| {
        (b.resource.specificity(), b.method.is_some())
            .cmp(&(a.resource.specificity(), a.method.is_some()))
    });

    let mut key_parameters = Vec::new();
    for k in &c.key_parameters {
        let v = k.get_ref();
        let hint = Some("write method.request.querystring.<name>, method.request.header.<name> or method.request.path.<name>".to_owned());
        let param = if let Some(q) = v.strip_prefix("method.request.querystring.") {
            Some(KeyParameter::Query(q.to_owned()))
        } else if let Some(h) = v.strip_prefix("method.request.header.") {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                cx.error(k, format!("`{h}` is not a valid header name"), None);
            }
            Some(KeyParameter::Header(h.to_ascii_lowercase()))
        } else if let Some(p) = v.strip_prefix("method.request.path.") {
            let declared = resources
                .iter()
                .chain(overrides.iter().map(|o| &o.resource))
                .any(|r| r.param_names().any(|n| n == p));
            if !declared {
                cx.error(
                    k,
                    format!("path parameter `{p}` is not declared by any resource template"),
                    Some(format!("declare it, e.g. resources = [\"/items/{{{p}}}\"]")),
                );
            }
            Some(KeyParameter::Path(p.to_owned()))
        } else {
            cx.error(k, format!("`{v}` is not a request parameter"), hint.clone());
            None
        };
        if let Some(p) = param {
            let name_empty = matches!(&p, KeyParameter::Query(n) | KeyParameter::Header(n) | KeyParameter::Path(n) if n.is_empty());
            if name_empty {
                cx.error(k, format!("`{v}` names no parameter"), hint);
            } else if key_parameters.contains(&p) {
                cx.error(k, format!("`{v}` is declared twice"), None);
            } else {
                key_parameters.push(p);
            }
        }
    }

    let inv = &c.invalidation;
    let unauthorized = match inv.unauthorized.get_ref().as_str() {
        "FAIL_WITH_403" => UnauthorizedStrategy::FailWith403,
        "SUCCEED_WITH_RESPONSE_HEADER" => UnauthorizedStrategy::SucceedWithResponseHeader,
        "SUCCEED_WITHOUT_RESPONSE_HEADER" => UnauthorizedStrategy::SucceedWithoutResponseHeader,
        other => {
            cx.error(&inv.unauthorized, format!("`{other}` is not an unauthorized strategy"), Some("write FAIL_WITH_403, SUCCEED_WITH_RESPONSE_HEADER or SUCCEED_WITHOUT_RESPONSE_HEADER".into()));
            UnauthorizedStrategy::SucceedWithResponseHeader
        }
    };
    let mut grants = Vec::new();
    for g in &inv.grants {
        if grants.iter().any(|x: &Grant| x.name == *g.name.get_ref()) {
            cx.error(
                &g.name,
                format!("a second grant named `{}`", g.name.get_ref()),
                None,
            );
        }
        if let Some(grant) = grant(cx, g) {
            grants.push(grant);
        }
    }
    if !inv.require_authorization && !inv.grants.is_empty() {
        cx.warning(
            &inv.grants[0].name,
            "grants are ignored: require_authorization = false lets any client invalidate",
            Some("remove the grants or set require_authorization = true".into()),
        );
    }

    let mode = match c.mode.get_ref().as_str() {
        "aws" => CacheMode::Aws,
        "http" => CacheMode::Http,
        other => {
            cx.error(
                &c.mode,
                format!("`{other}` is not a cache mode"),
                Some("write mode = \"aws\" or mode = \"http\"".into()),
            );
            CacheMode::Aws
        }
    };
    if mode == CacheMode::Http {
        if let Some(k) = c.key_parameters.first() {
            cx.warning(
                k,
                "key_parameters are ignored in http mode, which keys on the whole URI",
                Some("remove key_parameters, or use mode = \"aws\"".into()),
            );
        }
    }
    StageCache {
        enabled: c.enabled,
        mode,
        ttl_secs,
        capacity,
        max_object_size,
        encrypted: c.encrypted,
        key_parameters,
        stale_while_revalidate_secs: *c.stale_while_revalidate.get_ref(),
        stale_if_error_secs: *c.stale_if_error.get_ref(),
        lock_timeout: Duration::from_millis(lock_timeout_ms),
        allow_set_cookie: c.allow_set_cookie,
        allow_private: c.allow_private,
        allow_cookie: c.allow_cookie,
        allow_authorization: c.allow_authorization,
        overrides,
        invalidation: InvalidationSettings {
            require_authorization: inv.require_authorization,
            unauthorized,
            grants,
        },
    }
}

fn grant(cx: &mut FileCtx, g: &FileGrant) -> Option<Grant> {
    let name = g.name.get_ref();
    if !is_name(name) {
        cx.error(
            &g.name,
            format!("grant name `{name}` must be letters, digits, `-`, `_` or `.`"),
            None,
        );
    }
    let mut resources = Vec::new();
    if g.resources.is_empty() {
        cx.error(
            &g.name,
            format!("grant `{name}` has no resources"),
            Some("write resources = [\"GET/items/*\"] (or [\"*/*\"] for everything)".into()),
        );
    }
    for r in &g.resources {
        let v = r.get_ref();
        match v.split_once('/') {
            Some((m, path)) if !m.is_empty() => {
                let method = if m == "*" {
                    None
                } else if METHODS.contains(&m) {
                    Some(m.to_owned())
                } else {
                    cx.error(
                        r,
                        format!("`{m}` is not an HTTP method"),
                        Some("write METHOD/resource-path, e.g. GET/items/*".into()),
                    );
                    continue;
                };
                resources.push((method, format!("/{path}")));
            }
            _ => cx.error(
                r,
                format!("`{v}` is not in METHOD/resource-path form"),
                Some("write e.g. \"GET/items/*\" or \"*/*\"".into()),
            ),
        }
    }
    let digest = match (&g.token_env, &g.token_sha256) {
        (Some(_), Some(d)) => {
            cx.error(d, "a grant takes token_env or token_sha256, not both", None);
            return None;
        }
        (Some(env), None) => {
            if !env_var_name(cx, env) {
                return None;
            }
            match std::env::var(env.get_ref()) {
                Ok(tok) if !tok.is_empty() => Sha256::digest(tok.as_bytes()).into(),
                _ => {
                    cx.warning(
                        env,
                        format!(
                            "grant `{name}` is disabled: environment variable {} is not set",
                            env.get_ref()
                        ),
                        Some(format!(
                            "export {}=<token> before starting cachegate",
                            env.get_ref()
                        )),
                    );
                    return None;
                }
            }
        }
        (None, Some(d)) => {
            let mut out = [0u8; 32];
            match hex::decode_to_slice(d.get_ref(), &mut out) {
                Ok(()) => out,
                Err(_) => {
                    cx.error(
                        d,
                        "token_sha256 must be 64 hexadecimal characters",
                        Some("compute it with: printf %s \"$TOKEN\" | sha256sum".into()),
                    );
                    return None;
                }
            }
        }
        (None, None) => {
            cx.error(
                &g.name,
                format!("grant `{name}` has no token"),
                Some("add token_env = \"VAR\" or token_sha256 = \"<hex digest>\"".into()),
            );
            return None;
        }
    };
    Some(Grant {
        name: name.clone(),
        token_sha256: digest,
        resources,
    })
}

fn condition(cx: &mut FileCtx, at: &Spanned<String>, text: &str) -> Option<Condition> {
    match Condition::parse(text) {
        Ok(c) => Some(c),
        Err(e) => {
            let col = text
                .get(..e.offset)
                .map(|s| s.chars().count() + 1)
                .unwrap_or(1);
            cx.error(
                at,
                format!("invalid condition (at character {col}): {}", e.message),
                e.hint.clone(),
            );
            None
        }
    }
}

fn steps(cx: &mut FileCtx, list: &[Spanned<crate::config::file::FileStep>]) -> Vec<Step> {
    list.iter()
        .filter_map(|s| {
            let step = s.get_ref();
            let cond = match &step.condition {
                Some(c) => Some(condition(cx, &Spanned::new(s.span(), c.clone()), c)?),
                None => None,
            };
            Some(Step {
                policy: step.policy.clone(),
                condition: cond,
            })
        })
        .collect()
}

/// Pre-/post-flow steps.
pub(crate) fn flow_steps(cx: &mut FileCtx, s: &FileSteps) -> FlowSteps {
    FlowSteps {
        request: steps(cx, &s.request),
        response: steps(cx, &s.response),
    }
}

/// Conditional flows.
pub(crate) fn flows(cx: &mut FileCtx, s: &FileStage) -> Vec<Flow> {
    let mut out: Vec<Flow> = Vec::new();
    for f in &s.flows {
        let name = f.name.get_ref();
        if !is_name(name) {
            cx.error(
                &f.name,
                format!("flow name `{name}` must be letters, digits, `-`, `_` or `.`"),
                None,
            );
        }
        if out.iter().any(|o| o.name == *name) {
            cx.error(
                &f.name,
                format!("a second flow named `{name}`"),
                Some("flow names label metrics and must be unique".into()),
            );
        }
        let cond = match &f.condition {
            Some(c) => condition(cx, c, c.get_ref()),
            None => None,
        };
        out.push(Flow {
            name: name.clone(),
            condition: cond,
            steps: FlowSteps {
                request: steps(cx, &f.request),
                response: steps(cx, &f.response),
            },
        });
    }
    if let Some(i) = s.flows.iter().position(|f| f.condition.is_none()) {
        if let Some(later) = s.flows.get(i + 1) {
            cx.warning(
                &later.name,
                format!(
                    "flow `{}` can never run: flow `{}` before it has no condition",
                    later.name.get_ref(),
                    s.flows[i].name.get_ref()
                ),
                Some("move the unconditional flow last".into()),
            );
        }
    }
    out
}

/// A diagnostic for a whole file.
pub(crate) fn file_error(path: &Path, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::error(path, None, msg)
}
