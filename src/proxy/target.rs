//! Where one request's attempts go: its target's address, or a server of its LoadBalancer
//! chosen for each attempt, and what each attempt tells the LoadBalancer about the server.
//!
//! Retries follow Apigee's `RetryEnabled` (default true) within what is safe to send twice: an
//! attempt that could not connect sent nothing, so any request is retried on another server;
//! one that failed after it was sent (a timeout, a reset, or a status listed in
//! `<ServerUnhealthyResponse>`) is retried only for an idempotent method whose body Pingora
//! still holds in full (its retry buffer), as Pingora's own retry policy requires. A response
//! that reached the client is never retried: the decision is taken on the response header,
//! before anything is forwarded. See `runtime::balance` for the algorithms and the health rules.

use std::borrow::Cow;
use std::time::Instant;

use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType, Result};

use super::{health, upstream, Ctx};
use crate::runtime::balance::{Balancer, Lease};
use crate::runtime::stage::{Stage, Target};
use crate::runtime::target::{Destination, Host, TargetPath};

/// The `loadbalancing.*` variables (Apigee's variables reference), set for each attempt.
const VAR_SERVER: &str = "loadbalancing.targetserver";
const VAR_FALLBACK: &str = "loadbalancing.isfallback";
const VAR_FAILED: &str = "loadbalancing.failedservers";

/// What this request's attempts at its target have done so far.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    /// The server of the attempt under way, when the target is a LoadBalancer (counted in
    /// flight while held).
    lease: Option<Lease>,
    /// The servers tried (bit `i`: server `i`).
    tried: u64,
    /// The attempt under way received a response header.
    responded: bool,
    /// The attempt under way ended on a `<ServerUnhealthyResponse>` status, to be retried.
    unhealthy: bool,
    /// Why the request cannot be sent anywhere (answered with the status of the error).
    refusal: Option<String>,
}

impl Attempts {
    /// The message of a refusal this module made (no server available, a missing chained
    /// proxy), for the error body.
    pub(super) fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }
}

/// The request's stage (the target is borrowed from it with [`target_in`]).
fn stage_of(ctx: &Ctx) -> Result<std::sync::Arc<Stage>> {
    ctx.stage
        .clone()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream without a stage"))
}

/// The target the request's route chose in `stage`.
fn target_in<'s>(stage: &'s Stage, ctx: &Ctx) -> Result<&'s Target> {
    stage
        .upstream(&ctx.state.sel)
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream on a null route"))
}

/// Answers the request with `status` and `message` instead of sending it anywhere.
fn refuse<T>(ctx: &mut Ctx, status: u16, message: &str) -> Result<T> {
    ctx.upstream.refusal = Some(message.to_owned());
    Error::e_explain(
        ErrorType::HTTPStatus(status),
        "the target cannot take the request",
    )
}

/// The peer of the next attempt: the target's address, or the next server of its
/// LoadBalancer (503 when none can take it, as Apigee answers).
pub(super) fn peer(ctx: &mut Ctx) -> Result<HttpPeer> {
    let per_thread = super::rehome::thread_has_own_driver();
    let stage = stage_of(ctx)?;
    let target = target_in(&stage, ctx)?;
    let b = match &target.to {
        Destination::Host(h) => return Ok(upstream::peer(h, target, per_thread)),
        Destination::Balanced(b) => b,
        Destination::Unavailable(message) => return refuse(ctx, 502, message),
        Destination::Local(_) => return refuse(ctx, 502, "the chained proxy was not resolved"),
    };
    health::ensure_started(b);
    // The previous attempt's server is no longer in flight.
    ctx.upstream.lease = None;
    ctx.upstream.responded = false;
    ctx.upstream.unhealthy = false;
    let Some(lease) = b.pick(ctx.upstream.tried, Instant::now()) else {
        return refuse(ctx, 503, "no target server of the stage is available");
    };
    let a = &mut ctx.upstream;
    a.tried |= 1 << lease.index();
    let server = lease.server();
    let peer = upstream::peer(&server.host, target, per_thread);
    let vars = &mut ctx.state.vars;
    vars.insert(VAR_SERVER.to_owned(), server.name.clone());
    vars.insert(VAR_FALLBACK.to_owned(), server.fallback.to_string());
    vars.insert("target.url".to_owned(), server.url.clone());
    let failed: Vec<&str> = (0..b.servers.len())
        .filter(|i| a.tried & (1 << i) != 0 && *i != lease.index())
        .map(|i| b.servers[i].name.as_str())
        .collect();
    if !failed.is_empty() {
        vars.insert(VAR_FAILED.to_owned(), failed.join(", "));
    }
    a.lease = Some(lease);
    Ok(peer)
}

/// Rewrites the upstream request for the attempt under way: the path (the target's, rendered
/// when it has `{variable}`s), the `Host` of the address or server, the stage's rewriting.
pub(super) fn rewrite(
    session: &Session,
    req: &mut RequestHeader,
    ctx: &Ctx,
    fwd: &upstream::Forwarding,
) -> Result<()> {
    let stage = stage_of(ctx)?;
    let target = target_in(&stage, ctx)?;
    let host: &Host = match (&target.to, &ctx.upstream.lease) {
        (Destination::Host(h), _) => h,
        (Destination::Balanced(_), Some(l)) => &l.server().host,
        _ => {
            return Error::e_explain(
                ErrorType::InternalError,
                "upstream request without an address",
            )
        }
    };
    let path: Cow<'_, str> = match &target.path {
        TargetPath::Fixed(p) => Cow::Borrowed(p.as_str()),
        TargetPath::Template(_) => {
            let snapshot = ctx.snapshot.as_ref().ok_or_else(|| {
                Error::explain(
                    ErrorType::InternalError,
                    "upstream request without a configuration",
                )
            })?;
            let params = ctx.state.params();
            let vars =
                ctx.env(&stage, snapshot)
                    .vars(session.req_header(), &ctx.state, &params, None);
            match target.path.render(&vars) {
                Ok(p) => Cow::Owned(p.into_owned()),
                Err(e) => return Error::e_explain(ErrorType::HTTPStatus(500), e.to_string()),
            }
        }
    };
    upstream::rewrite_request(
        req,
        &stage,
        &host.host_header,
        &path,
        &ctx.state.suffix,
        &ctx.client_ip,
        fwd,
    )
}

/// Whether sending the request again is safe: nothing of it has been lost (Pingora's rule:
/// an idempotent method, a body still held whole in the retry buffer).
fn resendable(session: &Session) -> bool {
    session.req_header().method.is_idempotent() && !session.as_ref().retry_buffer_truncated()
}

/// The LoadBalancer of the attempt under way, its server's index.
fn current(ctx: &Ctx) -> Option<(&Balancer, usize)> {
    ctx.upstream
        .lease
        .as_ref()
        .map(|l| (l.balancer().as_ref(), l.index()))
}

/// Server `i` of `b` failed an attempt; says so in the log when that takes it out of rotation.
fn fail(ctx: &Ctx, b: &Balancer, i: usize) {
    if b.failed(i, Instant::now()) {
        tracing::warn!(
            stage = ctx.stage_label(),
            server = %b.servers[i].name,
            failures = b.max_failures,
            "A target server failed MaxFailures times in a row and is out of rotation."
        );
    }
}

/// Whether another server may take a retry (RetryEnabled, one left).
fn retry_elsewhere(ctx: &Ctx) -> bool {
    current(ctx)
        .is_some_and(|(b, _)| b.retry && b.has_candidate(ctx.upstream.tried, Instant::now()))
}

/// The attempt could not connect: a failure of its server; nothing was sent, so any request
/// may go to another server.
pub(super) fn connect_failed(ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
    if let Some((b, i)) = current(ctx) {
        fail(ctx, b, i);
        if retry_elsewhere(ctx) {
            e.set_retry(true);
        }
    }
    e
}

/// The attempt failed after it was sent. Pingora's own policy (retry a request whose reused
/// connection was closed, if it can be resent), plus the LoadBalancer's: no response from the
/// server is a failure of it, retried elsewhere when the request can be resent.
pub(super) fn failed_while_proxying(
    peer: &HttpPeer,
    session: &Session,
    ctx: &mut Ctx,
    e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    let mut e = e.more_context(format!("Peer: {peer}"));
    let resend = resendable(session);
    if resend {
        e.retry.decide_reuse(client_reused);
    } else {
        e.set_retry(false);
    }
    let unhealthy = std::mem::take(&mut ctx.upstream.unhealthy);
    let Some((b, i)) = current(ctx) else {
        return e;
    };
    let no_response = !ctx.upstream.responded && e.esource() == &ErrorSource::Upstream;
    if no_response {
        fail(ctx, b, i);
    }
    if (no_response || unhealthy) && resend && retry_elsewhere(ctx) {
        e.set_retry(true);
    }
    e
}

/// The attempt's response header arrived: the server answered (its count restarts), unless the
/// status is one of `<ServerUnhealthyResponse>` — then it failed, and the request is retried on
/// another server when that is allowed and safe (the response is dropped before anything of it
/// is forwarded or stored).
pub(super) fn responded(session: &Session, ctx: &mut Ctx, status: u16) -> Result<()> {
    ctx.upstream.responded = true;
    let Some((b, i)) = current(ctx) else {
        return Ok(());
    };
    if !b.is_unhealthy(status) {
        b.succeeded(i);
        return Ok(());
    }
    fail(ctx, b, i);
    if resendable(session) && retry_elsewhere(ctx) {
        ctx.upstream.unhealthy = true;
        return Error::e_explain(
            ErrorType::HTTPStatus(status),
            "the target server answered with a ServerUnhealthyResponse status",
        );
    }
    Ok(())
}
