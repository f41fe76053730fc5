//! A stage's endpoints, flows, steps and routes, wherever they were written.
//!
//! A stage.toml stage writes one ProxyEndpoint's and one TargetEndpoint's flows in TOML and has
//! one target; an Apigee bundle writes ProxyEndpoint and TargetEndpoint XML files with
//! RouteRules. Both are turned into this one model, where every step, flow and route carries its
//! own file and position, so the compilation (`compile/flows.rs`) and the cross-file checks
//! (`crossref.rs`) are written once and point at the right line of the right file whichever
//! syntax it was.

use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use crate::config::file::{FileFlow, FileStage, FileStep, FileSteps};
use crate::diag::Pos;
use crate::runtime::key::DEFAULT_ENDPOINT;
use crate::runtime::stage::Target;

/// Where something was written.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// The file.
    pub file: Arc<Path>,
    /// Line and column, when known.
    pub pos: Option<Pos>,
}

/// A step: a policy name and an optional condition.
#[derive(Debug, Clone)]
pub(crate) struct SrcStep {
    /// The policy's `name`.
    pub policy: String,
    /// The step's condition text, and where it is written.
    pub condition: Option<(String, Site)>,
    /// Where the step is written.
    pub at: Site,
    /// A FlowCallout: how many of the following steps are its shared flow's (`config::shared`).
    pub span: usize,
    /// A FlowCallout with `continueOnError="true"`: a failure inside its shared flow leaves the
    /// shared flow instead of ending the request.
    pub tolerant: bool,
}

/// The steps of `list` that `keep` accepts. A FlowCallout step that is not kept goes with its
/// shared flow's steps; a kept one counts only its kept steps in its `span`.
pub(crate) fn retain_steps(list: &[SrcStep], keep: &dyn Fn(&SrcStep) -> bool) -> Vec<SrcStep> {
    let mut out = Vec::with_capacity(list.len());
    let mut i = 0;
    while let Some(s) = list.get(i) {
        let end = (i + 1 + s.span).min(list.len());
        let inner = retain_steps(list.get(i + 1..end).unwrap_or(&[]), keep);
        if keep(s) {
            out.push(SrcStep {
                span: inner.len(),
                ..s.clone()
            });
            out.extend(inner);
        }
        i = end;
    }
    out
}

/// Request and response steps of one flow.
#[derive(Debug, Clone, Default)]
pub(crate) struct SrcSteps {
    /// Request steps, in order.
    pub request: Vec<SrcStep>,
    /// Response steps, in order.
    pub response: Vec<SrcStep>,
}

/// A conditional flow.
#[derive(Debug, Clone)]
pub(crate) struct SrcFlow {
    /// Its name.
    pub name: String,
    /// Where the name is written.
    pub at: Site,
    /// Its condition and where that is written.
    pub condition: Option<(String, Site)>,
    /// Its steps.
    pub steps: SrcSteps,
}

/// One endpoint's flows.
#[derive(Debug, Clone)]
pub(crate) struct SrcEndpoint {
    /// The endpoint's name (`default` for stage.toml).
    pub name: String,
    /// PreFlow.
    pub preflow: SrcSteps,
    /// Conditional flows, in order.
    pub flows: Vec<SrcFlow>,
    /// PostFlow.
    pub postflow: SrcSteps,
    /// FaultRules, in document order.
    pub fault_rules: Vec<SrcFaultRule>,
    /// DefaultFaultRule.
    pub default_fault_rule: Option<SrcFaultRule>,
    /// PostClientFlow response steps (a ProxyEndpoint's): run after the response is sent.
    pub post_client_flow: Vec<SrcStep>,
}

/// A FaultRule or the DefaultFaultRule: steps run on the error response when its condition
/// holds (apigee-bundles.md §5).
#[derive(Debug, Clone)]
pub(crate) struct SrcFaultRule {
    /// Its name (empty for an unnamed DefaultFaultRule).
    pub name: String,
    /// Where it is written.
    pub at: Site,
    /// Its condition (none: always).
    pub condition: Option<(String, Site)>,
    /// Its steps, in order.
    pub steps: Vec<SrcStep>,
    /// DefaultFaultRule `<AlwaysEnforce>`.
    pub always_enforce: bool,
}

impl SrcEndpoint {
    /// Every step of the endpoint, in PreFlow, flows, PostFlow order, request side first, then
    /// those of its fault rules.
    pub fn every_step(&self) -> impl Iterator<Item = &SrcStep> {
        self.request_steps()
            .chain(self.response_steps())
            .chain(self.fault_rules().flat_map(|r| &r.steps))
            .chain(&self.post_client_flow)
    }

    /// Its FaultRules, then its DefaultFaultRule.
    pub fn fault_rules(&self) -> impl Iterator<Item = &SrcFaultRule> {
        self.fault_rules.iter().chain(&self.default_fault_rule)
    }

    /// Every list of steps it has (each side of each flow, each fault rule), for changes that
    /// apply to all of them.
    pub fn step_lists_mut(&mut self) -> impl Iterator<Item = &mut Vec<SrcStep>> {
        [&mut self.preflow, &mut self.postflow]
            .into_iter()
            .chain(self.flows.iter_mut().map(|f| &mut f.steps))
            .flat_map(|s| [&mut s.request, &mut s.response])
            .chain(
                self.fault_rules
                    .iter_mut()
                    .chain(self.default_fault_rule.as_mut())
                    .map(|r| &mut r.steps),
            )
            .chain(std::iter::once(&mut self.post_client_flow))
    }

    /// Every request-side step.
    pub fn request_steps(&self) -> impl Iterator<Item = &SrcStep> {
        self.preflow
            .request
            .iter()
            .chain(self.flows.iter().flat_map(|f| &f.steps.request))
            .chain(&self.postflow.request)
    }

    /// Every response-side step.
    pub fn response_steps(&self) -> impl Iterator<Item = &SrcStep> {
        self.preflow
            .response
            .iter()
            .chain(self.flows.iter().flat_map(|f| &f.steps.response))
            .chain(&self.postflow.response)
    }
}

/// A TargetEndpoint: its flows and its (already validated) upstream.
#[derive(Debug, Clone)]
pub(crate) struct SrcTarget {
    /// Its flows.
    pub endpoint: SrcEndpoint,
    /// Where it forwards.
    pub target: Target,
}

/// Where a route sends a request.
#[derive(Debug, Clone)]
pub(crate) enum SrcRouteTo {
    /// A TargetEndpoint by name.
    Endpoint(String),
    /// A URL (validated).
    Url(Target),
    /// No target.
    Null,
}

/// A RouteRule.
#[derive(Debug, Clone)]
pub(crate) struct SrcRoute {
    /// Its name.
    pub name: String,
    /// Where it is written.
    pub at: Site,
    /// Its condition.
    pub condition: Option<(String, Site)>,
    /// Its destination.
    pub to: SrcRouteTo,
}

/// A stage's endpoints and routes.
#[derive(Debug, Clone)]
pub(crate) struct SrcFlows {
    /// The ProxyEndpoint.
    pub proxy: SrcEndpoint,
    /// The TargetEndpoints.
    pub targets: Vec<SrcTarget>,
    /// The RouteRules, in order.
    pub routes: Vec<SrcRoute>,
}

impl SrcFlows {
    /// Every endpoint: the ProxyEndpoint, then each TargetEndpoint.
    pub fn endpoints(&self) -> impl Iterator<Item = &SrcEndpoint> {
        std::iter::once(&self.proxy).chain(self.targets.iter().map(|t| &t.endpoint))
    }

    /// Every step of every endpoint.
    pub fn every_step(&self) -> impl Iterator<Item = &SrcStep> {
        self.endpoints().flat_map(SrcEndpoint::every_step)
    }

    /// Every request-side step of every endpoint.
    pub fn request_steps(&self) -> impl Iterator<Item = &SrcStep> {
        self.endpoints().flat_map(SrcEndpoint::request_steps)
    }

    /// Every response-side step of every endpoint.
    pub fn response_steps(&self) -> impl Iterator<Item = &SrcStep> {
        self.endpoints().flat_map(SrcEndpoint::response_steps)
    }

    /// A stage.toml stage: its top-level flows are the ProxyEndpoint's, `[target_endpoint]`
    /// holds its one TargetEndpoint's, reached by one unconditional route. Endpoints and route
    /// are called `default` unless `proxy_endpoint`, `target_endpoint.name` and `route_rule`
    /// name them.
    pub fn from_stage_toml(path: &Path, text: &str, file: &FileStage, target: Target) -> Self {
        let file_arc: Arc<Path> = Arc::from(path);
        let site = |span: std::ops::Range<usize>| Site {
            file: Arc::clone(&file_arc),
            pos: (span.end > 0).then(|| Pos::from_offset(text, span.start)),
        };
        let steps = |list: &[Spanned<FileStep>]| -> Vec<SrcStep> {
            list.iter()
                .map(|s| SrcStep {
                    policy: s.get_ref().policy.clone(),
                    // A step's condition is inside the step's value: point at the step.
                    condition: s.get_ref().condition.clone().map(|c| (c, site(s.span()))),
                    at: site(s.span()),
                    span: 0,
                    tolerant: false,
                })
                .collect()
        };
        let both = |s: &FileSteps| SrcSteps {
            request: steps(&s.request),
            response: steps(&s.response),
        };
        let endpoint = |name: Option<&Spanned<String>>,
                        preflow: &FileSteps,
                        flows: &[FileFlow],
                        postflow: &FileSteps| SrcEndpoint {
            name: name.map_or(DEFAULT_ENDPOINT, |n| n.get_ref()).to_owned(),
            preflow: both(preflow),
            flows: flows
                .iter()
                .map(|f| SrcFlow {
                    name: f.name.get_ref().clone(),
                    at: site(f.name.span()),
                    condition: f
                        .condition
                        .as_ref()
                        .map(|c| (c.get_ref().clone(), site(c.span()))),
                    steps: both(&FileSteps {
                        request: f.request.clone(),
                        response: f.response.clone(),
                    }),
                })
                .collect(),
            postflow: both(postflow),
            fault_rules: Vec::new(),
            default_fault_rule: None,
            post_client_flow: Vec::new(),
        };
        let te = file.target_endpoint.clone().unwrap_or_default();
        let target_endpoint = endpoint(te.name.as_ref(), &te.preflow, &te.flows, &te.postflow);
        let route_name = file.route_rule.as_ref();
        SrcFlows {
            proxy: endpoint(
                file.proxy_endpoint.as_ref(),
                &file.preflow,
                &file.flows,
                &file.postflow,
            ),
            routes: vec![SrcRoute {
                name: route_name
                    .map_or(DEFAULT_ENDPOINT, |n| n.get_ref())
                    .to_owned(),
                at: site(route_name.map_or(0..0, Spanned::span)),
                condition: None,
                to: SrcRouteTo::Endpoint(target_endpoint.name.clone()),
            }],
            targets: vec![SrcTarget {
                endpoint: target_endpoint,
                target,
            }],
        }
    }
}
