//! A null route (a RouteRule without a target, or none matching): the response is made by the
//! response steps, as in Apigee, and nothing is forwarded or cached.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::caching::Outcome;
use super::{Ctx, Gateway};
use crate::engine;
use crate::engine::plan::Bypass;

impl Gateway {
    /// A null route (a RouteRule without a target, or none matching): nothing is forwarded or
    /// cached; the response is an empty `200` that the response steps shape (AssignMessage sets
    /// its status, headers and payload), as in Apigee.
    pub(super) async fn answer_null_route(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<bool> {
        if ctx.refresh {
            // Nothing is refetched: say so in the audit trail rather than "authorized" alone.
            tracing::info!(target: "cachegate::audit", stage = ctx.stage_label(), "Client invalidation on a null route: nothing to refetch.");
        }
        ctx.plan = None;
        ctx.bypass = Some(Bypass::NullRoute);
        ctx.outcome = Some(Outcome::Bypass);
        let mut resp = ResponseHeader::build(200, None)?;
        resp.insert_header("x-cache", Outcome::Bypass.header())?;
        resp.insert_header(
            "cache-status",
            format!(
                "cachegate; fwd=bypass; detail={}",
                Bypass::NullRoute.as_str()
            ),
        )?;
        if let Some((name, value)) = ctx.warning.take() {
            resp.insert_header(name, value)?;
        }
        self.run_response_steps(session, &mut resp, ctx).await?;
        let body = ctx.replacement.take().map(|(b, _)| b).unwrap_or_default();
        // A PopulateCache of `response.content` gets the whole body at once (over
        // `max_object_size` it is refused and counted there).
        if let (Some(cap), Some(stage)) = (ctx.capture.take(), ctx.stage.as_ref()) {
            let p = &cap.populate;
            engine::steps::populate_body(
                stage,
                self.cache.store(),
                &p.policy,
                &p.key,
                p.ttl,
                body.clone(),
            );
        }
        let status = resp.status.as_u16();
        let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
        if bodiless {
            resp.remove_header(&http::header::CONTENT_LENGTH);
        } else {
            resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
        }
        let head = session.req_header().method == http::Method::HEAD;
        let send_body = !head && !bodiless && !body.is_empty();
        session
            .write_response_header(Box::new(resp), !send_body)
            .await
            .map_err(|e| e.into_down())?;
        if send_body {
            session
                .write_response_body(Some(body), true)
                .await
                .map_err(|e| e.into_down())?;
        }
        Ok(true)
    }
}
