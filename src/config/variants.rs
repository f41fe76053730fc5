//! One compiled variant of a cache policy per endpoint its Scope prefix names.
//!
//! Apigee's Proxy, Target and Exclusive prefixes name an endpoint, and which one depends on
//! where the policy *runs* (apigee-bundles.md §8 "How Scope prefixes depend on the bundle";
//! apigee-aws-semantics.md §1.2): an Exclusive LookupCache attached in TargetEndpoints `a` and
//! `b` reads `org__env__api__rev__a__…` from one and `…__b__…` from the other. So a policy is
//! compiled once per distinct endpoint its prefix names. When there is more than one, every step
//! refers to its variant by the key `<policy>@<endpoint>`, the way a shared flow's policies are
//! keyed `<flow>/<policy>` (`config::shared`); the compiled policy keeps its own name, for its
//! variables (`lookupcache.<name>.*`) and metrics. A policy whose prefix names one endpoint
//! wherever it runs (Global, Application, a `<Prefix>`, Proxy scope with one ProxyEndpoint)
//! keeps its plain key. Shared-flow steps are inlined into the caller's endpoints before this
//! runs, so their variants follow the endpoint of the FlowCallout step.
//!
//! A ResponseCache keeps one compilation: its key is computed at lookup and reused when storing
//! (§4.3), so its two halves must not be told apart.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::source::{SrcEndpoint, SrcFlows};
use crate::policy::model::{Policy, PolicyFile};
use crate::runtime::key::{Scope, ScopeContext};

/// Separates a policy's key from the endpoint its variant's prefix names.
pub(crate) const SEPARATOR: char = '@';

/// The key steps use for the variant of `policy` whose prefix names `endpoint`.
pub(crate) fn qualified(policy: &str, endpoint: &str) -> String {
    format!("{policy}{SEPARATOR}{endpoint}")
}

/// The policies to compile, by the key steps use, with the file and the context each is
/// compiled in; and the steps, with variant keys where a policy has several.
pub(super) struct Placed<'s> {
    /// The stage's endpoints, their steps keyed as in `policies`.
    pub src: SrcFlows,
    /// Key → (policy, the context its Scope prefix is built in).
    pub policies: BTreeMap<String, (Arc<PolicyFile>, ScopeContext<'s>)>,
}

/// The Scope a policy's key prefix takes from where it runs: a cache policy's, unless a
/// `<Prefix>` replaces the Scope prefix. A ResponseCache has one key for both halves.
fn placed_scope(p: &Policy) -> Option<Scope> {
    let (scope, prefix) = match p {
        Policy::LookupCache(x) => (x.scope, &x.cache_key.prefix),
        Policy::PopulateCache(x) => (x.scope, &x.cache_key.prefix),
        Policy::InvalidateCache(x) => (x.scope, &x.cache_key.prefix),
        Policy::ResponseCache(_)
        | Policy::AssignMessage(_)
        | Policy::FlowCallout(_)
        | Policy::RaiseFault(_) => return None,
    };
    prefix
        .as_ref()
        .is_none_or(|p| p.value.is_empty())
        .then_some(scope)
}

/// The stage's endpoints with whether each is a TargetEndpoint.
fn endpoints(src: &SrcFlows) -> impl Iterator<Item = (&SrcEndpoint, bool)> {
    std::iter::once((&src.proxy, false)).chain(src.targets.iter().map(|t| (&t.endpoint, true)))
}

/// Works out, for each policy, the context of every place it runs and so its variants.
/// `base` is the stage's context (its ProxyEndpoint's, not on a target).
pub(super) fn place<'s>(
    src: &'s SrcFlows,
    files: &BTreeMap<String, Arc<PolicyFile>>,
    base: ScopeContext<'s>,
) -> Placed<'s> {
    let runs_in = |ep: &SrcEndpoint, key: &str| ep.every_step().any(|s| s.policy == key);
    let mut policies = BTreeMap::new();
    // (endpoint index, key) → the variant key its steps use.
    let mut renames: BTreeMap<(usize, String), String> = BTreeMap::new();
    for (key, file) in files {
        // Target scope run in the ProxyEndpoint names the first TargetEndpoint that runs the
        // policy, else the stage's first (which one Apigee names there is not documented).
        let first_target = src
            .targets
            .iter()
            .find(|t| runs_in(&t.endpoint, key))
            .or(src.targets.first())
            .map_or(base.target_endpoint, |t| t.endpoint.name.as_str());
        let context = |ep: &'s SrcEndpoint, on_target: bool| ScopeContext {
            on_target,
            target_endpoint: if on_target {
                ep.name.as_str()
            } else {
                first_target
            },
            ..base
        };
        let places: Vec<(usize, ScopeContext<'s>)> = endpoints(src)
            .enumerate()
            .filter(|(_, (ep, _))| runs_in(ep, key))
            .map(|(i, (ep, on_target))| (i, context(ep, on_target)))
            .collect();
        let mut named: Vec<&str> = placed_scope(&file.policy)
            .map(|scope| {
                places
                    .iter()
                    .filter_map(|(_, c)| c.endpoint_named(scope))
                    .collect()
            })
            .unwrap_or_default();
        named.sort_unstable();
        named.dedup();
        if let (Some(scope), true) = (placed_scope(&file.policy), named.len() > 1) {
            for (i, ctx) in places {
                let Some(endpoint) = ctx.endpoint_named(scope) else {
                    continue;
                };
                let variant = qualified(key, endpoint);
                policies
                    .entry(variant.clone())
                    .or_insert_with(|| (Arc::clone(file), ctx));
                renames.insert((i, key.clone()), variant);
            }
        } else {
            // The request side before the response side, the ProxyEndpoint first: Exclusive
            // names the ProxyEndpoint when the policy runs there (a ResponseCache's lookup).
            let on_target = !runs_in(&src.proxy, key) && places.iter().any(|(i, _)| *i > 0);
            let ctx = ScopeContext {
                on_target,
                target_endpoint: first_target,
                ..base
            };
            policies.insert(key.clone(), (Arc::clone(file), ctx));
        }
    }
    let mut out = src.clone();
    let eps =
        std::iter::once(&mut out.proxy).chain(out.targets.iter_mut().map(|t| &mut t.endpoint));
    for (i, ep) in eps.enumerate() {
        for step in ep.step_lists_mut().flatten() {
            if let Some(variant) = renames.get(&(i, step.policy.clone())) {
                step.policy.clone_from(variant);
            }
        }
    }
    Placed { src: out, policies }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads a bundle stage `api` whose ProxyEndpoint `pe` runs `on_proxy` and whose
    /// TargetEndpoints (named by `targets`) each run `on_targets`, with the policy `P` of
    /// `scope`; returns the compiled policy names and their key prefixes.
    fn compiled(pe: &str, on_proxy: bool, targets: &[&str], scope: &str) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join("api/apiproxy").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let step = "<PreFlow><Request><Step><Name>P</Name></Step></Request></PreFlow>";
        write("api.xml", r#"<APIProxy name="api" revision="2"/>"#);
        let routes: String = targets
            .iter()
            .map(|t| format!("<RouteRule name=\"{t}\"><Condition>request.header.t = \"{t}\"</Condition><TargetEndpoint>{t}</TargetEndpoint></RouteRule>"))
            .collect();
        write(
            &format!("proxies/{pe}.xml"),
            &format!(
                "<ProxyEndpoint name=\"{pe}\"><HTTPProxyConnection><BasePath>/api</BasePath></HTTPProxyConnection>{}{routes}</ProxyEndpoint>",
                if on_proxy { step } else { "" }
            ),
        );
        for t in targets {
            write(
                &format!("targets/{t}.xml"),
                &format!("<TargetEndpoint name=\"{t}\">{step}<HTTPTargetConnection><URL>http://127.0.0.1:9/</URL></HTTPTargetConnection></TargetEndpoint>"),
            );
        }
        write(
            "policies/P.xml",
            &format!("<LookupCache name=\"P\"><Scope>{scope}</Scope><CacheKey><KeyFragment>k</KeyFragment></CacheKey><AssignTo>v</AssignTo></LookupCache>"),
        );
        let out = crate::config::load(dir.path());
        let config = out.config.unwrap_or_else(|| panic!("{}", out.diagnostics));
        let stage = &config.stages[0];
        stage
            .step_policies
            .iter()
            .map(|(key, p)| {
                let crate::runtime::stage::StepPolicy::LookupCache(lc) = &**p else {
                    panic!("{key}");
                };
                assert_eq!(lc.common.name, "P", "a variant keeps the policy's name");
                (key.clone(), lc.common.key.build_values(Vec::new()).readable)
            })
            .collect()
    }

    #[test]
    fn a_variant_key_names_the_policy_and_the_endpoint() {
        assert_eq!(qualified("LC-token", "a"), "LC-token@a");
        assert_eq!(qualified("flow/LC-token", "b"), "flow/LC-token@b");
    }

    #[test]
    fn exclusive_in_two_target_endpoints_compiles_one_variant_each() {
        assert_eq!(
            compiled("edge", false, &["a", "b"], "Exclusive"),
            [
                ("P@a".to_owned(), "cachegate__api__api__2__a".to_owned()),
                ("P@b".to_owned(), "cachegate__api__api__2__b".to_owned()),
            ]
        );
    }

    #[test]
    fn exclusive_in_the_proxy_and_a_target_endpoint_names_each() {
        assert_eq!(
            compiled("edge", true, &["a"], "Exclusive"),
            [
                ("P@a".to_owned(), "cachegate__api__api__2__a".to_owned()),
                (
                    "P@edge".to_owned(),
                    "cachegate__api__api__2__edge".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn one_endpoint_named_wherever_it_runs_keeps_the_plain_key() {
        // Both endpoints are called `default`: one prefix, one policy.
        assert_eq!(
            compiled("default", true, &["default"], "Exclusive"),
            [("P".to_owned(), "cachegate__api__api__2__default".to_owned())]
        );
        assert_eq!(
            compiled("edge", true, &["a", "b"], "Proxy"),
            [("P".to_owned(), "cachegate__api__api__2__edge".to_owned())]
        );
        assert_eq!(
            compiled("edge", true, &["a", "b"], "Global"),
            [("P".to_owned(), "cachegate__api".to_owned())]
        );
        assert_eq!(
            compiled("edge", false, &["a", "b"], "Application"),
            [("P".to_owned(), "cachegate__api__api".to_owned())]
        );
    }

    #[test]
    fn target_scope_names_the_target_endpoint_it_runs_in() {
        // In the ProxyEndpoint, Target names the first TargetEndpoint that runs it.
        assert_eq!(
            compiled("edge", true, &["a", "b"], "Target"),
            [
                ("P@a".to_owned(), "cachegate__api__api__2__a".to_owned()),
                ("P@b".to_owned(), "cachegate__api__api__2__b".to_owned()),
            ]
        );
    }
}
