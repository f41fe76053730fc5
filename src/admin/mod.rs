//! The admin listener: health, metrics, configuration status, and (token-protected) reload.
//!
//! It runs on its own address (loopback by default) so that none of it is reachable through the
//! proxy port. Mutating endpoints require `Authorization: Bearer <token>` where the token comes
//! from the environment variable named by `[admin] token_env`; without one they refuse.

mod auth;
mod cache;
mod limit;
mod ready;

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

pub use auth::AdminAuth;

use crate::metrics::METRICS;
use crate::reload::ConfigHandle;
use crate::runtime::stage::RouteTo;

/// The admin HTTP application.
pub struct AdminApp {
    handle: Arc<ConfigHandle>,
    auth: AdminAuth,
    /// Mutations presenting the admin token.
    limiter: limit::Limiter,
    /// Mutations without it (refused anyway): a bucket of their own, so token guessing is slowed
    /// down without starving the operator's own requests.
    refused: limit::Limiter,
    /// The proxy listener's address as bound at start (a reload cannot move it), for
    /// `/readyz`.
    proxy: std::net::SocketAddr,
}

impl AdminApp {
    /// An admin app over `handle`, authenticating mutations with `auth`; `proxy` is the address
    /// the proxy listens on.
    pub fn new(handle: Arc<ConfigHandle>, auth: AdminAuth, proxy: std::net::SocketAddr) -> Self {
        Self {
            handle,
            auth,
            proxy,
            limiter: limit::Limiter::new(),
            refused: limit::Limiter::new(),
        }
    }

    fn config_json(&self) -> serde_json::Value {
        let snap = self.handle.snapshot();
        let stages: Vec<_> = snap
            .config
            .stages
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "base_path": s.base_path,
                    // The target of a stage.toml stage (its one TargetEndpoint's URL).
                    "target": s.targets.first().map(|t| t.target.url.as_str()),
                    "targets": s.targets.iter().map(|t| serde_json::json!({"name": t.endpoint.name, "url": t.target.url})).collect::<Vec<_>>(),
                    "routes": s.routes.iter().map(|r| serde_json::json!({
                        "name": r.name,
                        "conditional": r.condition.is_some(),
                        "to": match &r.to {
                            RouteTo::Endpoint(i) => s.targets.get(*i).map_or("", |t| t.endpoint.name.as_str()).to_owned(),
                            RouteTo::Url(t) => t.url.clone(),
                            RouteTo::Null => String::new(),
                        },
                    })).collect::<Vec<_>>(),
                    "cache_enabled": s.cache.enabled,
                    "policies": s.policy_names(),
                    "flows": s.proxy.flows.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({ "status": self.handle.status(), "stages": stages })
    }
}

/// Largest admin request body read.
const MAX_ADMIN_BODY: usize = 64 * 1024;

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ADMIN_BODY {
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body over 64 KiB",
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "could not read the request body",
                ))
            }
        }
    }
}

impl AdminApp {
    /// `POST /environment/cache/flush`, `POST /environment/caches/{name}/flush`: empties one of
    /// the environment's caches (every stage's policy entries in it), everywhere.
    fn flush_env_cache(&self, name: &str) -> Response<Vec<u8>> {
        let snap = self.handle.snapshot();
        let Some(env) = &snap.config.gateway.environment else {
            return error(StatusCode::NOT_FOUND, "no environment is configured");
        };
        if !env.has_cache(name) {
            return error(StatusCode::NOT_FOUND, "no such cache in the environment");
        }
        let Some(store) = self.handle.store() else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the cache is not running");
        };
        let partition = env.partition(Some(name));
        let n = store.flush(&partition);
        tracing::info!(target: "cachegate::audit", environment = %env.name, cache = name, source = "admin", who = "admin", action = "flush", entries = n, "Environment cache flushed.");
        json(
            StatusCode::OK,
            &serde_json::json!({ "environment": env.name, "cache": name, "flushed_entries": n }),
        )
    }

    /// `POST /stages/{stage}/cache/{flush|invalidate}`.
    async fn stage_operation(&self, path: &str, body: &[u8]) -> Response<Vec<u8>> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (stage_name, op) = match parts.as_slice() {
            ["stages", stage, "cache", op] => (*stage, *op),
            _ => return error(StatusCode::NOT_FOUND, "not found"),
        };
        let snap = self.handle.snapshot();
        let Some(stage) = snap.config.stage(stage_name) else {
            return error(StatusCode::NOT_FOUND, "no such stage");
        };
        let Some(store) = self.handle.store() else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the cache is not running");
        };
        let (status, value) = match op {
            "flush" => cache::flush(store, stage),
            "invalidate" => cache::invalidate(store, &snap, stage, body).await,
            _ => return error(StatusCode::NOT_FOUND, "not found"),
        };
        json(status, &value)
    }
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", value.to_string().into_bytes())
}

fn error(status: StatusCode, message: &str) -> Response<Vec<u8>> {
    json(status, &serde_json::json!({ "error": message }))
}

/// A 405 with the `Allow` header RFC 9110 §15.5.6 requires, so a client using the wrong method
/// learns which one the resource takes instead of concluding it does not exist.
/// `429` with `Retry-After` (whole seconds, at least 1).
fn throttled(wait: std::time::Duration) -> Response<Vec<u8>> {
    let mut resp = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many admin requests; see [admin] mutations_per_second",
    );
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(secs.max(1)),
    );
    resp
}

fn method_not_allowed(allow: &'static str) -> Response<Vec<u8>> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    resp
}

/// `/environment/cache/flush` (the default cache: `Some("")`) or
/// `/environment/caches/{name}/flush`: the cache of the environment to flush.
fn env_cache_name(path: &str) -> Option<&str> {
    match path
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["environment", "cache", "flush"] => Some(""),
        ["environment", "caches", name, "flush"] if !name.is_empty() => Some(name),
        _ => None,
    }
}

/// `/stages/{stage}/cache/{flush|invalidate}`: the shape of a stage cache operation.
fn is_stage_operation(path: &str) -> bool {
    matches!(
        path.trim_start_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice(),
        ["stages", _, "cache", "flush" | "invalidate"]
    )
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        let authorization = req.headers.get(http::header::AUTHORIZATION).cloned();
        if method == Method::POST {
            let rate = self
                .handle
                .snapshot()
                .config
                .gateway
                .admin_mutations_per_second;
            let bucket = if self.auth.check(authorization.as_ref()).is_ok() {
                &self.limiter
            } else {
                &self.refused
            };
            if let Err(wait) = bucket.admit(rate, std::time::Instant::now()) {
                tracing::warn!(target: "cachegate::audit", action = %path, outcome = "throttled", "Admin request refused.");
                METRICS.admin_throttled.inc();
                return throttled(wait);
            }
        }
        match (&method, path.as_str()) {
            (&Method::GET, "/healthz") => json(
                StatusCode::OK,
                &serde_json::json!({ "status": "ok", "generation": self.handle.snapshot().generation }),
            ),
            // HEAD is what uptime checks and some scrapers send: the same answer without a body.
            (&Method::GET, "/readyz") => {
                let (status, body) = ready::readiness(&self.handle, self.proxy).await;
                json(status, &body)
            }
            (&Method::HEAD, "/metrics") => {
                let mut resp = respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    Vec::new(),
                );
                let len = METRICS.render().len();
                resp.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
                resp
            }
            (&Method::GET, "/metrics") => {
                if let Some(store) = self.handle.store() {
                    store.refresh_metrics();
                }
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    METRICS.render().into_bytes(),
                )
            }
            (&Method::GET, "/config") => json(StatusCode::OK, &self.config_json()),
            (&Method::POST, "/reload") => {
                if let Err(refusal) = self.auth.check(authorization.as_ref()) {
                    tracing::warn!(target: "cachegate::audit", action = "reload", outcome = "refused", "Admin request refused.");
                    return error(refusal.status(), refusal.message());
                }
                tracing::info!(target: "cachegate::audit", action = "reload", who = "admin", "Admin reload requested.");
                match self.handle.reload().await {
                    Ok(generation) => json(
                        StatusCode::OK,
                        &serde_json::json!({ "outcome": "accepted", "generation": generation }),
                    ),
                    Err(diags) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &serde_json::json!({
                            "outcome": "rejected",
                            "generation": self.handle.snapshot().generation,
                            "errors": diags.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        }),
                    ),
                }
            }
            (&Method::POST, p) if p.starts_with("/stages/") => {
                if let Err(refusal) = self.auth.check(authorization.as_ref()) {
                    tracing::warn!(target: "cachegate::audit", action = %p, outcome = "refused", "Admin request refused.");
                    return error(refusal.status(), refusal.message());
                }
                let body = match read_body(session).await {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                self.stage_operation(p, &body).await
            }
            (&Method::POST, p) if env_cache_name(p).is_some() => {
                if let Err(refusal) = self.auth.check(authorization.as_ref()) {
                    tracing::warn!(target: "cachegate::audit", action = %p, outcome = "refused", "Admin request refused.");
                    return error(refusal.status(), refusal.message());
                }
                self.flush_env_cache(env_cache_name(p).unwrap_or_default())
            }
            (_, p) if env_cache_name(p).is_some() => method_not_allowed("POST"),
            (_, "/metrics") => method_not_allowed("GET, HEAD"),
            (_, "/healthz" | "/readyz" | "/config") => method_not_allowed("GET"),
            (_, "/reload") => method_not_allowed("POST"),
            (_, p) if is_stage_operation(p) => method_not_allowed("POST"),
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }
}
