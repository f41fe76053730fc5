//! The engine's steps run from the proxy's hooks: the response steps (for hits and misses
//! alike), the error flow (`engine::fault`) when a step raises or fails, and the PostClientFlow
//! after the response is sent. Kept apart from the
//! hooks themselves (`mod.rs`), which only decide when to call them.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::caching::Outcome;
use super::{respond, BodyCapture, Ctx, Gateway};
use crate::cache::pingora_bridge::{CachePhase, NoCacheReason};
use crate::engine::{self, Env};

impl Gateway {
    /// Answers a request whose request step raised or failed: the error flow's response
    /// (`engine::fault`), nothing forwarded or stored.
    pub(super) async fn answer_fault(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        fault: &engine::steps::Fault,
    ) -> Result<()> {
        let (Some(stage), Some(snapshot)) = (ctx.stage.clone(), ctx.snapshot.clone()) else {
            return Ok(());
        };
        let origin = engine::steps::FaultOrigin::of_request(&ctx.state);
        let env = Env {
            config: &snapshot.config,
            stage: &stage,
            client_ip: &ctx.client_ip,
            request_body: ctx.request_body.view(),
        };
        let err = engine::fault::error_flow(
            env,
            self.cache.store(),
            session.req_header(),
            &mut ctx.state,
            fault,
            origin,
        )
        .await?;
        respond::error_response(session, err.header, err.body).await
    }

    /// Runs the response steps (for hits and misses alike); a failure without
    /// `continueOnError`, or a RaiseFault, makes the response the error flow's.
    pub(super) async fn run_response_steps(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let (Some(stage), Some(snapshot)) = (ctx.stage.clone(), ctx.snapshot.clone()) else {
            return Ok(());
        };
        let env = Env {
            config: &snapshot.config,
            stage: &stage,
            client_ip: &ctx.client_ip,
            request_body: ctx.request_body.view(),
        };
        // A hit through a ResponseCache resumes after the policy's response attachment.
        let hit = matches!(ctx.outcome, Some(Outcome::Hit | Outcome::Stale))
            .then(|| ctx.plan.as_ref().and_then(|p| p.policy.as_ref()))
            .flatten()
            .map(|p| p.common.name.clone());
        let fx = engine::response::run_response_steps(
            env,
            self.cache.store(),
            session.req_header(),
            resp,
            &mut ctx.state,
            hit.as_deref(),
        )
        .await;
        if let Some(populate) = fx.populate {
            ctx.capture = Some(BodyCapture {
                populate,
                body: bytes::BytesMut::new(),
                overflow: false,
            });
        }
        if let Some(p) = fx.replacement {
            ctx.replacement = Some((p, false));
        }
        if let Some((fault, origin)) = fx.fault {
            let err = engine::fault::error_flow(
                env,
                self.cache.store(),
                session.req_header(),
                &mut ctx.state,
                &fault,
                origin,
            )
            .await?;
            // The error response replaces the response; what the cache said about it stays.
            let mut header = err.header;
            for name in ["x-cache", "cache-status"] {
                if let Some(v) = resp.headers.get(name).cloned() {
                    header.insert_header(name, v)?;
                }
            }
            *resp = header;
            ctx.capture = None;
            ctx.replacement = Some((err.body, false));
            // A response whose flow faulted is not stored: pingora admitted it before the
            // response steps ran, and a later hit would resume past the step that faulted.
            if matches!(
                session.cache.phase(),
                CachePhase::Miss | CachePhase::Expired
            ) {
                session.cache.disable(NoCacheReason::Custom("policy_fault"));
            }
        }
        Ok(())
    }

    /// Runs the ProxyEndpoint's PostClientFlow once the response is sent (from the `logging`
    /// hook; not for a background revalidation, which is no client's request).
    pub(super) async fn run_post_client_flow(&self, session: &Session, ctx: &mut Ctx) {
        let (Some(stage), Some(snapshot)) = (ctx.stage.clone(), ctx.snapshot.clone()) else {
            return;
        };
        if stage.proxy.post_client_flow.is_empty() || session.subrequest_ctx.is_some() {
            return;
        }
        let Some(resp) = session.response_written() else {
            return;
        };
        let env = Env {
            config: &snapshot.config,
            stage: &stage,
            client_ip: &ctx.client_ip,
            request_body: ctx.request_body.view(),
        };
        engine::response::run_post_client_flow(
            env,
            self.cache.store(),
            session.req_header(),
            resp,
            &mut ctx.state,
        )
        .await;
    }
}
