//! The Pingora `ProxyHttp` implementation: the only module that imports `pingora::proxy`.
//!
//! Each phase is thin and delegates: routing and flow selection to the runtime config, cache
//! decisions to `cache::decide` (applied by `caching.rs`), header rewriting to `upstream.rs`,
//! error responses to `respond.rs`. Per-request state lives in [`Ctx`], which holds the
//! configuration snapshot the request started with, so a reload never changes a request midway.

mod access_log;
mod body;
mod caching;
mod client_refresh;
mod early;
mod fast_hit;
mod framing;
mod head_log;
pub(crate) mod header_deadline;
mod health;
mod hop_by_hop;
mod http_mode;
pub mod in_flight;
mod keepalive;
mod logging;
mod null_route;
pub(crate) mod rehome;
mod request_id;
mod respond;
mod revalidate;
mod steps;
mod target;
mod upstream;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, HttpProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, OrErr, Result};

use crate::cache::pingora_bridge::{
    self as bridge, CacheKey, CacheMeta, ForcedFreshness, HashBinary, HitHandler, NoCacheReason,
    RespCacheable,
};
use crate::engine::plan::{self as decide, Bypass, CachePlan, Freshness, Reject};
use crate::engine::response::BodyPopulate;
use crate::engine::{self, Env, Mode, RequestState};
use crate::metrics::METRICS;
use crate::reload::{ConfigHandle, Snapshot};
use crate::runtime::stage::{CacheMode, KeyParameter, Stage};
use caching::Outcome;

/// The proxy service listening on `listen`: Pingora's HTTP proxy running [`Gateway`] behind the
/// header deadline. The one place `pingora::proxy` is instantiated.
pub fn service(
    handle: Arc<ConfigHandle>,
    cache: bridge::GatewayCache,
    conf: &Arc<pingora::server::configuration::ServerConf>,
    listen: &str,
) -> pingora::services::listening::Service<header_deadline::HeaderDeadlineApp<HttpProxy<Gateway>>> {
    let mut app = HttpProxy::new(Gateway::new(Arc::clone(&handle), cache), Arc::clone(conf));
    app.handle_init_modules();
    let mut proxy = pingora::services::listening::Service::new(
        "cachegate proxy".to_owned(),
        header_deadline::HeaderDeadlineApp::new(app, handle),
    );
    proxy.add_tcp(listen);
    proxy
}

/// The gateway's proxy logic.
pub struct Gateway {
    handle: Arc<ConfigHandle>,
    cache: bridge::GatewayCache,
    access: crate::access_log::AccessLog,
}

impl Gateway {
    /// A gateway serving whatever configuration `handle` holds, caching in `cache`.
    pub fn new(handle: Arc<ConfigHandle>, cache: bridge::GatewayCache) -> Self {
        Self {
            handle,
            cache,
            access: crate::access_log::AccessLog::default(),
        }
    }
}

/// Per-request state.
pub struct Ctx {
    /// The configuration this request uses from start to end.
    snapshot: Option<Arc<Snapshot>>,
    /// The matched stage.
    stage: Option<Arc<Stage>>,
    /// Where the request matched (path below the base path, resource, flow) and the
    /// variables its policies set: the engine's state of this request.
    state: RequestState,
    /// When the request arrived.
    started: Instant,
    /// How this request uses the cache, if it does.
    plan: Option<CachePlan>,
    /// Why it does not, if it does not.
    bypass: Option<Bypass>,
    /// Whether the response was stored (and its TTL), or why not.
    store: Option<std::result::Result<Freshness, Reject>>,
    /// What the client was told.
    outcome: Option<Outcome>,
    /// An authorized client invalidation: the entry is refetched and replaced.
    refresh: bool,
    /// A warning header for an ignored invalidation request.
    warning: Option<(http::HeaderName, http::HeaderValue)>,
    /// A PopulateCache waiting for the whole response body.
    capture: Option<BodyCapture>,
    /// A body replacing the response's (AssignMessage `<Set><Payload>`), and whether it was sent.
    replacement: Option<(bytes::Bytes, bool)>,
    /// When the request was sent to the target (for the upstream latency histogram).
    upstream_sent: Option<Instant>,
    /// The exchange with the target as the cache sees it: its times and a revalidating 304.
    exchange: revalidate::Exchange,
    /// The tier that served a hit.
    tier: Option<crate::cache::entry::Tier>,
    /// The cache key the fast path built and looked up (see `fast_hit`), for pingora's lookup.
    cache_key: Option<CacheKey>,
    /// The path's `..` segments climb above the root: answered with 400.
    bad_path: bool,
    /// The request exceeds a `[server] max_*` limit, or its head is refused (`framing`): the
    /// status and message it is refused with.
    over_limit: Option<(u16, &'static str)>,
    /// The gateway normalised the request's head: its upstream connection is not reused.
    normalised: bool,
    /// The client's IP address, formatted once.
    client_ip: String,
    /// The start of a long chunked request body, read ahead and not yet forwarded.
    held_body: Option<body::Held>,
    /// This request's attempts at its target (the LoadBalancer server of each).
    upstream: target::Attempts,
    /// The last attempt's address, status and time, for the access log.
    upstream_log: access_log::Upstream,
    /// The request body for the flow variables, when the stage reads it (see `proxy::body`).
    request_body: engine::KeptBody,
    /// Counts this request in flight until the context is dropped.
    _in_flight: in_flight::InFlight,
}

/// A response body being collected for a PopulateCache with `<Source>response.content</Source>`.
struct BodyCapture {
    populate: BodyPopulate,
    body: bytes::BytesMut,
    overflow: bool,
}

impl Ctx {
    fn stage_label(&self) -> &str {
        self.stage.as_ref().map_or("none", |s| s.name.as_str())
    }

    /// The engine's view of this request's unchanging inputs.
    fn env<'a>(&'a self, stage: &'a Stage, snapshot: &'a Snapshot) -> Env<'a> {
        Env {
            config: &snapshot.config,
            stage,
            client_ip: &self.client_ip,
            request_body: self.request_body.view(),
        }
    }
}

impl Gateway {
    /// The pingora cache key of `plan`'s entry, with what the bridge's lookup needs to know.
    pub(super) fn lookup_key(&self, plan: &CachePlan, refresh: bool) -> CacheKey {
        let opts = bridge::LookupOptions {
            check_purges: self.cache.store().has_prefix_purges(plan.key.partition()),
            deadline: plan.policy.as_ref().and_then(|p| p.lookup_timeout),
            encrypted: plan.encrypted,
            replaces: refresh,
            local_only: false,
        };
        bridge::cache_key(
            plan.key.partition(),
            plan.store_key,
            Arc::clone(&plan.key),
            opts,
        )
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        // Pingora's default (its compression module, off), and `X-Request-Id` on every answer.
        modules
            .add_module(pingora::modules::http::compression::ResponseCompressionBuilder::enable(0));
        modules.add_module(Box::new(request_id::Builder));
    }

    fn new_ctx(&self) -> Ctx {
        Ctx {
            snapshot: None,
            stage: None,
            state: RequestState::default(),
            started: Instant::now(),
            plan: None,
            bypass: None,
            store: None,
            outcome: None,
            refresh: false,
            warning: None,
            capture: None,
            replacement: None,
            upstream_sent: None,
            exchange: revalidate::Exchange::default(),
            tier: None,
            cache_key: None,
            bad_path: false,
            over_limit: None,
            normalised: false,
            client_ip: String::new(),
            held_body: None,
            upstream: target::Attempts::default(),
            upstream_log: access_log::Upstream::default(),
            request_body: engine::KeptBody::Absent,
            _in_flight: in_flight::InFlight::start(),
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        crate::proxy::header_deadline::header_complete(session.as_downstream());
        let snapshot = self.handle.snapshot();
        // Pipelined requests are answered one after the other, in order (RFC 9112 §9.3.2), as
        // NGINX does; Pingora's default drops every request after the first.
        if let pingora::protocols::http::ServerSession::H1(h1) = session.as_downstream_mut() {
            h1.set_pipelining_enabled(true);
        }
        // Bounds each read of the body (the header and the writes have their own deadlines on
        // the connection, see header_deadline).
        session.set_read_timeout(Some(snapshot.config.gateway.limits.client_body_timeout));
        keepalive::apply(session.as_downstream_mut(), &snapshot.config.gateway.limits);
        ctx.client_ip = early::client_ip(session);
        // Checked on the request as received, before any work that scales with its size.
        let limits = &snapshot.config.gateway.limits;
        ctx.over_limit = respond::over_limits(session.req_header(), limits);
        if ctx.over_limit.is_none() {
            match framing::inspect(session, limits.underscores_in_headers) {
                framing::Verdict::Refuse(code, message) => ctx.over_limit = Some((code, message)),
                framing::Verdict::Pass { normalised } => ctx.normalised = normalised,
            }
        }
        if ctx.over_limit.is_some() {
            ctx.snapshot = Some(snapshot);
            return Ok(());
        }
        // Route, key and forward one and the same path: dot segments and repeated slashes are
        // resolved first, so `/prod/x/../y` cannot be keyed as one path and served as another,
        // and `..` can never climb out of a stage or its target's path.
        let normalized = match crate::util::normalize_path(session.req_header().uri.path()) {
            Some(std::borrow::Cow::Borrowed(_)) => None,
            Some(std::borrow::Cow::Owned(p)) => Some(p),
            None => {
                ctx.bad_path = true;
                ctx.snapshot = Some(snapshot);
                return Ok(());
            }
        };
        if let Some(path) = normalized {
            let req = session.req_header_mut();
            let pq = match req.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let uri: http::Uri = pq
                .parse()
                .or_err(ErrorType::InvalidHTTPHeader, "normalized path is invalid")?;
            req.set_uri(uri);
        }
        if let Some(routed) = engine::route(&snapshot.config, session.req_header().uri.path()) {
            ctx.stage = Some(routed.stage);
            ctx.state = RequestState::new(routed.suffix);
        }
        ctx.snapshot = Some(snapshot);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if early::refuse(session, ctx).await? {
            return Ok(true);
        }
        let (Some(stage), Some(snapshot)) = (ctx.stage.clone(), ctx.snapshot.clone()) else {
            let path = session.req_header().uri.path().to_owned();
            respond::json(session, 404, &respond::not_found(&path)).await?;
            return Ok(true);
        };
        // A chunked body is read (and its framing checked) before any policy runs or anything is
        // forwarded, so a malformed one reaches neither the target nor an InvalidateCache; a
        // stage whose policies read the body keeps it (and reads a `Content-Length` one too).
        match body::read_ahead(session, stage.reads_request_body).await? {
            body::ReadAhead::Forward(kept) => ctx.request_body = kept,
            body::ReadAhead::Stream(held) => {
                ctx.held_body = Some(held);
                if stage.reads_request_body {
                    ctx.request_body = engine::KeptBody::Withheld;
                }
            }
            body::ReadAhead::Refuse(code, message) => {
                respond::reject(session, code, message).await?;
                return Ok(true);
            }
        }
        // Everything the request means is decided by the engine; this hook only acts on it.
        let suffix = std::mem::take(&mut ctx.state.suffix);
        let prepared = engine::prepare(
            ctx.env(&stage, &snapshot),
            self.cache.store(),
            session.req_header_mut(),
            &suffix,
            Mode::Run,
        )
        .await;
        ctx.state = prepared.state;
        if let Some(fault) = prepared.fault {
            self.answer_fault(session, ctx, &fault).await?;
            return Ok(true);
        }
        match prepared.cache {
            Ok(plan) => {
                if self
                    .client_invalidation(session, ctx, &stage, &plan, &prepared.invalidation)
                    .await?
                {
                    return Ok(true);
                }
                ctx.plan = Some(plan);
            }
            Err(b) => ctx.bypass = Some(b),
        }
        let has_body = prepared.has_body;
        // Every request step ran (no ResponseCache stopped the walk): a null route is known now.
        if ctx.state.cursor.done() && stage.upstream(&ctx.state.sel).is_none() {
            return self.answer_null_route(session, ctx).await;
        }
        let sel = ctx.state.sel;
        self.answer_fresh_hit(session, ctx, &stage, &sel, has_body)
            .await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(held) = ctx.held_body.take() {
            held.prepend(body);
        }
        Ok(())
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        if let (Some(_), Some(stage)) = (&ctx.plan, &ctx.stage) {
            session.cache.enable(
                self.cache.storage(),
                None,
                None,
                Some(bridge::lock()),
                Some(bridge::overrides(stage.cache.lock_timeout)),
            );
            let max = usize::try_from(stage.cache.max_object_size).unwrap_or(usize::MAX);
            session.cache.set_max_file_size_bytes(max);
        }
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        if let Some(key) = ctx.cache_key.take() {
            return Ok(key);
        }
        match &ctx.plan {
            Some(plan) => Ok(self.lookup_key(plan, ctx.refresh)),
            None => Error::e_explain(ErrorType::InternalError, "cache enabled without a plan"),
        }
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        hit: &mut HitHandler,
        _is_fresh: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<ForcedFreshness>> {
        ctx.tier = bridge::hit_tier(hit);
        // SkipCacheLookup: behave as a miss and re-populate with the fresh response.
        if ctx.plan.as_ref().is_some_and(|p| p.skip_lookup) {
            return Ok(Some(ForcedFreshness::ForceMiss));
        }
        // http mode: the request's Cache-Control directives (RFC 9111 §5.2.1).
        Ok(http_mode::hit_freshness(session, meta, ctx))
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<RespCacheable> {
        // A 304 revalidating a stored response: what is judged and stored is the stored header
        // updated with all of the 304's fields, not pingora's five-field merge.
        // Only in http mode: stage caching and Apigee policies keep pingora's merge, as before.
        let standard = ctx.plan.as_ref().is_some_and(|p| p.policy.is_none())
            && ctx
                .stage
                .as_ref()
                .is_some_and(|s| s.cache.mode == CacheMode::Http);
        let merged;
        let merge = if standard {
            ctx.exchange.merge(session.cache.maybe_cache_meta())
        } else {
            revalidate::Merge::None
        };
        let resp = match merge {
            revalidate::Merge::None => resp,
            revalidate::Merge::Merged(h) => {
                merged = h;
                &merged
            }
            revalidate::Merge::Mismatch => {
                return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
                    "validator_mismatch",
                )))
            }
        };
        let (Some(plan), Some(stage), Some(snapshot)) = (&ctx.plan, &ctx.stage, &ctx.snapshot)
        else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::NeverEnabled));
        };
        let params = ctx.state.params();
        let vars =
            ctx.env(stage, snapshot)
                .vars(session.req_header(), &ctx.state, &params, Some(resp));
        let decision = decide::store(
            plan,
            stage,
            resp.status.as_u16(),
            &resp.headers,
            &vars,
            SystemTime::now(),
            ctx.exchange.timing(),
        );
        let result = match &decision {
            Ok(f) => RespCacheable::Cacheable(caching::cache_meta(resp, f)),
            Err(reason) => {
                if session.subrequest_ctx.is_none() {
                    METRICS
                        .cache_store_rejections
                        .with_label_values(&[&stage.name, plan.policy_label(), reason.as_str()])
                        .inc();
                }
                RespCacheable::Uncacheable(NoCacheReason::Custom(reason.as_str()))
            }
        };
        ctx.store = Some(decision);
        Ok(result)
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Ctx,
        req: &pingora::http::RequestHeader,
    ) -> Option<HashBinary> {
        bridge::variance(meta, req)
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
        error: Option<&Error>,
    ) -> bool {
        // The entry's own windows (from the stage's stale_* settings) decide for how long; this
        // only says which situations qualify: a background refresh, or a failing target.
        ctx.plan.is_some()
            && error.is_none_or(|e| {
                matches!(e.esource(), ErrorSource::Upstream)
                    || matches!(e.etype(), ErrorType::HTTPStatus(s) if *s >= 500)
            })
    }

    /// A miss (or an uncacheable request) on its way to the target: the request steps the
    /// ResponseCache lookup left run now (the rest of the request path, the RouteRules, the
    /// TargetEndpoint's steps), as in Apigee, where a hit skips them.
    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let (Some(stage), Some(snapshot)) = (ctx.stage.clone(), ctx.snapshot.clone()) else {
            return Ok(true);
        };
        if self.only_if_cached(session, ctx).await? {
            return Ok(false);
        }
        if !ctx.state.cursor.done() {
            let env = Env {
                config: &snapshot.config,
                stage: &stage,
                client_ip: &ctx.client_ip,
                request_body: ctx.request_body.view(),
            };
            let resumed = engine::walk::resume(
                env,
                self.cache.store(),
                session.req_header_mut(),
                &mut ctx.state,
            )
            .await;
            if let Err(fault) = resumed {
                self.answer_fault(session, ctx, &fault).await?;
                return Ok(false);
            }
        }
        if stage.upstream(&ctx.state.sel).is_none() {
            self.answer_null_route(session, ctx).await?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let peer = target::peer(ctx)?;
        ctx.upstream_log.peer(&peer);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        target::connect_failed(ctx, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        target::failed_while_proxying(peer, session, ctx, e, client_reused)
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
        ctx.upstream_sent = Some(Instant::now());
        ctx.exchange.sent();
        let mut fwd = upstream::Forwarding::default();
        if let Some(plan) = &ctx.plan {
            fwd.cacheable = true;
            fwd.strip_synthetic_validators = true;
            // An authorized refresh replaces the entry everyone gets: it is fetched with the
            // key's inputs only, so the token holder cannot slip unkeyed headers into it.
            if ctx.refresh {
                let spec = plan
                    .policy
                    .as_ref()
                    .map_or(&stage.default_key, |p| &p.common.key);
                fwd.only_headers = Some(spec.header_inputs());
            }
            if plan.policy.is_none()
                && stage.cache.mode == CacheMode::Aws
                && !stage.cache.forward_unkeyed_query
            {
                let declared: Vec<&str> = stage
                    .cache
                    .key_parameters
                    .iter()
                    .filter_map(|k| match k {
                        KeyParameter::Query(q) => Some(q.as_str()),
                        _ => None,
                    })
                    .collect();
                let query = session.req_header().uri.query().unwrap_or("");
                fwd.query = Some(upstream::declared_query(query, &declared));
            }
        }
        target::rewrite(session, upstream_request, ctx, &fwd)?;
        if ctx.normalised {
            // Pingora keeps a connection whose request said `close` out of its pool.
            upstream_request.insert_header(http::header::CONNECTION, "close")?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_log
            .responded(resp.status.as_u16(), ctx.upstream_sent);
        target::responded(session, ctx, resp.status.as_u16())?;
        hop_by_hop::strip(resp);
        request_id::strip_stored(resp);
        framing::collapse_response_length(resp)?;
        ctx.exchange.received(resp);
        if let (Some(sent), Some(stage)) = (ctx.upstream_sent.take(), ctx.stage.as_ref()) {
            METRICS
                .upstream_duration
                .with_label_values(&[stage.name.as_str()])
                .observe(sent.elapsed().as_secs_f64());
        }
        // Runs before the response is stored, so what is added here is stored too.
        // Not in http mode: a standards cache revalidates with the target's own validators only.
        let standard = ctx
            .stage
            .as_ref()
            .is_some_and(|s| s.cache.mode == CacheMode::Http);
        if let Some(plan) = ctx
            .plan
            .as_ref()
            .filter(|p| p.policy.is_some() || !standard)
        {
            caching::synthesize_etag(resp, plan)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if ctx.stage.is_none() {
            return Ok(());
        }
        // http mode: a request's no-store, and invalidation after an unsafe method.
        self.http_response(session, resp, ctx);
        let phase = session.cache.phase();
        let outcome = caching::outcome(phase, ctx.plan.as_ref(), ctx.store.is_some());
        let status = caching::cache_status(
            phase,
            outcome,
            session.cache.maybe_cache_meta(),
            ctx.store.as_ref(),
            ctx.bypass,
            SystemTime::now(),
        );
        ctx.exchange
            .answered(phase, session.cache.maybe_cache_meta(), resp)?;
        resp.insert_header("x-cache", outcome.header())?;
        resp.insert_header("cache-status", status)?;
        // cachegate's own targeted field (RFC 9213) is for it alone; it is not stored either.
        if let Some(own) = ctx
            .stage
            .as_ref()
            .and_then(|s| s.cache.own_targeted_field())
        {
            resp.remove_header(own);
        }
        if let Some(p) = ctx.plan.as_ref().and_then(|p| p.policy.as_ref()) {
            let hit = matches!(outcome, Outcome::Hit | Outcome::Stale);
            ctx.state.vars.insert(
                format!("responsecache.{}.cachehit", p.common.name),
                hit.to_string(),
            );
        }
        if let Some((name, value)) = ctx.warning.take() {
            resp.insert_header(name, value)?;
        }
        ctx.outcome = Some(outcome);
        // Response steps run for hits too (Apigee runs the response flow on a cache hit).
        if session.subrequest_ctx.is_none() {
            self.run_response_steps(session, resp, ctx).await?;
        }
        if let Some((body, _)) = &ctx.replacement {
            resp.remove_header(&http::header::TRANSFER_ENCODING);
            resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
            // The stored validators describe the original body, not this one.
            resp.remove_header(&http::header::ETAG);
            resp.remove_header(&http::header::LAST_MODIFIED);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(cap) = ctx.capture.as_mut() {
            let limit = ctx.stage.as_ref().map_or(0, |s| s.cache.max_object_size);
            if let Some(b) = body.as_ref() {
                if (cap.body.len() + b.len()) as u64 <= limit {
                    cap.body.extend_from_slice(b);
                } else {
                    cap.overflow = true;
                }
            }
            if end_of_stream {
                if let (Some(cap), Some(stage)) = (ctx.capture.take(), ctx.stage.as_ref()) {
                    let p = &cap.populate;
                    if cap.overflow {
                        METRICS
                            .cache_store_rejections
                            .with_label_values(&[stage.name.as_str(), p.policy.as_str(), "size"])
                            .inc();
                    } else {
                        engine::steps::populate_body(
                            stage,
                            self.cache.store(),
                            &p.policy,
                            &p.key,
                            p.ttl,
                            cap.body.freeze(),
                        );
                    }
                }
            }
        }
        if let Some((replacement, sent)) = ctx.replacement.as_mut() {
            if *sent {
                *body = None;
            } else if body.is_some() || end_of_stream {
                *body = Some(replacement.clone());
                *sent = true;
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = respond::error_status(e);
        if matches!(e.esource(), ErrorSource::Upstream) {
            METRICS
                .upstream_errors
                .with_label_values(&[ctx.stage_label(), e.etype().as_str()])
                .inc();
        }
        if matches!(e.esource(), ErrorSource::Downstream)
            && matches!(e.etype(), ErrorType::ReadTimedout)
        {
            METRICS.client_timeouts.with_label_values(&["body"]).inc();
        }
        if code > 0 {
            let message = ctx.upstream.refusal();
            if let Err(err) = respond::error(session, code, ctx.stage.as_deref(), message).await {
                tracing::debug!(error = %err, "Could not send the error response.");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        logging::record(self, session, e, ctx);
        self.run_post_client_flow(session, ctx).await;
    }
}
