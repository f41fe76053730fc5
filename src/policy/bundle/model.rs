//! The parse model of an Apigee API proxy bundle: what `load_bundle` found in the folders, with
//! the position of everything, and nothing resolved yet.
//!
//! Kept in its own file, apart from the loader (`mod.rs`) and the endpoint mapping
//! (`endpoint.rs`), so that both of them import these types one way and neither imports the other.
//! Steps name policies but the policies are not looked up here, RouteRules name TargetEndpoints but
//! the targets are not checked, and Conditions are kept as text: that is the integrator's job, with
//! every file of the bundle in hand.

use std::path::PathBuf;

pub use super::connection::{LoadBalancerSpec, LocalSpec};
use crate::diag::{Located, Pos};

/// One `apiproxy/` folder as read from disk.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The `apiproxy/` directory, as the caller named it.
    pub root: PathBuf,
    /// The one `.xml` file at the root (`<APIProxy>`), when there is exactly one.
    pub descriptor: Option<PathBuf>,
    /// `<APIProxy name="…">`; without a usable descriptor, the bundle's folder name at 1:1 (there
    /// is no element to point at).
    pub name: Option<Located<String>>,
    /// `<APIProxy revision="…">`, when present and not empty.
    pub revision: Option<Located<String>>,
    /// `proxies/*.xml` that could be read, sorted by file name.
    pub proxies: Vec<EndpointFile>,
    /// `targets/*.xml` that could be read, sorted by file name.
    pub targets: Vec<EndpointFile>,
    /// `policies/*.xml`, sorted by file name; listed, not parsed.
    pub policy_files: Vec<PathBuf>,
}

/// One endpoint file and what it declares.
#[derive(Debug, Clone)]
pub struct EndpointFile {
    /// The file, under the bundle's root as the caller named it.
    pub path: PathBuf,
    /// Its `<ProxyEndpoint>` or `<TargetEndpoint>`.
    pub endpoint: Endpoint,
}

/// Which side of the proxy an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// `proxies/*.xml`, `<ProxyEndpoint>`: where requests come in.
    Proxy,
    /// `targets/*.xml`, `<TargetEndpoint>`: the backend a RouteRule sends requests to.
    Target,
}

impl EndpointKind {
    /// The root element of this kind's files: `ProxyEndpoint` or `TargetEndpoint`.
    pub fn element(self) -> &'static str {
        match self {
            Self::Proxy => "ProxyEndpoint",
            Self::Target => "TargetEndpoint",
        }
    }

    /// The bundle folder holding this kind's files: `proxies` or `targets`.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Proxy => "proxies",
            Self::Target => "targets",
        }
    }
}

/// A `<ProxyEndpoint>` or `<TargetEndpoint>`. The fields that belong to one kind only are empty
/// (or `None`) for the other.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Proxy or target.
    pub kind: EndpointKind,
    /// `@name` (required).
    pub name: Located<String>,
    /// Position of the root element.
    pub pos: Pos,
    /// ProxyEndpoint `HTTPProxyConnection/BasePath`.
    pub base_path: Option<Located<String>>,
    /// `PreFlow`: runs first on each side.
    pub preflow: FlowSteps,
    /// `Flows/Flow` in document order (the first whose Condition holds runs).
    pub flows: Vec<Flow>,
    /// `PostFlow`: runs last on each side.
    pub postflow: FlowSteps,
    /// ProxyEndpoint `PostClientFlow`: response steps run after the response is sent.
    pub post_client_flow: FlowSteps,
    /// `FaultRules/FaultRule` in document order.
    pub fault_rules: Vec<FaultRule>,
    /// `DefaultFaultRule`.
    pub default_fault_rule: Option<FaultRule>,
    /// ProxyEndpoint `RouteRule`s in document order.
    pub route_rules: Vec<RouteRule>,
    /// TargetEndpoint `HTTPTargetConnection` or `LocalTargetConnection`.
    pub connection: Option<Connection>,
    /// TargetEndpoint `HTTPTargetConnection/SSLInfo`.
    pub ssl: Option<super::ssl::SslInfoSpec>,
    /// Elements present that cachegate does not implement, for the integrator to refuse or
    /// warn about by name: e.g. "HTTPTargetConnection/Authentication",
    /// "EventFlow", "HTTPTargetConnection/HealthMonitor", "Step/FaultRules" (non-empty only),
    /// "BasePath with *". Each with the element's position.
    pub unsupported: Vec<Located<String>>,
}

/// A `<Step>`: the policy it runs and when.
#[derive(Debug, Clone)]
pub struct Step {
    /// `<Name>`: the policy's `name` attribute (not its file name).
    pub name: Located<String>,
    /// `<Condition>`, trimmed; `None` when absent or blank (the step always runs).
    pub condition: Option<Located<String>>,
}

/// The steps of one flow, per direction.
#[derive(Debug, Clone, Default)]
pub struct FlowSteps {
    /// `<Request>` steps in order.
    pub request: Vec<Step>,
    /// `<Response>` steps in order.
    pub response: Vec<Step>,
}

/// A conditional `<Flow>`.
#[derive(Debug, Clone)]
pub struct Flow {
    /// `@name`.
    pub name: Located<String>,
    /// `<Condition>`; `None` = always matches.
    pub condition: Option<Located<String>>,
    /// Its `<Request>` and `<Response>` steps.
    pub steps: FlowSteps,
}

/// A `<RouteRule>`: where requests go when its Condition holds.
#[derive(Debug, Clone)]
pub struct RouteRule {
    /// `@name`.
    pub name: Located<String>,
    /// `<Condition>`; `None` = always matches.
    pub condition: Option<Located<String>>,
    /// The destination.
    pub to: RouteTarget,
}

/// Where a RouteRule sends the request.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    /// `<TargetEndpoint>`: a TargetEndpoint of this bundle, by name.
    Endpoint(Located<String>),
    /// `<URL>`: a backend URL, bypassing any TargetEndpoint.
    Url(Located<String>),
    /// Neither: a null route; the proxy's own policies answer. (Also the value for a RouteRule
    /// with an `<IntegrationEndpoint>`, which is then in [`Endpoint::unsupported`] and must not
    /// run as a null route.)
    Null,
}

/// A `<FaultRule>` or the `<DefaultFaultRule>`: the steps run on the error response when its
/// condition holds (apigee-bundles.md §5).
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// `@name` (optional on DefaultFaultRule).
    pub name: Option<Located<String>>,
    /// `<Condition>`; `None` = always matches.
    pub condition: Option<Located<String>>,
    /// `<Step>`s in order.
    pub steps: Vec<Step>,
    /// DefaultFaultRule `<AlwaysEnforce>`: run even after a FaultRule ran.
    pub always_enforce: bool,
}

/// How a TargetEndpoint reaches its backend.
#[derive(Debug, Clone)]
pub enum Connection {
    /// `HTTPTargetConnection/URL` (may hold `{variable}` templates).
    Url(Located<String>),
    /// `HTTPTargetConnection/LoadBalancer`: TargetServers (environment resources) by name, the
    /// balancing settings, `HTTPTargetConnection/Path` and `HealthMonitor`.
    LoadBalancer(Box<LoadBalancerSpec>),
    /// `LocalTargetConnection`: another proxy, called in-process.
    Local(LocalSpec),
}

/// A policy file whose root element cachegate may not run: its kind and name, for diagnostics.
#[derive(Debug, Clone)]
pub struct PolicyHeader {
    /// The file, as the caller named it.
    pub path: PathBuf,
    /// The root element's name: the policy kind (`VerifyAPIKey`, `ResponseCache`, …).
    pub kind: Located<String>,
    /// `@name`, when present and not empty.
    pub name: Option<Located<String>>,
    /// `@enabled` (default true): a disabled policy never runs even when a Step names it.
    pub enabled: bool,
    /// `@continueOnError` (default false); no skipped or refused policy needs it yet.
    #[allow(dead_code)]
    pub continue_on_error: bool,
}

/// One `sharedflowbundle/` folder as read from disk: a flow of Steps a FlowCallout (or a flow
/// hook) runs in place, and the policies its Steps name (apigee-bundles.md §1.2, §6).
#[derive(Debug, Clone)]
pub struct SharedFlowBundle {
    /// The one `.xml` file at the root (`<SharedFlowBundle>`), when there is exactly one.
    pub descriptor: Option<PathBuf>,
    /// `<SharedFlowBundle name="…">`, which FlowCallouts name; without a usable descriptor, the
    /// bundle's folder name at 1:1.
    pub name: Option<Located<String>>,
    /// `sharedflows/<file>.xml`: the one `<SharedFlow>`.
    pub flow: Option<SharedFlowFile>,
    /// `policies/*.xml`, sorted by file name; listed, not parsed.
    pub policy_files: Vec<PathBuf>,
}

/// A `<SharedFlow name="default">`: Steps in order (no Request/Response split, no routes).
#[derive(Debug, Clone)]
pub struct SharedFlowFile {
    /// The file.
    pub path: PathBuf,
    /// Its Steps, in order.
    pub steps: Vec<Step>,
}
