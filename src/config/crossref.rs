//! Cross-file checks of one stage: flows name existing policies, ResponseCache is attached the
//! way Apigee requires, policy TTLs longer than cachegate keeps entries are warned about, and
//! every variable reference can resolve.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::policies::Conditions;
use super::source::{Site, SrcEndpoint, SrcFlows, SrcStep, SrcSteps};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::policy::model::{
    AssignMessage, CacheKey, Expiry, ExpirySettings, MessageTarget, Policy, PolicyFile, PolicyKind,
};
use crate::runtime::flow::template::Template;
use crate::runtime::flow::vars::{classify, reads_request_body, suggest, VarKind};
use crate::runtime::ttl::{APIGEE_MAX_TTL_SECS, POLICY_MAX_TTL_SECS};

/// Where a reference sits, and how strict to be about custom variables.
struct RefSite<'a> {
    file: &'a std::path::Path,
    pos: Option<Pos>,
    /// Kept for call sites' intent: conditions may legitimately test unset variables.
    #[allow(dead_code)]
    lenient: bool,
}

/// The warning for a policy TTL longer than cachegate (and Apigee) keeps entries.
fn ttl_cut(p: &PolicyFile, pos: Pos, what: &str) -> Diagnostic {
    Diagnostic::warning(
        &p.path,
        Some(pos),
        format!("{what} can be longer than {POLICY_MAX_TTL_SECS} seconds, the longest an entry is kept: entries are refetched after {POLICY_MAX_TTL_SECS} s"),
    )
    .with_hint(format!("{APIGEE_MAX_TTL_SECS} seconds (30 days) is Apigee's maximum too"))
}

struct Checker<'a> {
    policies: &'a BTreeMap<String, Arc<PolicyFile>>,
    assigned: BTreeSet<String>,
    diags: &'a mut Diagnostics,
    /// The load's parsed conditions: each text is parsed once for validation and compilation.
    conditions: &'a mut Conditions,
    /// References to the request body met since the last [`Checker::take_body_refs`].
    body_refs: BodyRefs,
}

/// References to the request body: through `request.*` (the request wherever it is read), or
/// through `message.*` (the request only on the request side).
#[derive(Debug, Default, Clone, Copy)]
struct BodyRefs {
    request: bool,
    message: bool,
}

impl BodyRefs {
    /// Whether these references read the request body where `message` is the request or not.
    fn read_body(self, message_is_request: bool) -> bool {
        self.request || (self.message && message_is_request)
    }
}

impl Checker<'_> {
    fn take_body_refs(&mut self) -> BodyRefs {
        std::mem::take(&mut self.body_refs)
    }

    fn var(&mut self, name: &str, site: &RefSite) {
        if reads_request_body(name, false) {
            self.body_refs.request = true;
        } else if reads_request_body(name, true) {
            self.body_refs.message = true;
        }
        // A variable some policy of the stage sets exists, whatever its prefix (Apigee lets
        // `<AssignTo>client.tier</AssignTo>` define it).
        if self.assigned.contains(name) {
            return;
        }
        let mut push = |d: Diagnostic| self.diags.push(d);
        match classify(name) {
            VarKind::Builtin => {}
            VarKind::Policy { kind, policy } => {
                let want = match kind {
                    "responsecache" => PolicyKind::ResponseCache,
                    "lookupcache" => PolicyKind::LookupCache,
                    "populatecache" => PolicyKind::PopulateCache,
                    _ => PolicyKind::InvalidateCache,
                };
                // By name: a shared flow's policies are keyed `<flow>/<policy>` in the stage and
                // set their variables under their own name.
                let found = self
                    .policies
                    .values()
                    .find(|p| p.name() == policy)
                    .map(|p| p.policy.kind());
                // A warning, as in Apigee, where such a variable is simply null (a bundle may
                // read what a shared flow's policy sets).
                if found != Some(want) {
                    push(
                        Diagnostic::warning(
                            site.file,
                            site.pos,
                            format!(
                                "`{name}` refers to {} `{policy}`, which this stage does not have, so it is always null",
                                want.as_str()
                            ),
                        )
                        .with_hint(format!(
                            "add a {} policy named `{policy}` to the stage, or fix the name",
                            want.as_str()
                        )),
                    );
                }
            }
            VarKind::Unknown => {
                // Apigee resolves an unknown variable to null and loads the proxy; so does
                // cachegate, saying so.
                let mut d = Diagnostic::warning(
                    site.file,
                    site.pos,
                    format!("variable `{name}` does not exist, so it is always null"),
                );
                if let Some(s) = suggest(name) {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
                push(d);
            }
            VarKind::Custom if self.assigned.contains(name) => {}
            VarKind::Custom => {
                // A warning, not an error: Apigee bundles set such variables with policies
                // cachegate does not run (ExtractVariables, JavaScript), and their files must
                // still load unchanged. At run time the variable is simply unresolved.
                let msg = format!("variable `{name}` is never set by any policy of this stage, so it is always unresolved");
                let hint = "set it with a LookupCache <AssignTo> or an AssignMessage <AssignVariable>, or use a built-in such as request.header.<name>";
                push(Diagnostic::warning(site.file, site.pos, msg).with_hint(hint));
            }
        }
    }

    fn cache_key(&mut self, p: &PolicyFile, key: &CacheKey) {
        for f in &key.fragments {
            if let Some(r) = &f.reference {
                self.reference(p, r, f.pos);
            }
        }
    }

    /// A `ref`: its variable must be able to exist. Spaces around the name are ignored (as
    /// Apigee resolves it), with a warning: without trimming, `request.header.tenant ` would
    /// never resolve and every request would share the fragment.
    fn reference(&mut self, p: &PolicyFile, r: &str, pos: Pos) {
        let trimmed = r.trim();
        if trimmed != r && !trimmed.is_empty() {
            self.diags.push(
                Diagnostic::warning(
                    &p.path,
                    Some(pos),
                    format!("ref `{r}` has spaces around the variable name; they are ignored"),
                )
                .with_hint(format!("write ref=\"{trimmed}\"")),
            );
        }
        self.var(
            trimmed,
            &RefSite {
                file: &p.path,
                pos: Some(pos),
                lenient: false,
            },
        );
    }

    fn expiry(&mut self, p: &PolicyFile, e: &ExpirySettings) {
        let (reference, pos) = match &e.expiry {
            Expiry::Timeout(v) => {
                // Over 30 days is also apigeelint's warning (policy::check). Apigee accepts
                // such files; cachegate keeps the entry for the policy maximum and says so.
                if let Some(secs) = v.literal.filter(|s| *s > POLICY_MAX_TTL_SECS) {
                    self.diags
                        .push(ttl_cut(p, v.pos, &format!("a TTL of {secs} seconds")));
                }
                (&v.reference, v.pos)
            }
            Expiry::Date(v) => {
                let now = std::time::SystemTime::now();
                let far = v
                    .literal
                    .and_then(|d| crate::runtime::ttl::date_ttl_at(d, now));
                if far.is_some_and(|left| left.as_secs() > POLICY_MAX_TTL_SECS) {
                    self.diags.push(ttl_cut(p, v.pos, "this ExpiryDate"));
                }
                if let Some(d) = v.literal {
                    if crate::runtime::ttl::date_has_passed(d, std::time::SystemTime::now()) {
                        self.diags.push(
                            Diagnostic::warning(&p.path, Some(v.pos), format!("the ExpiryDate {:02}-{:02}-{} has passed, so entries expire as soon as they are stored", d.month, d.day, d.year))
                                .with_hint("write a date to come (mm-dd-yyyy), or use TimeoutInSeconds or TimeOfDay"),
                        );
                    }
                }
                (&v.reference, v.pos)
            }
            // At most a day: always within the policy maximum.
            Expiry::TimeOfDay(v) => (&v.reference, v.pos),
        };
        if let Some(r) = reference {
            self.reference(p, r, pos);
        }
    }

    fn template(&mut self, p: &PolicyFile, text: &str, pos: Pos) {
        for v in Template::compile(text).variables() {
            self.var(
                v,
                &RefSite {
                    file: &p.path,
                    pos: Some(pos),
                    lenient: false,
                },
            );
        }
    }

    fn policy(&mut self, p: &PolicyFile) {
        let strict = |pos| RefSite {
            file: &p.path,
            pos: Some(pos),
            lenient: false,
        };
        match &p.policy {
            Policy::ResponseCache(rc) => {
                self.cache_key(p, &rc.cache_key);
                if !rc.use_accept_header && is_constant(&rc.cache_key) {
                    self.diags.push(
                        Diagnostic::warning(&p.path, Some(rc.cache_key.pos), "every request gets the same cache key: one stored response is served to every caller of the flow")
                            .with_hint("add a <KeyFragment ref=\"…\"/> that tells requests apart, such as request.uri or a header naming the caller"),
                    );
                }
                for w in [&rc.stale_while_revalidate_secs, &rc.stale_if_error_secs]
                    .into_iter()
                    .flatten()
                {
                    if w.value > 86_400 {
                        self.diags.push(
                            Diagnostic::error(
                                &p.path,
                                Some(w.pos),
                                format!("a stale window of {} seconds is over one day", w.value),
                            )
                            .with_hint("write 86400 or less"),
                        );
                    }
                }
                if let Some(e) = &rc.expiry {
                    self.expiry(p, e);
                }
                for c in [&rc.skip_cache_lookup, &rc.skip_cache_population]
                    .into_iter()
                    .flatten()
                {
                    // Its syntax is reported where it is compiled (`policies::response_cache`).
                    self.condition_vars_only(
                        &c.value,
                        &RefSite {
                            file: &p.path,
                            pos: Some(c.pos),
                            lenient: true,
                        },
                    );
                }
            }
            Policy::LookupCache(lc) => self.cache_key(p, &lc.cache_key),
            Policy::PopulateCache(pc) => {
                self.cache_key(p, &pc.cache_key);
                if let Some(e) = &pc.expiry {
                    self.expiry(p, e);
                }
                self.var(&pc.source.value, &strict(pc.source.pos));
            }
            Policy::InvalidateCache(ic) => {
                self.cache_key(p, &ic.cache_key);
                if let Some(ctx) = &ic.cache_context {
                    for v in [&ctx.api_proxy_name, &ctx.proxy_name, &ctx.target_name]
                        .into_iter()
                        .flatten()
                    {
                        if let Some(r) = &v.reference {
                            self.var(r, &strict(v.pos));
                        }
                    }
                }
            }
            Policy::FlowCallout(fc) => {
                for prm in &fc.parameters {
                    if let Some(r) = &prm.reference {
                        // A ref that does not resolve falls back to the literal.
                        self.var(
                            r,
                            &RefSite {
                                file: &p.path,
                                pos: Some(prm.name.pos),
                                lenient: prm.literal.is_some(),
                            },
                        );
                    }
                }
            }
            Policy::AssignMessage(am) => self.assign_message(p, am),
            Policy::RaiseFault(rf) => self.assign_message(p, &rf.fault_response),
        }
    }

    /// The templates and references of an AssignMessage (or a RaiseFault's response).
    fn assign_message(&mut self, p: &PolicyFile, am: &AssignMessage) {
        let lists = [
            am.add.as_ref().map(|a| (&a.headers, &a.query_params)),
            am.set.as_ref().map(|s| (&s.headers, &s.query_params)),
        ];
        for (headers, params) in lists.into_iter().flatten() {
            for nv in headers.iter().chain(params.iter()) {
                self.template(p, &nv.value, nv.pos);
            }
        }
        if let Some(set) = &am.set {
            if let Some(pl) = &set.payload {
                self.template(p, &pl.template, pl.pos);
            }
            for v in [&set.status_code, &set.reason_phrase, &set.verb, &set.path]
                .into_iter()
                .flatten()
            {
                self.template(p, &v.value, v.pos);
            }
        }
        for av in &am.assign_variables {
            if let Some(r) = &av.reference {
                // A <Ref> that does not resolve falls back to <Template>/<Value>.
                let lenient = av.template.is_some() || av.value.is_some();
                self.var(
                    &r.value,
                    &RefSite {
                        file: &p.path,
                        pos: Some(r.pos),
                        lenient,
                    },
                );
            }
            if let Some(t) = &av.template {
                self.template(p, &t.value, t.pos);
            }
        }
    }
}

/// Runs every cross-file check of one stage. Returns whether the stage reads the request
/// body: a policy some step runs, or a condition, refers to `request.content` or a form
/// parameter (through `message.*` only on the request side), so the proxy reads the body
/// before the policies run (`Stage::reads_request_body`).
pub(crate) fn check_stage(
    diags: &mut Diagnostics,
    conditions: &mut Conditions,
    src: &SrcFlows,
    policies: &BTreeMap<String, Arc<PolicyFile>>,
    failed_files: &BTreeSet<String>,
) -> bool {
    let mut assigned = BTreeSet::new();
    for p in policies.values() {
        match &p.policy {
            Policy::LookupCache(lc) => {
                assigned.insert(lc.assign_to.value.clone());
            }
            Policy::AssignMessage(am) => {
                assigned.extend(am.assign_variables.iter().map(|a| a.name.value.clone()));
            }
            // Each parameter is a variable for the shared flow's steps.
            Policy::FlowCallout(fc) => {
                assigned.extend(fc.parameters.iter().map(|x| x.name.value.clone()));
            }
            _ => {}
        }
    }
    let at = |s: &SrcStep, msg: String, hint: String| {
        Diagnostic::error(&s.at.file, s.at.pos, msg).with_hint(hint)
    };

    // Steps name existing policies.
    for s in src.every_step() {
        let name = &s.policy;
        if !policies.contains_key(name) && !failed_files.contains(name) {
            let hint = match crate::util::did_you_mean(name, policies.keys().map(String::as_str)) {
                Some(m) => format!("did you mean `{m}`?"),
                None if policies.is_empty() => {
                    "this stage has no policy files; add one beside stage.toml".to_owned()
                }
                None => format!(
                    "the stage's policies are: {}",
                    policies.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            diags.push(at(
                s,
                format!("step names policy `{name}`, which does not exist in this stage"),
                hint,
            ));
        }
    }

    // AssignMessage cannot replace a request body (the request is streamed to the target).
    for st in src.request_steps() {
        let Some(p) = policies.get(&st.policy) else {
            continue;
        };
        if let Policy::AssignMessage(am) = &p.policy {
            let target = am
                .assign_to
                .as_ref()
                .map_or(MessageTarget::Request, |a| a.target);
            let payload = am.set.as_ref().is_some_and(|s| s.payload.is_some())
                || am.remove.as_ref().is_some_and(|r| r.payload);
            if target == MessageTarget::Request && payload {
                diags.push(at(
                    st,
                    format!("AssignMessage `{}` sets a request payload, which cachegate does not support", p.name()),
                    "change headers, query parameters, verb or path of the request; payloads only on the response".into(),
                ));
            }
        }
    }

    response_cache_attachments(diags, src, policies);

    let mut checker = Checker {
        policies,
        assigned,
        diags,
        conditions,
        body_refs: BodyRefs::default(),
    };
    let on_request: BTreeSet<&str> = src.request_steps().map(|s| s.policy.as_str()).collect();
    let run: BTreeSet<&str> = src.every_step().map(|s| s.policy.as_str()).collect();
    let mut reads_body = false;
    // By the name steps use, which is the map's key (not always the policy's own name).
    for (name, p) in policies {
        checker.policy(p);
        let refs = checker.take_body_refs();
        let name = name.as_str();
        reads_body |= run.contains(name) && refs.read_body(on_request.contains(name));
    }
    // Conditions of flows and routes (chosen on the request side) and of steps.
    for e in src.endpoints() {
        for f in &e.flows {
            if let Some((c, site)) = &f.condition {
                checker.condition_vars_only(c, &ref_site(site));
            }
        }
    }
    for r in &src.routes {
        if let Some((c, site)) = &r.condition {
            checker.condition_vars_only(c, &ref_site(site));
        }
    }
    for s in src.request_steps() {
        if let Some((c, site)) = &s.condition {
            checker.condition_vars_only(c, &ref_site(site));
        }
    }
    reads_body |= checker.take_body_refs().read_body(true);
    for s in src.response_steps() {
        if let Some((c, site)) = &s.condition {
            checker.condition_vars_only(c, &ref_site(site));
        }
    }
    // Fault rules (their own conditions and their steps') and the PostClientFlow run on the
    // response side too.
    for e in src.endpoints() {
        for r in e.fault_rules() {
            let conds = r
                .condition
                .iter()
                .chain(r.steps.iter().filter_map(|s| s.condition.as_ref()));
            for (c, site) in conds {
                checker.condition_vars_only(c, &ref_site(site));
            }
        }
        for (c, site) in e
            .post_client_flow
            .iter()
            .filter_map(|s| s.condition.as_ref())
        {
            checker.condition_vars_only(c, &ref_site(site));
        }
    }
    reads_body |= checker.take_body_refs().read_body(false);
    reads_body
}

/// One side's steps of an endpoint taking `flow`: PreFlow, the flow, PostFlow.
fn side_steps(e: &SrcEndpoint, flow: Option<usize>, request: bool) -> Vec<&SrcStep> {
    let mut out: Vec<&SrcStep> = side_of(&e.preflow, request).iter().collect();
    if let Some(f) = flow.and_then(|i| e.flows.get(i)) {
        out.extend(side_of(&f.steps, request));
    }
    out.extend(side_of(&e.postflow, request));
    out
}

fn side_of(s: &SrcSteps, request: bool) -> &[SrcStep] {
    if request {
        &s.request
    } else {
        &s.response
    }
}

fn ref_site(site: &Site) -> RefSite<'_> {
    RefSite {
        file: &site.file,
        pos: site.pos,
        lenient: true,
    }
}

/// ResponseCache: at most once per request path and once per response path (Apigee's
/// ResponseCacheStepAttachmentNotAllowedReq/Resp), and attached on both sides.
fn response_cache_attachments(
    diags: &mut Diagnostics,
    src: &SrcFlows,
    policies: &BTreeMap<String, Arc<PolicyFile>>,
) {
    let is_rc = |s: &&SrcStep| {
        policies
            .get(&s.policy)
            .is_some_and(|p| p.policy.kind() == PolicyKind::ResponseCache)
    };
    // Every path a request can take: each ProxyEndpoint flow (or none) with each TargetEndpoint
    // flow (or none) of each TargetEndpoint (or none).
    let flow_choices = |e: &SrcEndpoint| -> Vec<Option<usize>> {
        if e.flows.is_empty() {
            vec![None]
        } else {
            (0..e.flows.len()).map(Some).collect()
        }
    };
    let mut targets: Vec<Option<&SrcEndpoint>> =
        src.targets.iter().map(|t| Some(&t.endpoint)).collect();
    targets.push(None);
    let mut reported = BTreeSet::new();
    for pf in flow_choices(&src.proxy) {
        for t in &targets {
            let tflows = t.map_or(vec![None], flow_choices);
            for tf in tflows {
                for (side, request) in [("request", true), ("response", false)] {
                    let mut path = side_steps(&src.proxy, pf, request);
                    if let Some(t) = t {
                        path.extend(side_steps(t, tf, request));
                    }
                    let mut seen: BTreeSet<&str> = BTreeSet::new();
                    for s in path.into_iter().filter(is_rc) {
                        let name = s.policy.as_str();
                        let key = (side, s.at.file.to_path_buf(), s.at.pos);
                        if !seen.insert(name) && reported.insert(key) {
                            diags.push(
                                Diagnostic::error(
                                    &s.at.file,
                                    s.at.pos,
                                    format!("ResponseCache `{name}` is attached more than once in the {side} path"),
                                )
                                .with_hint("attach it once in the request steps and once in the response steps"),
                            );
                        }
                    }
                }
            }
        }
    }
    for p in policies
        .values()
        .filter(|p| p.policy.kind() == PolicyKind::ResponseCache && p.common.enabled)
    {
        let name = p.name();
        let req = src.request_steps().any(|s| s.policy == name);
        let resp = src.response_steps().any(|s| s.policy == name);
        if req && !resp {
            diags.push(
                Diagnostic::warning(&p.path, Some(p.pos), format!("ResponseCache `{name}` is attached to request steps only, so it looks up but never stores"))
                    .with_hint(format!("add \"{name}\" to the same flow's response steps")),
            );
        } else if resp && !req {
            diags.push(
                Diagnostic::warning(&p.path, Some(p.pos), format!("ResponseCache `{name}` is attached to response steps only, so it stores but never serves"))
                    .with_hint(format!("add \"{name}\" to the same flow's request steps")),
            );
        }
    }
}

/// Variables with one value for every request of a stage: a key made only of these (and
/// literals) is the same for everyone.
const PER_STAGE: [&str; 8] = [
    "environment.name",
    "organization.name",
    "apiproxy.name",
    "apiproxy.revision",
    "proxy.name",
    "proxy.basepath",
    "system.uuid",
    "is.error",
];

/// Whether a `<CacheKey>` is the same for every request: no fragment reads a variable that
/// differs between requests.
fn is_constant(key: &CacheKey) -> bool {
    key.fragments.iter().all(|f| {
        f.reference
            .as_deref()
            .map(str::trim)
            .is_none_or(|r| r.is_empty() || PER_STAGE.contains(&r))
    })
}

impl Checker<'_> {
    /// Variable checks for a condition whose syntax is reported where it is compiled
    /// (`compile/flows.rs`, `policies::response_cache`).
    fn condition_vars_only(&mut self, text: &str, site: &RefSite) {
        if let Ok(c) = self.conditions.parse(text).clone() {
            for v in c.variables() {
                self.var(v, site);
            }
        }
    }
}
