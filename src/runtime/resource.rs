//! Resource path patterns (AWS-style), used by `resources`, `[[cache.method]]` and grants.
//!
//! A pattern is a path relative to the stage's base path, split into segments:
//! - a literal segment matches itself exactly;
//! - `{name}` matches one segment and binds it as path parameter `name`
//!   (`method.request.path.name`);
//! - `{name+}` matches one or more remaining segments (AWS's greedy proxy parameter);
//! - `*` matches exactly one segment;
//! - `**` matches zero or more remaining segments;
//! - the whole pattern `/*` is AWS's spelling of "every resource" and matches any path.
//!
//! Matching ignores one trailing slash on the request path (`/items/` matches `/items`).

use std::fmt;

/// One compiled pattern segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
    Star,
    DoubleStar,
}

/// A compiled resource pattern.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResourcePattern {
    source: String,
    segments: Vec<Segment>,
}

impl fmt::Debug for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourcePattern({})", self.source)
    }
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// How specific a pattern is; larger is more specific. Compared lexicographically: more literal
/// segments first, then fewer wildcards that span several segments, then more segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    literals: usize,
    not_multi: bool,
    singles: usize,
}

impl ResourcePattern {
    /// Compiles `pattern`; the error says what to write instead.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err(format!("resource pattern `{pattern}` must start with `/`"));
        }
        if pattern.contains(['?', '#']) {
            return Err(format!(
                "resource pattern `{pattern}` must not contain `?` or `#`"
            ));
        }
        if pattern == "/*" {
            return Ok(Self {
                source: pattern.to_owned(),
                segments: vec![Segment::DoubleStar],
            });
        }
        let body = pattern.trim_start_matches('/').trim_end_matches('/');
        let mut segments = Vec::new();
        let parts: Vec<&str> = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/').collect()
        };
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.iter().enumerate() {
            let seg = if *part == "*" {
                Segment::Star
            } else if *part == "**" {
                Segment::DoubleStar
            } else if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let (name, greedy) = match inner.strip_suffix('+') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!(
                        "`{part}` is not a valid path parameter; write `{{id}}` or `{{proxy+}}`"
                    ));
                }
                if greedy {
                    Segment::Greedy(name.to_owned())
                } else {
                    Segment::Param(name.to_owned())
                }
            } else if part.is_empty() {
                return Err(format!(
                    "resource pattern `{pattern}` has an empty segment (`//`)"
                ));
            } else if part.contains(['*', '{', '}']) {
                return Err(format!(
                    "segment `{part}` mixes text and wildcards; a segment is either literal, `*`, `**` or `{{name}}`"
                ));
            } else {
                Segment::Literal((*part).to_owned())
            };
            if matches!(seg, Segment::DoubleStar | Segment::Greedy(_)) && i != last {
                return Err(format!(
                    "`{part}` may only be the last segment of `{pattern}`"
                ));
            }
            segments.push(seg);
        }
        Ok(Self {
            source: pattern.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Names of the `{name}` / `{name+}` parameters.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Greedy(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// How specific the pattern is, for "most specific override wins".
    pub fn specificity(&self) -> Specificity {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let singles = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Param(_) | Segment::Star))
            .count();
        let not_multi = !self
            .segments
            .iter()
            .any(|s| matches!(s, Segment::DoubleStar | Segment::Greedy(_)));
        Specificity {
            literals,
            not_multi,
            singles,
        }
    }

    /// True when `path` (relative to the base path, starting with `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        self.match_with(path, |_, _| {})
    }

    /// Matches `path` and returns the bound path parameters.
    pub fn captures<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let mut out = Vec::new();
        self.match_with(path, |name, value| out.push((name, value)))
            .then_some(out)
    }

    fn match_with<'s, 'p>(&'s self, path: &'p str, mut bind: impl FnMut(&'s str, &'p str)) -> bool {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let mut rest = trimmed;
        let mut consumed_all = trimmed.is_empty();
        for seg in &self.segments {
            match seg {
                Segment::DoubleStar => return true,
                Segment::Greedy(name) => {
                    if consumed_all {
                        return false;
                    }
                    bind(name, rest);
                    return true;
                }
                _ => {}
            }
            if consumed_all {
                return false;
            }
            let (head, tail) = match rest.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (rest, None),
            };
            let ok = match seg {
                Segment::Literal(l) => l == head,
                Segment::Param(name) => {
                    bind(name, head);
                    !head.is_empty()
                }
                Segment::Star => !head.is_empty(),
                Segment::DoubleStar | Segment::Greedy(_) => true,
            };
            if !ok {
                return false;
            }
            match tail {
                Some(t) => rest = t,
                None => consumed_all = true,
            }
        }
        consumed_all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ResourcePattern {
        ResourcePattern::parse(s).unwrap()
    }

    #[test]
    fn literal_star_and_params() {
        assert!(p("/items").matches("/items"));
        assert!(p("/items").matches("/items/"));
        assert!(!p("/items").matches("/items/7"));
        assert!(p("/items/*").matches("/items/7"));
        assert!(!p("/items/*").matches("/items"));
        assert!(!p("/items/*").matches("/items/7/x"));
        assert!(p("/items/**").matches("/items"));
        assert!(p("/items/**").matches("/items/7/x"));
        assert!(p("/*").matches("/"));
        assert!(p("/*").matches("/a/b/c"));
        assert!(p("/").matches("/"));
        assert!(!p("/").matches("/a"));
        assert_eq!(
            p("/items/{id}").captures("/items/42"),
            Some(vec![("id", "42")])
        );
        assert_eq!(
            p("/files/{path+}").captures("/files/a/b"),
            Some(vec![("path", "a/b")])
        );
        assert_eq!(p("/files/{path+}").captures("/files"), None);
    }

    #[test]
    fn specificity_orders_overrides() {
        assert!(
            p("/items/{id}").specificity() > p("/items/*").specificity()
                || p("/items/{id}").specificity() == p("/items/*").specificity()
        );
        assert!(p("/items/*").specificity() > p("/*").specificity());
        assert!(p("/items/special").specificity() > p("/items/*").specificity());
        assert!(p("/items/*").specificity() > p("/items/**").specificity());
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(ResourcePattern::parse("items")
            .unwrap_err()
            .contains("must start with `/`"));
        assert!(ResourcePattern::parse("/a/**/b")
            .unwrap_err()
            .contains("last segment"));
        assert!(ResourcePattern::parse("/a*b")
            .unwrap_err()
            .contains("mixes"));
        assert!(ResourcePattern::parse("/{}")
            .unwrap_err()
            .contains("path parameter"));
        assert!(ResourcePattern::parse("/a//b")
            .unwrap_err()
            .contains("empty segment"));
    }
}
