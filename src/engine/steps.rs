//! Running flow steps: LookupCache, PopulateCache, InvalidateCache and AssignMessage, on the
//! request side (before the cache lookup) and on the response side (for hits and misses alike).
//!
//! Each step is evaluated against the request's variables and produces variable assignments
//! and side effects on the store or the message; the caller owns the variable map and applies
//! the assignments between steps, so a step sees what the previous ones set.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::cache::entry::Entry;
use crate::cache::store::TieredStore;
use crate::engine::state::{RequestState, Segment};
use crate::metrics::METRICS;
use crate::runtime::flow::assign::{AssignError, Message, MessageTarget};
use crate::runtime::flow::Variables;
use crate::runtime::key::BuiltKey;
use crate::runtime::policy::{InvalidateCachePolicy, LookupCachePolicy, PopulateCachePolicy};
use crate::runtime::stage::{Stage, Step, StepPolicy};
use crate::runtime::ttl;

/// What became of one step.
#[derive(Debug)]
pub enum Ran {
    /// Its policy is disabled or its condition does not hold: it (and a FlowCallout's shared
    /// flow, `Step::span`) is passed.
    Skipped,
    /// It ran (or failed with `continueOnError`), maybe leaving a LookupCache read to await.
    Done(Option<PendingLookup>),
}

/// Where a walk over a list of steps goes after `step` ended as `result`: the number of
/// following steps to pass, or the fault that ends the request. A failed step inside a shared
/// flow called with `continueOnError="true"` leaves that callout (`Step::escape`).
pub fn after(
    step: &Step,
    result: Result<Ran, Fault>,
) -> Result<(usize, Option<PendingLookup>), Fault> {
    match result {
        Ok(Ran::Skipped) => Ok((step.span, None)),
        Ok(Ran::Done(lookup)) => Ok((0, lookup)),
        Err(fault) => match step.escape.filter(|_| fault.raised.is_none()) {
            Some(n) => {
                tracing::warn!(policy = %fault.policy, error = %fault.message, "Shared flow step failed; the FlowCallout continues (continueOnError).");
                Ok((n, None))
            }
            None => Err(fault),
        },
    }
}

/// A step that failed without `continueOnError`, or a RaiseFault: the request enters the error
/// flow (`engine::fault`).
#[derive(Debug, Clone)]
pub struct Fault {
    /// The policy.
    pub policy: String,
    /// What went wrong (safe to show the client: no values, only names).
    pub message: String,
    /// Apigee's `fault.name` (`RaiseFault`, `EntryCannotBeCached`, `UnresolvedVariable`, …),
    /// which FaultRule conditions test.
    pub name: &'static str,
    /// A RaiseFault: the policy whose `<FaultResponse>` builds the error response. Raising is
    /// not a failure: `continueOnError` does not let the flow go on past it.
    pub raised: Option<Arc<StepPolicy>>,
}

/// Where a fault happened: whose fault rules handle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOrigin {
    /// The ProxyEndpoint's steps (and flow hooks around them).
    Proxy,
    /// This TargetEndpoint's steps.
    Target(usize),
}

impl FaultOrigin {
    /// The origin of a fault on the request side: the segment the walk was in.
    pub fn of_request(state: &RequestState) -> Self {
        match (state.cursor.seg, state.sel.target) {
            (Segment::TargetPre | Segment::TargetFlow | Segment::TargetPost, Some(t)) => {
                FaultOrigin::Target(t)
            }
            _ => FaultOrigin::Proxy,
        }
    }
}

impl StepError {
    /// The `fault.name` Apigee gives the same failure.
    fn fault_name(&self) -> &'static str {
        match self {
            StepError::ValueTooLarge(_) => "EntryCannotBeCached",
            StepError::UnresolvedFragment(_) | StepError::Assign(_) => "UnresolvedVariable",
        }
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// PopulateCache: the value is over the stage's `max_object_size`.
    #[error("the value of {0} is larger than max_object_size")]
    ValueTooLarge(String),
    /// InvalidateCache: a key fragment did not resolve (purging a shorter key would purge too
    /// much).
    #[error("unresolved key fragment {0}")]
    UnresolvedFragment(String),
    /// AssignMessage could not be applied.
    #[error(transparent)]
    Assign(#[from] AssignError),
}

/// What a step wants done once the variables it read are no longer borrowed.
#[derive(Debug, Default)]
pub struct Effects {
    /// Variables to set, in order.
    pub assign: Vec<(String, String)>,
    /// A PopulateCache whose source is the response body: store it when the body is complete.
    pub populate_from_body: Option<(String, BuiltKey, Duration)>,
    /// A LookupCache read still to be awaited.
    pub lookup: Option<PendingLookup>,
}

fn value_entry(value: Bytes, ttl: Duration, key: &BuiltKey) -> Entry {
    let now = SystemTime::now();
    Entry {
        meta: Bytes::new(),
        body: value,
        created: now,
        expires_at: now + ttl,
        prefixes: std::sync::Arc::from(key.prefix_hashes()),
        decoded: Default::default(),
    }
}

/// The TTL of a PopulateCache entry: [`crate::engine::plan::ttl_for`] with its ExpirySettings.
fn populate_ttl(p: &PopulateCachePolicy, stage_ttl: u64, vars: &dyn Variables) -> Duration {
    let own = p
        .expiry
        .as_ref()
        .and_then(|e| ttl::expiry_ttl(e, vars, SystemTime::now()));
    crate::engine::plan::ttl_for(own, stage_ttl)
}

/// The lookups every read must pass: the key's prefixes (for child purges) and the key itself
/// (for exact invalidations that raced a write).
fn checks(store: &TieredStore, key: &BuiltKey) -> Vec<[u8; 16]> {
    let mut prefixes = if store.has_prefix_purges(key.partition()) {
        key.prefix_hashes()
    } else {
        Vec::new()
    };
    prefixes.push(key.store_key().0);
    prefixes
}

fn lookup(
    p: &LookupCachePolicy,
    store: &TieredStore,
    stage: &Stage,
    vars: &dyn Variables,
    fx: &mut Effects,
    dry_run: bool,
) {
    let key = p.common.key.build(vars);
    let prefix = format!("lookupcache.{}.", p.common.name);
    fx.assign
        .push((format!("{prefix}cachekey"), key.readable.clone()));
    fx.assign.push((
        format!("{prefix}cachename"),
        p.common.cache_resource.clone().unwrap_or_default(),
    ));
    fx.assign
        .push((format!("{prefix}assignto"), p.assign_to.clone()));
    // Over Apigee's 2 KB, or reading a body that was not read: nothing can be stored under it,
    // so it is a miss.
    if key.too_long() || key.withheld {
        fx.assign
            .push((format!("{prefix}cachehit"), "false".to_owned()));
        return;
    }
    // The lookup itself may go to the shared tier: the caller awaits it once the variables
    // (which borrow the request) are released.
    fx.lookup = Some(PendingLookup {
        policy: p.common.name.clone(),
        assign_to: p.assign_to.clone(),
        store_key: key.store_key(),
        prefixes: checks(store, &key),
        partition: key.partition().to_owned(),
        all_prefixes: {
            let mut p = key.prefix_hashes();
            p.push(key.store_key().0);
            p
        },
        deadline: p.lookup_timeout,
        encrypted: stage.cache.encrypted,
        counted: !dry_run,
    });
}

/// A LookupCache read to finish asynchronously.
#[derive(Debug)]
pub struct PendingLookup {
    policy: String,
    assign_to: String,
    store_key: crate::cache::entry::StoreKey,
    prefixes: Vec<[u8; 16]>,
    all_prefixes: Vec<[u8; 16]>,
    /// The key's store partition (the stage, or an environment cache).
    partition: String,
    deadline: Option<Duration>,
    encrypted: bool,
    /// Counted in `cachegate_kv_lookups_total` (not for a dry run).
    counted: bool,
}

impl PendingLookup {
    /// Reads the value and returns the variables to set (`cachehit`, and `<AssignTo>` on a hit).
    pub async fn finish(self, stage: &str, store: &TieredStore) -> Vec<(String, String)> {
        let all = self.all_prefixes;
        let found = store.get_tiered(
            &self.partition,
            &self.store_key,
            &self.prefixes,
            move || all,
            self.deadline,
            self.encrypted,
        );
        let found = match self.deadline {
            Some(d) => tokio::time::timeout(d, found).await.ok().flatten(),
            None => found.await,
        };
        if self.counted {
            METRICS
                .kv_lookups
                .with_label_values(&[
                    stage,
                    self.policy.as_str(),
                    if found.is_some() { "hit" } else { "miss" },
                ])
                .inc();
        }
        let mut out = vec![(
            format!("lookupcache.{}.cachehit", self.policy),
            found.is_some().to_string(),
        )];
        if let Some((entry, _)) = found {
            out.push((
                self.assign_to,
                String::from_utf8_lossy(&entry.body).into_owned(),
            ));
        }
        out
    }
}

fn populate(
    p: &PopulateCachePolicy,
    cx: &StepContext<'_>,
    vars: &dyn Variables,
    fx: &mut Effects,
    side: MessageTarget,
) -> Result<(), StepError> {
    let (stage, store) = (cx.stage, cx.store);
    let key = p.common.key.build(vars);
    let ttl = populate_ttl(p, cx.stage_ttl, vars);
    let prefix = format!("populatecache.{}.", p.common.name);
    fx.assign
        .push((format!("{prefix}cachekey"), key.readable.clone()));
    fx.assign.push((
        format!("{prefix}cachename"),
        p.common.cache_resource.clone().unwrap_or_default(),
    ));
    // Over Apigee's 2 KB, or reading a body that was not read, the key is refused: nothing
    // is stored.
    if key.too_long() || key.withheld {
        if !cx.dry_run {
            let reason = if key.withheld {
                "body_unread"
            } else {
                "key_size"
            };
            METRICS
                .cache_store_rejections
                .with_label_values(&[&stage.name, &p.common.name, reason])
                .inc();
        }
        return Ok(());
    }
    // The body: `response.content`, or Apigee's `message.content` on the response side.
    let body = p.source == "response.content"
        || (p.source == "message.content" && side == MessageTarget::Response);
    if body {
        if !cx.dry_run {
            fx.populate_from_body = Some((p.common.name.clone(), key, ttl));
        }
        return Ok(());
    }
    // Apigee: an unresolved source stores nothing.
    let Some(value) = vars.get(&p.source) else {
        return Ok(());
    };
    if value.len() as u64 > stage.cache.max_object_size {
        if !cx.dry_run {
            METRICS
                .cache_store_rejections
                .with_label_values(&[&stage.name, &p.common.name, "size"])
                .inc();
        }
        return Err(StepError::ValueTooLarge(p.source.clone()));
    }
    if cx.dry_run {
        return Ok(());
    }
    store.put_tiered(
        key.partition(),
        key.store_key(),
        std::sync::Arc::new(value_entry(Bytes::from(value.into_owned()), ttl, &key)),
        stage.cache.encrypted,
    );
    METRICS
        .cache_stores
        .with_label_values(&[&stage.name, &p.common.name])
        .inc();
    Ok(())
}

/// Stores a PopulateCache value read from the response body (called when the body is complete).
pub fn populate_body(
    stage: &Stage,
    store: &TieredStore,
    policy: &str,
    key: &BuiltKey,
    ttl: Duration,
    body: Bytes,
) {
    if body.len() as u64 > stage.cache.max_object_size {
        METRICS
            .cache_store_rejections
            .with_label_values(&[&stage.name, policy, "size"])
            .inc();
        return;
    }
    store.put_tiered(
        key.partition(),
        key.store_key(),
        std::sync::Arc::new(value_entry(body, ttl, key)),
        stage.cache.encrypted,
    );
    METRICS
        .cache_stores
        .with_label_values(&[&stage.name, policy])
        .inc();
}

fn invalidate(
    p: &InvalidateCachePolicy,
    cx: &StepContext<'_>,
    vars: &dyn Variables,
    fx: &mut Effects,
) -> Result<(), StepError> {
    let (stage, store) = (cx.stage, cx.store);
    let value_key = p.common.key.build(vars);
    let prefix = format!("invalidatecache.{}.", p.common.name);
    fx.assign
        .push((format!("{prefix}cachekey"), value_key.readable.clone()));
    fx.assign.push((
        format!("{prefix}cachename"),
        p.common.cache_resource.clone().unwrap_or_default(),
    ));
    fx.assign.push((
        format!("{prefix}purgechildentries"),
        p.purge_child_entries.to_string(),
    ));
    if !value_key.unresolved.is_empty() && !p.ignore_unresolved_variables {
        // Purging with a fragment missing would hit a shorter key than intended.
        if !cx.dry_run {
            METRICS
                .cache_invalidations
                .with_label_values(&[&stage.name, "policy", "unresolved"])
                .inc();
        }
        return Err(StepError::UnresolvedFragment(
            value_key.unresolved.join(", "),
        ));
    }
    if cx.dry_run {
        return Ok(());
    }
    let response_key = p
        .common
        .key
        .clone()
        .with_namespace(crate::runtime::key::Namespace::Response)
        .build(vars);
    crate::engine::invalidate::invalidate_key(
        &stage.name,
        store,
        &value_key,
        &response_key,
        p.purge_child_entries,
        "policy",
        &p.common.name,
    );
    Ok(())
}

/// What a step runs against.
pub struct StepContext<'a> {
    /// The request's stage.
    pub stage: &'a Stage,
    /// The store LookupCache reads and PopulateCache/InvalidateCache write.
    pub store: &'a TieredStore,
    /// The stage TTL for the request's method and resource (see `plan::ttl_for`).
    pub stage_ttl: u64,
    /// Decide only: PopulateCache and InvalidateCache set their variables but neither store
    /// nor purge (the admin API and `explain` ask what a request means without acting on it).
    pub dry_run: bool,
}

/// Runs one step. `msg` is the message the step may change (None when it cannot, e.g. a
/// request step after the request was sent).
pub fn run(
    policy: &Arc<StepPolicy>,
    cx: &StepContext<'_>,
    vars: &dyn Variables,
    msg: Option<&mut dyn Message>,
    side: MessageTarget,
) -> Result<Effects, Fault> {
    let (stage, store) = (cx.stage, cx.store);
    let mut fx = Effects::default();
    let fault = |e: StepError| Fault {
        policy: policy.name().to_owned(),
        message: e.to_string(),
        name: e.fault_name(),
        raised: None,
    };
    match &**policy {
        StepPolicy::LookupCache(p) => lookup(p, store, stage, vars, &mut fx, cx.dry_run),
        StepPolicy::PopulateCache(p) => populate(p, cx, vars, &mut fx, side).map_err(fault)?,
        StepPolicy::InvalidateCache(p) => invalidate(p, cx, vars, &mut fx).map_err(fault)?,
        StepPolicy::RaiseFault(p) => {
            return Err(Fault {
                policy: p.name.clone(),
                message: "raised".to_owned(),
                name: "RaiseFault",
                raised: Some(Arc::clone(policy)),
            })
        }
        StepPolicy::FlowCallout(p) => {
            // Each parameter is a flow variable for the shared flow's steps, which follow.
            for (name, reference, literal) in &p.parameters {
                let value = reference
                    .as_deref()
                    .and_then(|r| vars.get(r))
                    .map(std::borrow::Cow::into_owned)
                    .or_else(|| literal.clone())
                    .unwrap_or_default();
                fx.assign.push((name.clone(), value));
            }
        }
        StepPolicy::AssignMessage(p) => {
            let result = match msg {
                Some(m) if p.assign.target(side) == side => p.assign.apply(m, vars),
                _ => p.assign.assign_variables(vars),
            };
            fx.assign = result.map_err(|e| fault(StepError::Assign(e)))?;
        }
    }
    Ok(fx)
}

/// The policy a step runs, when it is to run at all (an enabled policy of the stage).
pub fn enabled_policy<'s>(stage: &'s Stage, step: &Step) -> Option<&'s Arc<StepPolicy>> {
    stage
        .step_policies
        .get(&step.policy)
        .filter(|p| p.enabled())
}

/// A failed step with `continueOnError="true"` is logged and skipped; otherwise its fault
/// ends the request.
pub fn tolerate<T>(policy: &StepPolicy, result: Result<T, Fault>) -> Result<Option<T>, Fault> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(fault) if policy.continue_on_error() && fault.raised.is_none() => {
            tracing::warn!(policy = %fault.policy, error = %fault.message, "Policy failed; continuing (continueOnError).");
            Ok(None)
        }
        Err(fault) => Err(fault),
    }
}

/// Applies a step's variable assignments.
pub fn apply(vars: &mut HashMap<String, String>, fx: &mut Effects) {
    for (k, v) in fx.assign.drain(..) {
        vars.insert(k, v);
    }
}
