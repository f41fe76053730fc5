//! AWS-style client invalidation (`Cache-Control: max-age=0` with a token) as the proxy acts on
//! the engine's decision: refetch, refuse with 403, or add a warning; each audited.

use pingora::proxy::Session;
use pingora::Result;

use super::{respond, Ctx, Gateway};
use crate::engine::client_invalidation::{self as invalidation, Decision};
use crate::engine::plan::CachePlan;
use crate::metrics::METRICS;
use crate::runtime::stage::Stage;

impl Gateway {
    /// Acts on a client invalidation decision: audits it, refuses with 403, or notes the
    /// warning to add. `Ok(true)` when the request has been answered.
    pub(super) async fn client_invalidation(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        stage: &Stage,
        plan: &CachePlan,
        decision: &Decision,
    ) -> Result<bool> {
        match decision {
            Decision::Refresh { grant } => {
                ctx.refresh = true;
                audit_client_invalidation(&stage.name, grant.as_deref(), plan, "authorized");
            }
            Decision::Forbid { reason } => {
                audit_client_invalidation(&stage.name, None, plan, reason.as_str());
                respond::bytes(session, 403, invalidation::refusal_body(*reason)).await?;
                return Ok(true);
            }
            Decision::Ignore { reason, warn } => {
                audit_client_invalidation(&stage.name, None, plan, reason.as_str());
                if *warn {
                    ctx.warning = Some(invalidation::warning_header(*reason));
                }
            }
            Decision::None => {}
        }
        Ok(false)
    }
}

/// Audit line and metric for a client invalidation request (never the token).
fn audit_client_invalidation(stage: &str, grant: Option<&str>, plan: &CachePlan, outcome: &str) {
    METRICS
        .cache_invalidations
        .with_label_values(&[stage, "client", outcome])
        .inc();
    tracing::info!(
        target: "cachegate::audit",
        stage,
        source = "client",
        who = grant.unwrap_or("anonymous"),
        key = %plan.key.readable,
        outcome,
        "Client cache invalidation."
    );
}
