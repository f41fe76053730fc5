//! The Pingora `ProxyHttp` implementation: the only module that imports `pingora::proxy`.
//!
//! Each phase is thin and delegates: routing and flow selection to the runtime config, header
//! rewriting to `upstream.rs`, error responses to `respond.rs`. Per-request state lives in
//! [`Ctx`], which holds the configuration snapshot the request started with, so a reload never
//! changes a request midway.

mod respond;
mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use crate::config::runtime::Stage;
use crate::flow::vars::RequestVars;
use crate::metrics::{method_label, status_class, METRICS};
use crate::reload::{ConfigHandle, Snapshot};

/// The gateway's proxy logic.
pub struct Gateway {
    handle: Arc<ConfigHandle>,
}

impl Gateway {
    /// A gateway serving whatever configuration `handle` holds.
    pub fn new(handle: Arc<ConfigHandle>) -> Self {
        Self { handle }
    }
}

/// Per-request state.
pub struct Ctx {
    /// The configuration this request uses from start to end.
    snapshot: Option<Arc<Snapshot>>,
    /// The matched stage.
    stage: Option<Arc<Stage>>,
    /// Path after the stage's base path.
    suffix: String,
    /// Name of the matched conditional flow.
    flow: Option<String>,
    /// Variables set by policies during this request.
    vars: HashMap<String, String>,
    /// When the request arrived.
    started: Instant,
}

impl Ctx {
    fn stage_label(&self) -> &str {
        self.stage.as_ref().map_or("none", |s| s.name.as_str())
    }
}

/// Builds the flow variables of this request. A free function over the parts it needs, so the
/// borrow of the session's header does not overlap with the context's.
fn request_vars<'a>(
    session: &'a Session,
    stage: &'a Stage,
    snapshot: &'a Snapshot,
    suffix: &'a str,
    flow: Option<&'a str>,
    client_ip: &'a str,
    custom: &'a HashMap<String, String>,
) -> RequestVars<'a> {
    let req = session.req_header();
    let uri = &req.uri;
    RequestVars {
        method: req.method.as_str(),
        uri: uri.path_and_query().map_or("/", |pq| pq.as_str()),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &req.headers,
        base_path: &stage.base_path,
        path_suffix: suffix,
        path_params: &[],
        client_ip,
        stage: &stage.name,
        organization: &snapshot.config.gateway.organization,
        api_name: &stage.api_name,
        revision: stage.revision,
        flow,
        response_status: None,
        response_headers: None,
        custom,
    }
}

fn client_ip(session: &Session) -> String {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            snapshot: None,
            stage: None,
            suffix: String::new(),
            flow: None,
            vars: HashMap::new(),
            started: Instant::now(),
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let snapshot = self.handle.snapshot();
        if let Some((stage, suffix)) = snapshot.config.route(session.req_header().uri.path()) {
            ctx.stage = Some(Arc::clone(stage));
            ctx.suffix = suffix.to_owned();
        }
        ctx.snapshot = Some(snapshot);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let (Some(stage), Some(snapshot)) = (ctx.stage.clone(), ctx.snapshot.clone()) else {
            let path = session.req_header().uri.path().to_owned();
            respond::json(session, 404, &respond::not_found(&path)).await?;
            return Ok(true);
        };
        let ip = client_ip(session);
        let vars = request_vars(
            session,
            &stage,
            &snapshot,
            &ctx.suffix,
            None,
            &ip,
            &ctx.vars,
        );
        ctx.flow = stage.select_flow(&vars).map(|f| f.name.clone());
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let stage = ctx.stage.as_ref().ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "upstream_peer without a stage")
        })?;
        Ok(Box::new(upstream::peer(&stage.target)))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let stage = ctx.stage.as_ref().ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "upstream request without a stage")
        })?;
        upstream::rewrite_request(upstream_request, stage, &ctx.suffix, &client_ip(session))
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = respond::error_status(e);
        if matches!(e.esource(), pingora::ErrorSource::Upstream) {
            METRICS
                .upstream_errors
                .with_label_values(&[ctx.stage_label(), e.etype().as_str()])
                .inc();
        }
        if code > 0 {
            if let Err(err) = respond::error(session, code, ctx.stage.as_deref()).await {
                tracing::debug!(error = %err, "Could not send the error response.");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let stage = ctx.stage_label();
        METRICS
            .requests
            .with_label_values(&[
                stage,
                method_label(session.req_header().method.as_str()),
                status_class(status),
            ])
            .inc();
        METRICS
            .request_duration
            .with_label_values(&[stage])
            .observe(ctx.started.elapsed().as_secs_f64());
    }
}
