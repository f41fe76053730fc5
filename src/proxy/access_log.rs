//! The access log line of a finished client request, from the session and its [`Ctx`]
//! (`crate::access_log` formats and writes it), and what of the exchange with the target only
//! the proxy's hooks see ([`Upstream`]).

use std::time::{Duration, Instant, SystemTime};

use pingora::prelude::HttpPeer;
use pingora::proxy::Session;

use super::caching::Outcome;
use super::request_id::RequestId;
use super::{Ctx, Gateway};
use crate::access_log::{mask_query, millis, rfc3339, Entry};
use crate::runtime::access_log::AccessFormat;

/// The last attempt at the target, as the access log reports it.
#[derive(Debug, Default)]
pub(super) struct Upstream {
    addr: Option<String>,
    status: Option<u16>,
    time: Option<Duration>,
}

impl Upstream {
    /// An attempt goes to `peer`.
    pub(super) fn peer(&mut self, peer: &HttpPeer) {
        self.addr = Some(peer._address.to_string());
        self.status = None;
        self.time = None;
    }

    /// The target answered with `status`; the request was sent at `sent`.
    pub(super) fn responded(&mut self, status: u16, sent: Option<Instant>) {
        self.status = Some(status);
        self.time = sent.map(|s| s.elapsed());
    }
}

/// Writes the request's line, when the configuration it ran with has an access log.
pub(super) fn write(gw: &Gateway, session: &Session, ctx: &Ctx) {
    let snapshot = match &ctx.snapshot {
        Some(s) => std::sync::Arc::clone(s),
        None => gw.handle.snapshot(),
    };
    let settings = &snapshot.config.gateway.log;
    if settings.format == AccessFormat::Off {
        return;
    }
    let req = session.req_header();
    let module = session.downstream_modules_ctx.get::<RequestId>();
    let target = module
        .and_then(|m| m.target.as_ref())
        .unwrap_or(&req.uri)
        .path_and_query()
        .map_or("/", |pq| pq.as_str());
    let path = mask_query(target, &settings.mask_query);
    let resp = session.response_written();
    let resp_header = |name: &str| {
        resp.and_then(|r| r.headers.get(name))
            .and_then(|v| v.to_str().ok())
    };
    let client = session
        .client_addr()
        .map(ToString::to_string)
        .unwrap_or_default();
    let protocol = format!("{:?}", req.version);
    let stage = ctx.stage.as_deref();
    let key = ctx.plan.as_ref().map(|p| p.store_key.to_hex());
    let elapsed = ctx.started.elapsed();
    let entry = Entry {
        time: rfc3339(SystemTime::now() - elapsed),
        request_id: module.map_or("", |m| m.id.as_str()),
        client: &client,
        method: req.method.as_str(),
        path: &path,
        protocol: &protocol,
        status: resp.map_or(0, |r| r.status.as_u16()),
        bytes: session.body_bytes_sent(),
        duration_ms: millis(elapsed),
        upstream_addr: ctx.upstream_log.addr.as_deref(),
        upstream_status: ctx.upstream_log.status,
        upstream_time_ms: ctx.upstream_log.time.map(millis),
        stage: stage.map(|s| s.name.as_str()),
        resource: Some(ctx.state.resource.as_str()).filter(|r| !r.is_empty()),
        flow: stage.and_then(|s| {
            let i = ctx.state.sel.flow?;
            s.proxy.flows.get(i).map(|f| f.name.as_str())
        }),
        cache: resp_header("x-cache"),
        cache_status: resp_header("cache-status"),
        tier: ctx
            .tier
            .filter(|_| matches!(ctx.outcome, Some(Outcome::Hit | Outcome::Stale)))
            .map(|t| t.as_str()),
        key: key.as_deref().map(|k| &k[..16.min(k.len())]),
        user_agent: req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    };
    let line = match settings.format {
        AccessFormat::Text => entry.text(),
        _ => entry.json(),
    };
    gw.access.write(&settings.destination, line);
}
