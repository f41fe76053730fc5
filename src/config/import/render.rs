//! The text of the imported `stage.toml`: the bundle's settings, the stage.toml beside the bundle
//! unchanged, then the ProxyEndpoint's and the TargetEndpoint's flows, each part with a comment
//! saying which file and line of the bundle it came from.
//!
//! Top-level keys come first, the stage.toml beside the bundle next (its own top-level keys stay
//! top-level: nothing before it opens a table, and it cannot hold flows, `target`, `base_path`,
//! `api_name` or the endpoint names, which are errors beside a bundle), the flow tables last.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::bundle::BundleStage;
use crate::diag::Pos;
use crate::policy::bundle::{Connection, EndpointFile, FlowSteps, RouteTarget, Step};
use crate::policy::toml::write::string;

/// What the header lists about the policy files.
pub(super) struct PolicyNotes {
    /// Policies written as TOML: file names.
    pub toml: Vec<String>,
    /// Policies kept as the bundle's XML: file name and why.
    pub xml: Vec<(String, String)>,
}

/// `stage.toml` for the bundle stage `b`, to be loaded as stage `stage`.
pub(super) fn stage_toml(b: &BundleStage, stage: &str, notes: &PolicyNotes) -> String {
    let mut r = Render {
        out: String::new(),
        root: b
            .bundle
            .root
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf(),
    };
    let api = &b.settings.api_name;
    let _ = write!(
        r.out,
        "# Written by `cachegate import` from the Apigee API proxy bundle `{api}` (apiproxy/).\n\
         # It is the same proxy in cachegate's own format: the import compiled both and found them\n\
         # identical (flows, steps, routes, policies and their cache keys). Each part says where in\n\
         # the bundle it came from.\n\
         #\n\
         # Cache keys of Proxy, Target and Exclusive scope name the API, the revision and the\n\
         # endpoints below; without gateway.toml `environment` every Scope prefix also names the\n\
         # stage, so keep this folder named `{stage}` for the keys to stay the bundle's.\n"
    );
    if !notes.toml.is_empty() {
        r.comment_list(
            "Policies written as TOML (from apiproxy/policies/)",
            &notes.toml,
        );
    }
    if !notes.xml.is_empty() {
        let kept: Vec<String> = notes
            .xml
            .iter()
            .map(|(file, why)| format!("{file}: {why}"))
            .collect();
        r.comment_list("Policies kept as the bundle's XML, unchanged", &kept);
    }
    r.out.push('\n');
    r.settings(b);
    let (path, text, _) = &b.stage_toml;
    if !text.trim().is_empty() {
        let name = path
            .file_name()
            .map_or("stage.toml".into(), |n| n.to_string_lossy());
        let _ = write!(
            r.out,
            "\n# ---- {name} beside the bundle, unchanged ----\n{text}{}# ---- end of {name} beside the bundle ----\n",
            if text.ends_with('\n') { "" } else { "\n" }
        );
    }
    if let Some(proxy) = b.bundle.proxies.first() {
        r.endpoint(proxy, "");
    }
    if let Some(target) = b.bundle.targets.first() {
        r.endpoint(target, "target_endpoint");
    }
    r.out
}

struct Render {
    out: String,
    /// The stage folder holding `apiproxy/`: file names in comments are relative to it.
    root: std::path::PathBuf,
}

impl Render {
    fn at(&self, path: &Path, pos: Pos) -> String {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        format!("{}:{}:{}", rel.display(), pos.line, pos.col)
    }

    fn file(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn comment_list(&mut self, title: &str, items: &[String]) {
        let _ = writeln!(self.out, "#\n# {title}:");
        for i in items {
            let _ = writeln!(self.out, "#   {i}");
        }
    }

    fn key(&mut self, comment: &str, key: &str, value: &str) {
        let _ = writeln!(self.out, "# {comment}\n{key} = {value}");
    }

    /// The top-level keys the bundle decides.
    fn settings(&mut self, b: &BundleStage) {
        let bundle = &b.bundle;
        let name_from = match &bundle.descriptor {
            Some(d) => format!(
                "<APIProxy name> of {} (without one, the folder holding apiproxy/ names it)",
                self.file(d)
            ),
            None => "no descriptor: the folder holding apiproxy/ names the API proxy".to_owned(),
        };
        self.key(&name_from, "api_name", &string(&b.settings.api_name));
        let (_, _, file) = &b.stage_toml;
        if file.revision.is_none() {
            let from = match bundle.revision.as_ref().map(|r| (r, r.value.parse::<u32>())) {
                Some((r, Ok(_))) => format!(
                    "<APIProxy revision>, {}",
                    self.at(descriptor_path(b), r.pos)
                ),
                Some(_) => "<APIProxy revision> is not a number: derived from the bundle's files, as cachegate derives it for the bundle".to_owned(),
                None => "no <APIProxy revision>: derived from the bundle's files, as cachegate derives it for the bundle".to_owned(),
            };
            self.key(&from, "revision", &b.settings.revision.to_string());
        }
        if let Some(proxy) = bundle.proxies.first() {
            let ep = &proxy.endpoint;
            if let Some(bp) = &ep.base_path {
                let from = format!(
                    "HTTPProxyConnection/BasePath, {}",
                    self.at(&proxy.path, bp.pos)
                );
                self.key(&from, "base_path", &string(&b.settings.base_path));
            }
            if let Some(t) = bundle.targets.first() {
                if let Some(Connection::Url(u)) = &t.endpoint.connection {
                    let from = format!("HTTPTargetConnection/URL, {}", self.at(&t.path, u.pos));
                    self.key(&from, "target", &string(u.value.trim()));
                }
            }
            let from = format!(
                "<ProxyEndpoint name>, {}",
                self.at(&proxy.path, ep.name.pos)
            );
            self.key(&from, "proxy_endpoint", &string(&ep.name.value));
            if let Some(r) = ep.route_rules.first() {
                let to = match &r.to {
                    RouteTarget::Endpoint(e) => {
                        format!(" (to TargetEndpoint `{}`)", e.value.trim())
                    }
                    _ => String::new(),
                };
                let from = format!("<RouteRule name>{to}, {}", self.at(&proxy.path, r.name.pos));
                self.key(&from, "route_rule", &string(&r.name.value));
            }
        }
    }

    /// An endpoint's flows: under `table` (`target_endpoint`), or at the top level (`""`).
    fn endpoint(&mut self, e: &EndpointFile, table: &str) {
        let ep = &e.endpoint;
        let _ = writeln!(
            self.out,
            "\n# ---- {} `{}`: {} ----",
            ep.kind.element(),
            ep.name.value,
            self.file(&e.path)
        );
        let dotted = |t: &str| {
            if table.is_empty() {
                t.to_owned()
            } else {
                format!("{table}.{t}")
            }
        };
        if !table.is_empty() {
            let _ = writeln!(self.out, "[{table}]");
            let _ = writeln!(self.out, "name = {}", string(&ep.name.value));
        }
        self.steps_table(&dotted("preflow"), &ep.preflow, e);
        for f in &ep.flows {
            let _ = writeln!(
                self.out,
                "\n[[{}]]\n# <Flow>, {}",
                dotted("flows"),
                self.at(&e.path, f.name.pos)
            );
            let _ = writeln!(self.out, "name = {}", string(&f.name.value));
            if let Some(c) = &f.condition {
                let _ = writeln!(self.out, "condition = {}", string(&c.value));
            }
            self.steps(&f.steps, e);
        }
        self.steps_table(&dotted("postflow"), &ep.postflow, e);
    }

    fn steps_table(&mut self, table: &str, s: &FlowSteps, e: &EndpointFile) {
        if s.request.is_empty() && s.response.is_empty() {
            return;
        }
        let _ = writeln!(self.out, "\n[{table}]");
        self.steps(s, e);
    }

    fn steps(&mut self, s: &FlowSteps, e: &EndpointFile) {
        for (key, list) in [("request", &s.request), ("response", &s.response)] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(self.out, "{key} = [");
            for step in list {
                let _ = writeln!(
                    self.out,
                    "  {},  # {}",
                    step_value(step),
                    self.at(&e.path, step.name.pos)
                );
            }
            self.out.push_str("]\n");
        }
    }
}

fn descriptor_path(b: &BundleStage) -> &Path {
    b.bundle.descriptor.as_deref().unwrap_or(&b.bundle.root)
}

/// A step: the policy's name, or `{ policy, condition }`.
fn step_value(s: &Step) -> String {
    match &s.condition {
        None => string(&s.name.value),
        Some(c) => format!(
            "{{ policy = {}, condition = {} }}",
            string(&s.name.value),
            string(&c.value)
        ),
    }
}
