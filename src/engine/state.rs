//! What a request carries while the engine decides it: its mode, the state its steps build up
//! (selection, variables, where the request steps stopped), and the unchanging inputs (`Env`)
//! the flow variables are read from.

use std::collections::HashMap;

use pingora::http::{RequestHeader, ResponseHeader};

use crate::engine::facts::{cache_method, resource_path};
use crate::runtime::flow::vars::{Body, RequestVars};
use crate::runtime::stage::{folder_stage, Flow, RuntimeConfig, Selection, Stage};

/// Whether a request's steps act on the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serving the request: PopulateCache stores and InvalidateCache purges.
    Run,
    /// Asking what the request means (admin API, `explain`): every decision is made and
    /// LookupCache reads, but nothing is stored or purged.
    DryRun,
}

/// A segment of the request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Segment {
    /// ProxyEndpoint PreFlow.
    #[default]
    ProxyPre,
    /// ProxyEndpoint conditional Flow (chosen on entry).
    ProxyFlow,
    /// ProxyEndpoint PostFlow.
    ProxyPost,
    /// RouteRules (evaluated on entry).
    Route,
    /// TargetEndpoint PreFlow.
    TargetPre,
    /// TargetEndpoint conditional Flow (chosen on entry).
    TargetFlow,
    /// TargetEndpoint PostFlow.
    TargetPost,
    /// Every request step has run.
    Done,
}

/// The next request step to run: a segment and an index into its steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The segment.
    pub seg: Segment,
    /// The next step's index in it.
    pub i: usize,
}

impl Cursor {
    /// Whether every request step has run.
    pub fn done(&self) -> bool {
        self.seg == Segment::Done
    }
}

/// What a request has gathered so far: where it matched, and the variables its steps set.
#[derive(Debug, Default)]
pub struct RequestState {
    /// The path below the base path (AssignMessage `<Set><Path>` may change it).
    pub suffix: String,
    /// Metrics label of the matched resource template (or flow), never the raw path.
    pub resource: String,
    /// Path parameters bound by the matched resource template.
    pub path_params: Vec<(String, String)>,
    /// The flows, route and TargetEndpoint the request selected.
    pub sel: Selection,
    /// The next request step: where the walk stopped for the ResponseCache lookup.
    pub cursor: Cursor,
    /// Variables set by policies during this request.
    pub vars: HashMap<String, String>,
    /// `messageid`, made when first read.
    pub message_id: std::sync::OnceLock<String>,
}

impl RequestState {
    /// The state of a request just routed.
    pub fn new(suffix: String) -> Self {
        Self {
            suffix,
            ..Self::default()
        }
    }

    /// The bound path parameters, borrowed in the shape `RequestVars` takes.
    pub fn params(&self) -> Vec<(&str, &str)> {
        self.path_params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// The matched ProxyEndpoint flow.
    pub fn flow<'s>(&self, stage: &'s Stage) -> Option<&'s Flow> {
        self.sel.flow.and_then(|i| stage.proxy.flows.get(i))
    }
}

/// The largest request body the flow variables see (`request.content`, `request.formparam.*`).
/// The proxy reads the body before the policies run and Pingora forwards what was read from its
/// retry buffer, which holds 64 KiB (`proxy::body`); a longer body streams to the target
/// unread and the variables are null.
pub const MAX_REQUEST_CONTENT: usize = 64 * 1024;

/// A request body kept for the flow variables (owned by the request; [`Env`] lends it).
#[derive(Debug, Default)]
pub enum KeptBody {
    /// No body, or a stage whose policies never read it.
    #[default]
    Absent,
    /// The body, as text.
    Text(String),
    /// A body that was not read, or is not text (see [`Body::Withheld`]).
    Withheld,
}

impl KeptBody {
    /// A body read whole: text of at most [`MAX_REQUEST_CONTENT`] bytes. Longer or not UTF-8:
    /// withheld (replacing invalid bytes would make different bodies one key fragment).
    pub fn read(body: Vec<u8>) -> Self {
        if body.is_empty() {
            return KeptBody::Absent;
        }
        if body.len() > MAX_REQUEST_CONTENT {
            return KeptBody::Withheld;
        }
        String::from_utf8(body).map_or(KeptBody::Withheld, KeptBody::Text)
    }

    /// The flow variables' view of it.
    pub fn view(&self) -> Body<'_> {
        match self {
            KeptBody::Absent => Body::Absent,
            KeptBody::Text(s) => Body::Text(s),
            KeptBody::Withheld => Body::Withheld,
        }
    }
}

/// What does not change while a request is decided: the configuration, the stage, the client,
/// the request body.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The configuration snapshot the request started with.
    pub config: &'a RuntimeConfig,
    /// The request's stage.
    pub stage: &'a Stage,
    /// The client's address (`client.ip`).
    pub client_ip: &'a str,
    /// The request body, read only for a stage whose policies use it
    /// (`Stage::reads_request_body`; see [`KeptBody`]).
    pub request_body: Body<'a>,
}

impl<'a> Env<'a> {
    /// The flow variables of a request (and of its response, once there is one).
    pub fn vars<'b>(
        &self,
        req: &'b RequestHeader,
        state: &'b RequestState,
        params: &'b [(&'b str, &'b str)],
        response: Option<&'b ResponseHeader>,
    ) -> RequestVars<'b>
    where
        'a: 'b,
    {
        let uri = &req.uri;
        RequestVars {
            method: req.method.as_str(),
            uri: uri.path_and_query().map_or("/", |pq| pq.as_str()),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: &req.headers,
            body: self.request_body,
            form: crate::engine::facts::is_form(&req.headers),
            base_path: &self.stage.base_path,
            path_suffix: &state.suffix,
            path_params: params,
            client_ip: self.client_ip,
            // Apigee's environment: the shared one, else the stage (its folder's, for a
            // bundle's later ProxyEndpoint).
            stage: self
                .config
                .gateway
                .environment
                .as_ref()
                .map_or(folder_stage(&self.stage.name), |e| e.name.as_str()),
            organization: &self.config.gateway.organization,
            api_name: &self.stage.api_name,
            revision: self.stage.revision,
            flow: state.flow(self.stage).map(|f| f.name.as_str()),
            proxy_name: &self.stage.proxy.name,
            target_name: self
                .stage
                .target_endpoint(&state.sel)
                .map(|t| t.endpoint.name.as_str()),
            route_name: state
                .sel
                .route
                .and_then(|r| self.stage.routes.get(r))
                .map(|r| r.name.as_str()),
            target_url: state
                .sel
                .route
                .and_then(|_| self.stage.upstream(&state.sel))
                .map(|t| t.url.as_str()),
            response_status: response.map(|r| r.status.as_u16()),
            response_headers: response.map(|r| &r.headers),
            response_reason: response.and_then(|r| {
                r.get_reason_phrase()
                    .or_else(|| r.status.canonical_reason())
            }),
            custom: &state.vars,
            message_id: &state.message_id,
        }
    }

    /// The stage TTL for this request's method and resource (see `plan::ttl_for`).
    pub fn stage_ttl(&self, req: &RequestHeader, state: &RequestState) -> u64 {
        let cache = &self.stage.cache;
        cache
            .override_ttl(
                cache_method(req.method.as_str()),
                resource_path(&state.suffix),
            )
            .unwrap_or(cache.ttl_secs)
    }
}
