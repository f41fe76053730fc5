//! Admin cache operations: flush a stage, or invalidate an entry (or an entry and its children).
//!
//! ```text
//! POST /stages/{stage}/cache/flush
//! POST /stages/{stage}/cache/invalidate
//!   {"path": "/items/7", "method": "GET", "query": "type=a", "headers": {"x-tenant": "acme"}}
//!       the entry this request would be served from (children: true = and every entry whose
//!       key starts with its fragments); "body": "user=alice" gives it a body (for keys on
//!       `request.formparam.*` or `request.content`)
//!   {"policy": "ResponseCache-items", "fragments": ["/items/7"], "children": true}
//!       the entry (or prefix) a policy's key names, by fragment values (null = unresolved)
//! ```
//! Both are O(1) for the cache: a flush and a prefix purge are recorded times, not scans.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::RequestHeader;
use serde::Deserialize;

use crate::cache::store::TieredStore;
use crate::engine::invalidate::invalidate_key;
use crate::engine::{self, Env, Mode};
use crate::metrics::METRICS;
use crate::reload::Snapshot;
use crate::runtime::key::{KeySpec, Namespace};
use crate::runtime::stage::{Stage, StepPolicy};

/// An admin cache operation's outcome: status and JSON body.
pub type Answer = (StatusCode, serde_json::Value);

fn error(status: StatusCode, message: impl Into<String>) -> Answer {
    (status, serde_json::json!({ "error": message.into() }))
}

/// `POST /stages/{stage}/cache/flush`.
pub fn flush(store: &TieredStore, stage: &Stage) -> Answer {
    let n = store.flush(&stage.name);
    METRICS
        .cache_invalidations
        .with_label_values(&[stage.name.as_str(), "admin", "flushed"])
        .inc();
    tracing::info!(target: "cachegate::audit", stage = %stage.name, source = "admin", who = "admin", action = "flush", entries = n, "Stage cache flushed.");
    (
        StatusCode::OK,
        serde_json::json!({ "stage": stage.name, "flushed_entries": n }),
    )
}

/// The body of `POST /stages/{stage}/cache/invalidate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// A request path below the base path (request form).
    path: Option<String>,
    /// Its method (default GET).
    method: Option<String>,
    /// Its raw query string.
    query: Option<String>,
    /// Its headers.
    #[serde(default)]
    headers: HashMap<String, String>,
    /// Its body (sent with a `Content-Length`, unless `headers` frame it otherwise).
    body: Option<String>,
    /// A policy whose key spec names the entry (fragment form).
    policy: Option<String>,
    /// Fragment values for the policy's key (`null` = unresolved).
    fragments: Option<Vec<Option<String>>>,
    /// Also purge every entry whose key starts with these fragments.
    #[serde(default)]
    children: bool,
}

/// `POST /stages/{stage}/cache/invalidate`.
pub async fn invalidate(
    store: &TieredStore,
    snapshot: &Snapshot,
    stage: &Arc<Stage>,
    body: &[u8],
) -> Answer {
    let req: InvalidateRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    match (&req.path, &req.policy) {
        (Some(path), None) => by_request(store, snapshot, stage, path, &req).await,
        (None, Some(policy)) => by_fragments(store, stage, policy, &req),
        _ => error(
            StatusCode::BAD_REQUEST,
            "give either \"path\" (with optional method, query, headers) or \"policy\" with \"fragments\"",
        ),
    }
}

fn answer(stage: &Stage, removed: u64, children: bool, readable: &str) -> Answer {
    (
        StatusCode::OK,
        serde_json::json!({
            "stage": stage.name,
            "invalidated": removed,
            "children": children,
            "key": readable,
        }),
    )
}

async fn by_request(
    store: &TieredStore,
    snapshot: &Snapshot,
    stage: &Arc<Stage>,
    path: &str,
    req: &InvalidateRequest,
) -> Answer {
    // An empty path is the base path itself (`/v1/weather`, which is not `/v1/weather/`).
    if !path.is_empty() && !path.starts_with('/') {
        return error(
            StatusCode::BAD_REQUEST,
            "path must start with / (it is relative to the stage's base path), or be empty for the base path itself",
        );
    }
    let method = req.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let query = req.query.as_deref().unwrap_or("");
    let full_path = if stage.base_path == "/" {
        if path.is_empty() { "/" } else { path }.to_owned()
    } else {
        format!("{}{path}", stage.base_path)
    };
    let uri = if query.is_empty() {
        full_path
    } else {
        format!("{full_path}?{query}")
    };
    let Ok(mut request) = RequestHeader::build(method.as_str(), uri.as_bytes(), None) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{method} {uri}` is not a valid request line"),
        );
    };
    for (k, v) in &req.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(n), Ok(v)) => {
                if request.append_header(n, v).is_err() {
                    return error(StatusCode::BAD_REQUEST, format!("invalid header `{k}`"));
                }
            }
            _ => return error(StatusCode::BAD_REQUEST, format!("invalid header `{k}`")),
        }
    }
    // The body as the proxy gives it to the flow variables: only to a stage that reads bodies,
    // and only when it is small enough (engine::request_content).
    let content = match &req.body {
        Some(b) if stage.reads_request_body => engine::KeptBody::read(b.clone().into_bytes()),
        _ => engine::KeptBody::Absent,
    };
    if let Some(b) = &req.body {
        let framed = request.headers.contains_key(http::header::CONTENT_LENGTH)
            || request
                .headers
                .contains_key(http::header::TRANSFER_ENCODING);
        if !framed
            && request
                .append_header(http::header::CONTENT_LENGTH, b.len())
                .is_err()
        {
            return error(StatusCode::BAD_REQUEST, "invalid body");
        }
    }
    // A stage that forwards the client's Host keys its entries by Host too: without one the
    // request names no entry the proxy could have stored.
    if stage.preserve_host && !request.headers.contains_key(http::header::HOST) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "stage `{}` has preserve_host = true, so its entries are keyed by Host: add \"headers\": {{\"host\": \"<the Host clients send>\"}}",
                stage.name
            ),
        );
    }
    // The engine decides what the request means exactly as the proxy does (steps included),
    // without storing or purging anything on the way.
    let env = Env {
        config: &snapshot.config,
        stage,
        client_ip: "",
        request_body: content.view(),
    };
    let prepared = engine::prepare(env, store, &mut request, path, Mode::DryRun).await;
    if let Some(fault) = prepared.fault {
        return error(
            StatusCode::CONFLICT,
            format!(
                "policy `{}` fails for such a request: {}",
                fault.policy, fault.message
            ),
        );
    }
    let plan = match prepared.cache {
        Ok(p) => p,
        Err(b) => {
            return error(
                StatusCode::CONFLICT,
                format!("such a request is not cached (bypass: {})", b.as_str()),
            );
        }
    };
    let removed = if req.children {
        store.purge_children_counted(plan.key.partition(), plan.key.children_hash())
    } else {
        u64::from(store.invalidate_exact(plan.key.partition(), &plan.store_key))
    };
    METRICS
        .cache_invalidations
        .with_label_values(&[stage.name.as_str(), "admin", "done"])
        .inc();
    tracing::info!(target: "cachegate::audit", stage = %stage.name, source = "admin", who = "admin", key = %plan.key.readable, children = req.children, removed, "Cache invalidated.");
    answer(stage, removed, req.children, &plan.key.readable)
}

fn spec_of<'s>(stage: &'s Stage, policy: &str) -> Option<&'s KeySpec> {
    if let Some(rc) = stage.response_caches.get(policy) {
        return Some(&rc.common.key);
    }
    match stage.step_policies.get(policy).map(|p| &**p) {
        Some(StepPolicy::LookupCache(p)) => Some(&p.common.key),
        Some(StepPolicy::PopulateCache(p)) => Some(&p.common.key),
        Some(StepPolicy::InvalidateCache(p)) => Some(&p.common.key),
        _ => None,
    }
}

fn by_fragments(
    store: &TieredStore,
    stage: &Stage,
    policy: &str,
    req: &InvalidateRequest,
) -> Answer {
    let Some(spec) = spec_of(stage, policy) else {
        // A policy whose Scope prefix names the endpoint it runs in is compiled once per such
        // endpoint, as `<policy>@<endpoint>` (config/variants.rs): point at those.
        let variants: Vec<&str> = stage
            .policy_names()
            .into_iter()
            .filter(|n| n.strip_prefix(policy).is_some_and(|r| r.starts_with('@')))
            .collect();
        let hint = if variants.is_empty() {
            String::new()
        } else {
            format!(
                "; its keys differ by the endpoint it runs in, so name one of {}",
                variants.join(", ")
            )
        };
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "stage `{}` has no cache policy named `{policy}`{hint}",
                stage.name
            ),
        );
    };
    let values = req.fragments.clone().unwrap_or_default();
    if values.len() > spec.fragment_count()
        || (!req.children && values.len() != spec.fragment_count())
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "policy `{policy}` has {} key fragment(s); give all of them, or fewer with \"children\": true",
                spec.fragment_count()
            ),
        );
    }
    let value_key = spec
        .clone()
        .with_namespace(Namespace::Value)
        .build_values(values.clone());
    let response_key = spec
        .clone()
        .with_namespace(Namespace::Response)
        .build_values(values);
    let removed = invalidate_key(
        &stage.name,
        store,
        &value_key,
        &response_key,
        req.children,
        "admin",
        "admin",
    );
    answer(stage, removed, req.children, &value_key.readable)
}
