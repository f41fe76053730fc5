//! Mapping of the four cache policies (ResponseCache, LookupCache, PopulateCache, InvalidateCache)
//! from their TOML tables to the model, with what only they use: `cache_key`, `scope`, `expiry`,
//! seconds and `cache_context`.
//!
//! An `impl` block of the [`Mapper`] in `mapper.rs`; `mod.rs` calls the four `*_cache` methods.
//! Kept apart from AssignMessage (`assign.rs`), which shares none of these keys.

use ::toml::Spanned;

use super::mapper::Mapper;
use super::shape::{
    CacheKeyT, ExpiryT, InvalidateCacheT, LookupCacheT, PopulateCacheT, ResponseCacheT, StrOrRef,
};
use crate::diag::{Located, Pos};
use crate::policy::check::{self, quoted, Issue, ScopeMatch};
use crate::policy::model::{
    CacheContext, CacheKey, Expiry, ExpirySettings, InvalidateCache, KeyFragment, LookupCache,
    PopulateCache, ResponseCache, Scope, ValueOrRef,
};

impl Mapper<'_, '_, '_> {
    fn scope(&mut self, s: Option<Spanned<String>>) -> Scope {
        let Some(s) = s else { return Scope::default() };
        let pos = self.at(&s);
        let raw = s.get_ref().trim();
        if raw.is_empty() {
            return Scope::default();
        }
        match check::parse_scope(raw) {
            Ok(ScopeMatch::Exact(scope)) => scope,
            Ok(ScopeMatch::WrongCase(scope)) => {
                self.sink.warning(
                    pos,
                    format!("scope {} is not spelt as Apigee spells it", quoted(raw)),
                    Some(format!("write \"{}\"", scope.as_str())),
                );
                scope
            }
            Err(issue) => {
                let hint = match check::did_you_mean(raw, &Scope::ALL.map(Scope::as_str)) {
                    Some(s) => Some(format!(
                        "did you mean {s}? {}",
                        issue.hint.unwrap_or_default()
                    )),
                    None => issue.hint,
                };
                self.sink.error(pos, issue.message, hint);
                Scope::default()
            }
        }
    }

    fn seconds(&mut self, s: &Spanned<i64>, what: &str) -> Option<u64> {
        let pos = self.at(s);
        match u64::try_from(*s.get_ref()) {
            Ok(v) => Some(v),
            Err(_) => {
                self.sink
                    .issue(pos, check::negative_timeout(&s.get_ref().to_string(), what));
                None
            }
        }
    }

    fn cache_key(&mut self, key: Spanned<CacheKeyT>) -> CacheKey {
        let pos = self.at(&key);
        let key = key.into_inner();
        let prefix = self.located(key.prefix);
        let mut fragments = Vec::new();
        for f in key.fragments {
            let fpos = self.at(&f);
            let f = f.into_inner();
            let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
            let reference = nonempty(f.reference).map(|r| r.trim().to_string());
            let literal = nonempty(f.literal).map(|l| l.trim().to_string());
            if reference.is_none() && literal.is_none() {
                self.sink.error(
                    fpos,
                    "empty cache key fragment",
                    Some(
                        "write { ref = \"request.uri\" } for a variable or { literal = \"text\" }"
                            .into(),
                    ),
                );
                continue;
            }
            fragments.push(KeyFragment {
                pos: fpos,
                reference,
                literal,
                type_: nonempty(f.type_),
            });
        }
        CacheKey {
            pos,
            prefix,
            fragments,
        }
    }

    fn lookup_timeout(&mut self, s: Option<Spanned<i64>>) -> Option<Located<u64>> {
        self.seconds_key(s, "lookup_timeout_secs")
    }

    /// A non-negative number of seconds under `key`.
    fn seconds_key(&mut self, s: Option<Spanned<i64>>, key: &str) -> Option<Located<u64>> {
        let s = s?;
        let pos = self.at(&s);
        self.seconds(&s, key).map(|v| Located::new(v, pos))
    }

    fn expiry(&mut self, e: Option<Spanned<ExpiryT>>) -> Option<ExpirySettings> {
        let e = e?;
        let pos = self.at(&e);
        let e = e.into_inner();
        let reference = e
            .reference
            .map(Spanned::into_inner)
            .filter(|r| !r.trim().is_empty());
        let mut kinds: Vec<(&str, Pos)> = Vec::new();
        if let Some(t) = &e.timeout_secs {
            kinds.push(("timeout_secs", self.at(t)));
        }
        if let Some(d) = &e.date {
            kinds.push(("date", self.at(d)));
        }
        if let Some(t) = &e.time_of_day {
            kinds.push(("time_of_day", self.at(t)));
        }
        if let [(first, _), (second, second_pos), ..] = kinds.as_slice() {
            self.sink.error(
                *second_pos,
                format!("expiry has more than one kind of expiry: `{first}` and `{second}`"),
                Some("keep exactly one of timeout_secs, date or time_of_day".into()),
            );
            return None;
        }
        let expiry = if let Some(t) = e.timeout_secs {
            let tpos = self.at(&t);
            let secs = self.seconds(&t, "timeout_secs")?;
            if let Some(issue) = check::long_timeout(secs, "timeout_secs") {
                self.sink.warning(tpos, issue.message, issue.hint);
            }
            Expiry::Timeout(ValueOrRef {
                pos: tpos,
                reference,
                literal: Some(secs),
            })
        } else if let Some(d) = e.date {
            let dpos = self.at(&d);
            let date = self.checked(dpos, check::parse_date(d.get_ref().trim(), "date"))?;
            Expiry::Date(ValueOrRef {
                pos: dpos,
                reference,
                literal: Some(date),
            })
        } else if let Some(t) = e.time_of_day {
            let tpos = self.at(&t);
            let time = self.checked(
                tpos,
                check::parse_time_of_day(t.get_ref().trim(), "time_of_day"),
            )?;
            Expiry::TimeOfDay(ValueOrRef {
                pos: tpos,
                reference,
                literal: Some(time),
            })
        } else if reference.is_some() {
            Expiry::Timeout(ValueOrRef {
                pos,
                reference,
                literal: None,
            })
        } else {
            self.sink.error(
                pos,
                "expiry sets no expiry",
                Some("write expiry = { timeout_secs = 300 }".into()),
            );
            return None;
        };
        Some(ExpirySettings { pos, expiry })
    }

    fn checked<T>(&mut self, pos: Pos, r: Result<T, Issue>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(issue) => {
                self.sink.issue(pos, issue);
                None
            }
        }
    }

    pub(super) fn response_cache(&mut self, t: ResponseCacheT) -> Option<ResponseCache> {
        Some(ResponseCache {
            cache_key: self.cache_key(t.cache_key),
            scope: self.scope(t.scope),
            cache_resource: self.located(t.cache_resource),
            expiry: self.expiry(t.expiry),
            lookup_timeout_secs: self.lookup_timeout(t.lookup_timeout_secs),
            exclude_error_response: t.exclude_error_response.unwrap_or(false),
            skip_cache_lookup: self.located(t.skip_cache_lookup),
            skip_cache_population: self.located(t.skip_cache_population),
            use_accept_header: t.use_accept_header.unwrap_or(false),
            use_response_cache_headers: t.use_response_cache_headers.unwrap_or(false),
            stale_while_revalidate_secs: self
                .seconds_key(t.stale_while_revalidate_secs, "stale_while_revalidate_secs"),
            stale_if_error_secs: self.seconds_key(t.stale_if_error_secs, "stale_if_error_secs"),
        })
    }

    pub(super) fn lookup_cache(&mut self, t: LookupCacheT) -> Option<LookupCache> {
        let cache_key = self.cache_key(t.cache_key);
        let scope = self.scope(t.scope);
        let cache_resource = self.located(t.cache_resource);
        let lookup_timeout_secs = self.lookup_timeout(t.lookup_timeout_secs);
        let assign_to = self.required(t.assign_to, "assign_to", "cached.value");
        Some(LookupCache {
            cache_key,
            scope,
            cache_resource,
            lookup_timeout_secs,
            assign_to: assign_to?,
        })
    }

    pub(super) fn populate_cache(&mut self, t: PopulateCacheT, root: Pos) -> Option<PopulateCache> {
        let cache_key = self.cache_key(t.cache_key);
        let scope = self.scope(t.scope);
        let cache_resource = self.located(t.cache_resource);
        if t.expiry.is_none() {
            self.sink.warning(
                root,
                "no expiry: entries use the stage TTL",
                Some("add expiry = { timeout_secs = 300 }".into()),
            );
        }
        let expiry = self.expiry(t.expiry);
        let source = self.required(t.source, "source", "response.content");
        Some(PopulateCache {
            cache_key,
            scope,
            cache_resource,
            expiry,
            source: source?,
        })
    }

    pub(super) fn invalidate_cache(&mut self, t: InvalidateCacheT) -> Option<InvalidateCache> {
        let cache_context = t.cache_context.map(|c| {
            let pos = self.at(&c);
            let c = c.into_inner();
            let mut value = |v: Option<Spanned<StrOrRef>>| {
                let v = v?;
                let vpos = self.at(&v);
                let v = v.into_inner();
                let nonempty =
                    |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
                let (reference, literal) = (nonempty(v.reference), nonempty(v.value));
                (reference.is_some() || literal.is_some()).then_some(ValueOrRef {
                    pos: vpos,
                    reference,
                    literal,
                })
            };
            CacheContext {
                pos,
                api_proxy_name: value(c.api_proxy_name),
                proxy_name: value(c.proxy_name),
                target_name: value(c.target_name),
            }
        });
        Some(InvalidateCache {
            cache_key: self.cache_key(t.cache_key),
            scope: self.scope(t.scope),
            cache_resource: self.located(t.cache_resource),
            cache_context,
            purge_child_entries: t.purge_child_entries.unwrap_or(false),
            ignore_unresolved_variables: t.ignore_unresolved_variables.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{messages, outcome};
    use crate::diag::Pos;
    use crate::policy::model::{Expiry, Policy};

    #[test]
    fn lookup_cache_example() {
        let out = outcome(
            r#"[LookupCache]
name = "LookupCache-tier"
display_name = "Lookup tier"
scope = "Exclusive"
cache_resource = "tiers"
lookup_timeout_secs = 1
assign_to = "client.tier"
[LookupCache.cache_key]
prefix = "tier"
fragments = [ { ref = "request.header.x-client-id" }, { literal = "v1" } ]
"#,
        );
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        let Some(p) = out.policy else {
            panic!("no policy")
        };
        assert_eq!(p.name(), "LookupCache-tier");
        assert_eq!(p.pos, Pos::new(1, 2));
        assert_eq!(p.common.name.pos, Pos::new(2, 8));
        let Policy::LookupCache(lc) = p.policy else {
            panic!("kind")
        };
        assert_eq!(lc.assign_to.value, "client.tier");
        assert_eq!(lc.assign_to.pos, Pos::new(7, 13));
        assert_eq!(lc.lookup_timeout_secs.map(|l| l.value), Some(1));
        assert_eq!(
            lc.cache_key.prefix.map(|p| p.value).as_deref(),
            Some("tier")
        );
        assert_eq!(lc.cache_key.fragments.len(), 2);
        assert_eq!(lc.cache_key.fragments[1].literal.as_deref(), Some("v1"));
    }

    #[test]
    fn expiry_forms() {
        let base = "[PopulateCache]\nname='p'\nsource='v'\ncache_key={fragments=[{literal='a'}]}\n";
        let ok = |e: &str| {
            let out = outcome(&format!("{base}expiry = {e}\n"));
            assert!(!out.has_errors(), "{e}: {:?}", out.diagnostics);
            out.policy.and_then(|p| match p.policy {
                Policy::PopulateCache(pc) => pc.expiry.map(|e| e.expiry),
                _ => None,
            })
        };
        assert!(
            matches!(ok("{ timeout_secs = 300 }"), Some(Expiry::Timeout(v)) if v.literal == Some(300))
        );
        assert!(
            matches!(ok("{ ref = 'flow.ttl' }"), Some(Expiry::Timeout(v)) if v.literal.is_none() && v.reference.is_some())
        );
        assert!(matches!(
            ok("{ date = '12-31-2026', ref = 'd' }"),
            Some(Expiry::Date(_))
        ));
        assert!(matches!(
            ok("{ time_of_day = '03:00:00' }"),
            Some(Expiry::TimeOfDay(_))
        ));
        for (e, want) in [
            ("{}", "sets no expiry"),
            (
                "{ timeout_secs = 1, date = '12-31-2026' }",
                "more than one kind",
            ),
            ("{ timeout_secs = -1 }", "InvalidTimeout"),
            ("{ date = '2026-12-31' }", "mm-dd-yyyy"),
            ("{ time_of_day = '3:00' }", "hh:mm:ss"),
            ("{ timeout = 3 }", "unknown field `timeout`"),
        ] {
            let m = messages(&format!("{base}expiry = {e}\n"));
            assert!(m.iter().any(|m| m.contains(want)), "{e}: {m:?}");
        }
        let m = messages(base);
        assert!(m.iter().any(|m| m.contains("warning: no expiry")), "{m:?}");
    }
}
