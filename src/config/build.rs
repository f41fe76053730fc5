//! Building a runtime stage from its parts, whichever syntax they were written in: the stage's
//! settings, its endpoints and routes (`source`), and its parsed policies. Checks them across
//! files (`crossref`), compiles flows, routes and policies, and works out where each policy is
//! attached, which Apigee's Scope prefixes name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::policies::{self, Conditions};
use super::{assign, compile, crossref, source, variants};
use crate::diag::{Diagnostic, Diagnostics};
use crate::policy::model::{Policy, PolicyFile};
use crate::runtime::key::{KeySpec, Namespace, ScopeContext};
use crate::runtime::stage;

/// The key of a standards-mode stage: method, path and the whole query string (Vary is handled
/// separately, as pingora-cache variants).
fn http_mode_key(scope: &ScopeContext) -> KeySpec {
    let fragment = |var: &'static str| (Some(var), None);
    KeySpec::from_policy(
        Namespace::Standard,
        Some("http"),
        &[
            fragment("request.verb"),
            fragment("proxy.pathsuffix"),
            fragment("request.querystring"),
        ],
        crate::runtime::key::Scope::Exclusive,
        None,
        scope,
    )
}

/// What a stage is besides its flows and policies.
#[derive(Clone)]
pub(super) struct StageSettings {
    pub(super) name: String,
    pub(super) base_path: String,
    pub(super) api_name: String,
    pub(super) revision: u32,
    pub(super) preserve_host: bool,
    pub(super) resources: Vec<crate::runtime::resource::ResourcePattern>,
    pub(super) cache: stage::StageCache,
}

/// Checks and compiles a stage's flows and policies into the runtime stage.
pub(super) fn build_stage(
    settings: StageSettings,
    src: &source::SrcFlows,
    policies: &BTreeMap<String, Arc<PolicyFile>>,
    failed: &BTreeSet<String>,
    gateway: Option<&stage::GatewaySettings>,
    conditions: &mut Conditions,
    diags: &mut Diagnostics,
) -> Option<stage::Stage> {
    let StageSettings {
        name,
        base_path,
        api_name,
        revision,
        preserve_host,
        resources,
        cache,
    } = settings;
    let reads_request_body = crossref::check_stage(diags, conditions, src, policies, failed);

    let environment = gateway.and_then(|g| g.environment.as_ref());
    if let Some(env) = environment {
        unknown_caches(env, policies, diags);
    }
    let scope = ScopeContext {
        organization: gateway.map_or("cachegate", |g| g.organization.as_str()),
        environment: environment.map(|e| e.name.as_str()),
        // A bundle's second ProxyEndpoint (`shop.admin`) keys as its folder's stage (§2.3).
        stage: stage::folder_stage(&name),
        api_name: &api_name,
        revision,
        proxy_endpoint: &src.proxy.name,
        target_endpoint: crate::runtime::key::DEFAULT_ENDPOINT,
        on_target: false,
    };
    // Each policy in the context of where it runs: one variant per endpoint its Scope prefix
    // names, the steps keyed by their variant (`config::variants`).
    let placed = variants::place(src, policies, scope);
    let (proxy, targets, routes) = compile::endpoints(diags, conditions, &placed.src);
    // A ResponseCache whose condition does not parse compiles to nothing; validation has
    // reported it, so this configuration is never used (the stage is still built, so the
    // checks across stages still run).
    // Policies are keyed by the name steps use: a shared flow's are `<flow>/<policy>`
    // (`config::shared`), and keep their own name inside.
    let mut response_caches = BTreeMap::new();
    for (key, (p, scope)) in &placed.policies {
        if let Policy::ResponseCache(rc) = &p.policy {
            if let Some(compiled) = policies::response_cache(p, rc, scope, conditions, diags) {
                response_caches.insert(key.clone(), Arc::new(compiled));
            }
        }
    }
    let step_policies = placed
        .policies
        .iter()
        .filter_map(|(key, (p, scope))| {
            let scope = *scope;
            let compiled = match &p.policy {
                Policy::ResponseCache(_) => return None,
                Policy::LookupCache(lc) => {
                    stage::StepPolicy::LookupCache(policies::lookup_cache(p, lc, &scope))
                }
                Policy::PopulateCache(pc) => {
                    stage::StepPolicy::PopulateCache(policies::populate_cache(p, pc, &scope))
                }
                Policy::InvalidateCache(ic) => {
                    stage::StepPolicy::InvalidateCache(policies::invalidate_cache(p, ic, &scope))
                }
                Policy::AssignMessage(am) => {
                    stage::StepPolicy::AssignMessage(stage::AssignMessagePolicy {
                        name: p.name().to_owned(),
                        enabled: p.common.enabled,
                        continue_on_error: p.common.continue_on_error,
                        assign: assign::compile(am),
                    })
                }
                Policy::RaiseFault(rf) => {
                    stage::StepPolicy::RaiseFault(stage::AssignMessagePolicy {
                        name: p.name().to_owned(),
                        enabled: p.common.enabled,
                        continue_on_error: p.common.continue_on_error,
                        assign: assign::compile(&rf.fault_response),
                    })
                }
                Policy::FlowCallout(fc) => {
                    stage::StepPolicy::FlowCallout(stage::FlowCalloutPolicy {
                        name: p.name().to_owned(),
                        enabled: p.common.enabled,
                        continue_on_error: p.common.continue_on_error,
                        shared_flow: fc.shared_flow_bundle.value.clone(),
                        parameters: fc
                            .parameters
                            .iter()
                            .map(|x| (x.name.value.clone(), x.reference.clone(), x.literal.clone()))
                            .collect(),
                    })
                }
            };
            Some((key.clone(), Arc::new(compiled)))
        })
        .collect();
    let default_key = match cache.mode {
        stage::CacheMode::Aws => KeySpec::aws_default(&name, &cache.key_parameters),
        // Standards-mode stage caching is the stage's own cache, in an environment too (and
        // each ProxyEndpoint's: its custom prefix names no endpoint).
        stage::CacheMode::Http => http_mode_key(&ScopeContext {
            environment: None,
            stage: &name,
            ..scope
        }),
    };

    Some(stage::Stage {
        name,
        base_path,
        api_name,
        revision,
        preserve_host,
        resources,
        cache,
        proxy,
        targets,
        routes,
        response_caches,
        step_policies,
        default_key,
        reads_request_body,
    })
}

/// In an environment, a `<CacheResource>` must name one of its caches (Apigee refuses to deploy
/// a proxy naming a missing cache: `CacheNotFound`).
fn unknown_caches(
    env: &stage::Environment,
    policies: &BTreeMap<String, Arc<PolicyFile>>,
    diags: &mut Diagnostics,
) {
    for p in policies.values() {
        let resource = match &p.policy {
            Policy::ResponseCache(x) => x.cache_resource.as_ref(),
            Policy::LookupCache(x) => x.cache_resource.as_ref(),
            Policy::PopulateCache(x) => x.cache_resource.as_ref(),
            Policy::InvalidateCache(x) => x.cache_resource.as_ref(),
            Policy::AssignMessage(_) | Policy::FlowCallout(_) | Policy::RaiseFault(_) => None,
        };
        let Some(r) = resource.filter(|r| !r.value.trim().is_empty()) else {
            continue;
        };
        if !env.has_cache(r.value.trim()) {
            let named: Vec<&str> = env
                .caches
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !n.is_empty())
                .collect();
            let hint = if named.is_empty() {
                format!("add [[caches]] name = \"{}\" to gateway.toml, or remove <CacheResource> to use the environment's default cache", r.value.trim())
            } else {
                format!("the caches of environment `{}` are: {}; or add [[caches]] name = \"{}\" to gateway.toml", env.name, named.join(", "), r.value.trim())
            };
            diags.push(
                Diagnostic::error(
                    &p.path,
                    Some(r.pos),
                    format!(
                        "CacheResource `{}` is not a cache of environment `{}`",
                        r.value.trim(),
                        env.name
                    ),
                )
                .with_hint(hint),
            );
        }
    }
}
