//! The policy model written back as a TOML policy file: [`policy`] (used by `cachegate import`
//! to turn a bundle's XML policies into cachegate's native syntax) and [`string`] (a TOML string
//! literal, for any TOML cachegate writes).
//!
//! The output reads back, through [`parse`](super::parse), into a model that compiles to the
//! same runtime policy. Where the TOML syntax cannot say what the model holds — an `ExpiryDate`
//! given only by reference, a value with spaces the TOML reader would trim, a `<Remove>` header
//! with a value, `async="true"` — [`policy`] refuses with the reason instead of writing something
//! close: the caller then keeps the XML file as it is. Values the compiler treats alike are
//! written in their one TOML form (an empty `ref` is omitted; a `ref` with spaces around it is
//! trimmed, as compilation trims it).

use std::fmt::Write as _;

use crate::diag::Located;
use crate::policy::model::{
    AssignMessage, CacheContext, CacheKey, Expiry, ExpirySettings, FlowCallout, InvalidateCache,
    LookupCache, MessageTarget, NameValue, Policy, PolicyFile, PopulateCache, ResponseCache, Scope,
    ValueOrRef,
};

/// Why a policy has no exact TOML form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Untranslatable(pub String);

type Out<T = ()> = Result<T, Untranslatable>;

fn refuse<T>(why: impl Into<String>) -> Out<T> {
    Err(Untranslatable(why.into()))
}

/// A TOML string literal holding exactly `s`: a literal string (`'…'`) when that needs no
/// escapes and `s` holds a double quote or a backslash (conditions and templates read better),
/// a multi-line literal for text with line breaks, otherwise a basic string with escapes.
pub fn string(s: &str) -> String {
    let plain = |c: char| c == '\t' || !c.is_control();
    if s.contains('\n')
        && !s.contains("'''")
        && !s.ends_with('\'')
        && s.chars().all(|c| c == '\n' || plain(c))
    {
        // The line break right after the opening delimiter is not part of the string.
        return format!("'''\n{s}'''");
    }
    if (s.contains('"') || s.contains('\\')) && !s.contains('\'') && s.chars().all(plain) {
        return format!("'{s}'");
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `p` as the text of a TOML policy file, or why it cannot be one.
pub fn policy(p: &PolicyFile) -> Out<String> {
    let mut w = Writer::default();
    let kind = p.policy.kind().as_str();
    let _ = writeln!(w.text, "[{kind}]");
    w.common(p)?;
    match &p.policy {
        Policy::ResponseCache(rc) => w.response_cache(kind, rc)?,
        Policy::LookupCache(lc) => w.lookup_cache(kind, lc)?,
        Policy::PopulateCache(pc) => w.populate_cache(kind, pc)?,
        Policy::InvalidateCache(ic) => w.invalidate_cache(kind, ic)?,
        Policy::AssignMessage(am) => w.assign_message(kind, am, false)?,
        Policy::FlowCallout(fc) => w.flow_callout(fc)?,
        Policy::RaiseFault(rf) => w.assign_message(kind, &rf.fault_response, true)?,
    }
    Ok(w.text)
}

/// Text the TOML reader keeps as it is: not empty, no spaces around it (it trims them).
fn trimmed<'a>(what: &str, v: &'a str) -> Out<&'a str> {
    if v.is_empty() || v.trim() != v {
        return refuse(format!(
            "{what} {v:?} has spaces around it or is empty, which TOML's reader would change"
        ));
    }
    Ok(v)
}

/// A variable reference: trimmed, as compilation trims it; `None` when empty (no reference).
fn reference(r: Option<&str>) -> Option<&str> {
    r.map(str::trim).filter(|r| !r.is_empty())
}

#[derive(Default)]
struct Writer {
    text: String,
}

impl Writer {
    fn key(&mut self, key: &str, value: &str) {
        let _ = writeln!(self.text, "{key} = {value}");
    }

    fn str_key(&mut self, key: &str, value: &str) {
        self.key(key, &string(value));
    }

    fn flag(&mut self, key: &str, value: bool, default: bool) {
        if value != default {
            self.key(key, &value.to_string());
        }
    }

    fn seconds(&mut self, key: &str, v: Option<&Located<u64>>) -> Out {
        if let Some(v) = v {
            self.key(key, &int(key, v.value)?);
        }
        Ok(())
    }

    fn located(&mut self, key: &str, v: Option<&Located<String>>) -> Out {
        if let Some(v) = v {
            self.str_key(key, trimmed(key, &v.value)?);
        }
        Ok(())
    }

    fn flow_callout(&mut self, fc: &FlowCallout) -> Out {
        self.located("shared_flow_bundle", Some(&fc.shared_flow_bundle))?;
        if fc.parameters.is_empty() {
            return Ok(());
        }
        let mut items = Vec::new();
        for p in &fc.parameters {
            let mut item = format!(
                "name = {}",
                string(trimmed("a parameter name", &p.name.value)?)
            );
            if let Some(r) = reference(p.reference.as_deref()) {
                let _ = write!(item, ", ref = {}", string(r));
            }
            if let Some(v) = &p.literal {
                let _ = write!(item, ", value = {}", string(v));
            }
            items.push(format!("{{ {item} }}"));
        }
        self.key("parameters", &format!("[{}]", items.join(", ")));
        Ok(())
    }

    fn common(&mut self, p: &PolicyFile) -> Out {
        let c = &p.common;
        self.str_key("name", trimmed("name", &c.name.value)?);
        if let Some(d) = &c.display_name {
            self.str_key("display_name", d);
        }
        self.flag("enabled", c.enabled, true);
        self.flag("continue_on_error", c.continue_on_error, false);
        if c.async_ {
            return refuse("async=\"true\" (deprecated, ignored) has no TOML form");
        }
        Ok(())
    }

    fn cache_common(&mut self, scope: Scope, resource: Option<&Located<String>>) -> Out {
        self.str_key("scope", scope.as_str());
        // An empty <CacheResource/> is the default cache, as no key is.
        if let Some(r) = resource.filter(|r| !r.value.trim().is_empty()) {
            self.str_key("cache_resource", trimmed("cache_resource", &r.value)?);
        }
        Ok(())
    }

    fn expiry(&mut self, e: Option<&ExpirySettings>) -> Out {
        let Some(e) = e else { return Ok(()) };
        let (kind, literal, r) = match &e.expiry {
            Expiry::Timeout(v) => (
                "timeout_secs",
                v.literal.map(|s| int("timeout_secs", s)).transpose()?,
                &v.reference,
            ),
            Expiry::Date(v) => (
                "date",
                v.literal
                    .map(|d| string(&format!("{:02}-{:02}-{:04}", d.month, d.day, d.year))),
                &v.reference,
            ),
            Expiry::TimeOfDay(v) => (
                "time_of_day",
                v.literal
                    .map(|t| string(&format!("{:02}:{:02}:{:02}", t.hour, t.minute, t.second))),
                &v.reference,
            ),
        };
        let r = reference(r.as_deref());
        let mut parts = Vec::new();
        match (literal, r) {
            (Some(l), _) => parts.push(format!("{kind} = {l}")),
            // `{ ref = … }` alone is a timeout.
            (None, Some(_)) if kind == "timeout_secs" => {}
            (None, _) => {
                return refuse(format!(
                    "an expiry ({kind}) with no value of its own has no TOML form"
                ))
            }
        }
        if let Some(r) = r {
            parts.push(format!("ref = {}", string(r)));
        }
        self.key("expiry", &format!("{{ {} }}", parts.join(", ")));
        Ok(())
    }

    fn cache_key(&mut self, kind: &str, k: &CacheKey) -> Out {
        let _ = writeln!(self.text, "[{kind}.cache_key]");
        if let Some(p) = k.prefix.as_ref().filter(|p| !p.value.trim().is_empty()) {
            self.str_key("prefix", trimmed("prefix", &p.value)?);
        }
        let mut fragments = Vec::new();
        for f in &k.fragments {
            let mut parts = Vec::new();
            if let Some(r) = reference(f.reference.as_deref()) {
                parts.push(format!("ref = {}", string(r)));
            }
            if let Some(l) = &f.literal {
                parts.push(format!("literal = {}", string(trimmed("literal", l)?)));
            }
            if let Some(t) = f.type_.as_ref().filter(|t| !t.trim().is_empty()) {
                parts.push(format!("type = {}", string(t)));
            }
            if parts.is_empty() {
                return refuse("an empty key fragment has no TOML form");
            }
            fragments.push(format!("  {{ {} }},\n", parts.join(", ")));
        }
        let _ = writeln!(self.text, "fragments = [\n{}]", fragments.concat());
        Ok(())
    }

    fn response_cache(&mut self, kind: &str, rc: &ResponseCache) -> Out {
        self.cache_common(rc.scope, rc.cache_resource.as_ref())?;
        self.expiry(rc.expiry.as_ref())?;
        self.seconds("lookup_timeout_secs", rc.lookup_timeout_secs.as_ref())?;
        self.flag("exclude_error_response", rc.exclude_error_response, false);
        self.located("skip_cache_lookup", rc.skip_cache_lookup.as_ref())?;
        self.located("skip_cache_population", rc.skip_cache_population.as_ref())?;
        self.flag("use_accept_header", rc.use_accept_header, false);
        self.flag(
            "use_response_cache_headers",
            rc.use_response_cache_headers,
            false,
        );
        self.seconds(
            "stale_while_revalidate_secs",
            rc.stale_while_revalidate_secs.as_ref(),
        )?;
        self.seconds("stale_if_error_secs", rc.stale_if_error_secs.as_ref())?;
        self.cache_key(kind, &rc.cache_key)
    }

    fn lookup_cache(&mut self, kind: &str, lc: &LookupCache) -> Out {
        self.cache_common(lc.scope, lc.cache_resource.as_ref())?;
        self.seconds("lookup_timeout_secs", lc.lookup_timeout_secs.as_ref())?;
        self.located("assign_to", Some(&lc.assign_to))?;
        self.cache_key(kind, &lc.cache_key)
    }

    fn populate_cache(&mut self, kind: &str, pc: &PopulateCache) -> Out {
        self.cache_common(pc.scope, pc.cache_resource.as_ref())?;
        self.expiry(pc.expiry.as_ref())?;
        self.located("source", Some(&pc.source))?;
        self.cache_key(kind, &pc.cache_key)
    }

    fn invalidate_cache(&mut self, kind: &str, ic: &InvalidateCache) -> Out {
        self.cache_common(ic.scope, ic.cache_resource.as_ref())?;
        if let Some(c) = &ic.cache_context {
            self.cache_context(c)?;
        }
        self.flag("purge_child_entries", ic.purge_child_entries, false);
        self.flag(
            "ignore_unresolved_variables",
            ic.ignore_unresolved_variables,
            false,
        );
        self.cache_key(kind, &ic.cache_key)
    }

    fn cache_context(&mut self, c: &CacheContext) -> Out {
        let mut parts = Vec::new();
        for (key, v) in [
            ("api_proxy_name", &c.api_proxy_name),
            ("proxy_name", &c.proxy_name),
            ("target_name", &c.target_name),
        ] {
            let Some(v) = v else { continue };
            let value = value_or_ref(key, v)?;
            parts.push(format!("{key} = {value}"));
        }
        self.key("cache_context", &format!("{{ {} }}", parts.join(", ")));
        Ok(())
    }

    /// An AssignMessage, or a RaiseFault's fault response (whose `ignore_unresolved_variables`
    /// defaults to true: `ignore_default`).
    fn assign_message(&mut self, kind: &str, am: &AssignMessage, ignore_default: bool) -> Out {
        if let Some(a) = &am.assign_to {
            let target = match a.target {
                MessageTarget::Request => "request",
                MessageTarget::Response => "response",
            };
            self.str_key("assign_to", target);
        }
        self.flag(
            "ignore_unresolved_variables",
            am.ignore_unresolved_variables,
            ignore_default,
        );
        if let Some(r) = &am.remove {
            let _ = writeln!(self.text, "[{kind}.remove]");
            for (key, all_key, list) in [
                ("headers", "all_headers", &r.headers),
                ("query_params", "all_query_params", &r.query_params),
            ] {
                match list {
                    None => {}
                    Some(l) if l.is_empty() => self.key(all_key, "true"),
                    Some(l) => {
                        let mut names = Vec::new();
                        for nv in l {
                            if !nv.value.trim().is_empty() {
                                return refuse(format!(
                                    "<Remove> {key} with a value ({}: {:?}) has no TOML form",
                                    nv.name, nv.value
                                ));
                            }
                            names.push(string(trimmed(key, &nv.name)?));
                        }
                        self.key(key, &format!("[{}]", names.join(", ")));
                    }
                }
            }
            self.flag("payload", r.payload, false);
        }
        if let Some(a) = &am.add {
            let _ = writeln!(self.text, "[{kind}.add]");
            self.name_values("headers", &a.headers)?;
            self.name_values("query_params", &a.query_params)?;
        }
        if let Some(s) = &am.set {
            let _ = writeln!(self.text, "[{kind}.set]");
            self.name_values("headers", &s.headers)?;
            self.name_values("query_params", &s.query_params)?;
            if let Some(p) = &s.payload {
                let mut parts = Vec::new();
                if let Some(c) = p.content_type.as_ref().filter(|c| !c.trim().is_empty()) {
                    parts.push(format!("content_type = {}", string(c)));
                }
                parts.push(format!("template = {}", string(&p.template)));
                self.key("payload", &format!("{{ {} }}", parts.join(", ")));
            }
            self.located("status_code", s.status_code.as_ref())?;
            self.located("reason_phrase", s.reason_phrase.as_ref())?;
            self.located("verb", s.verb.as_ref())?;
            self.located("path", s.path.as_ref())?;
        }
        for v in &am.assign_variables {
            let _ = writeln!(self.text, "[[{kind}.assign_variable]]");
            self.located("name", Some(&v.name))?;
            if let Some(r) = reference(v.reference.as_ref().map(|r| r.value.as_str())) {
                self.str_key("ref", r);
            }
            self.located("template", v.template.as_ref())?;
            if let Some(value) = &v.value {
                if value.value.trim() != value.value {
                    return refuse(format!(
                        "the value {:?} of {} has spaces around it, which TOML's reader would trim",
                        value.value, v.name.value
                    ));
                }
                self.str_key("value", &value.value);
            }
        }
        Ok(())
    }

    fn name_values(&mut self, key: &str, list: &[NameValue]) -> Out {
        if list.is_empty() {
            return Ok(());
        }
        let mut items = Vec::new();
        for nv in list {
            let value = if nv.value.trim() == nv.value {
                &nv.value
            } else {
                return refuse(format!(
                    "the value {:?} of {} has spaces around it, which TOML's reader would trim",
                    nv.value, nv.name
                ));
            };
            items.push(format!(
                "  {{ name = {}, value = {} }},\n",
                string(trimmed(key, &nv.name)?),
                string(value)
            ));
        }
        let _ = writeln!(self.text, "{key} = [\n{}]", items.concat());
        Ok(())
    }
}

fn int(key: &str, v: u64) -> Out<String> {
    match i64::try_from(v) {
        Ok(v) => Ok(v.to_string()),
        Err(_) => refuse(format!("{key} {v} is beyond TOML's integers")),
    }
}

/// A `<CacheContext>` part: a string, or `{ ref = …, value = … }`.
fn value_or_ref(key: &str, v: &ValueOrRef<String>) -> Out<String> {
    let literal = v.literal.as_deref().map(|l| trimmed(key, l)).transpose()?;
    Ok(match (reference(v.reference.as_deref()), literal) {
        (None, Some(l)) => string(l),
        (Some(r), None) => format!("{{ ref = {} }}", string(r)),
        (Some(r), Some(l)) => format!("{{ ref = {}, value = {} }}", string(r), string(l)),
        (None, None) => return refuse(format!("an empty {key} has no TOML form")),
    })
}

#[cfg(test)]
mod tests;
