//! The TOML → model [`Mapper`] and what every policy kind shares: positions from spans, toml/serde
//! errors turned into diagnostics (with [`error_hint`]), the common keys, and the optional and
//! required string helpers.
//!
//! The kinds' own mappings are further `impl Mapper` blocks in `cache.rs` (the four cache policies)
//! and `assign.rs` (AssignMessage); `mod.rs` reads the file's outline and dispatches on the kind.
//! Kept apart so those files depend on this one and never on each other or on `mod.rs`.

use ::toml::Spanned;

use super::shape::CommonKeys;
use crate::diag::{Located, Pos};
use crate::policy::check::{self, LineIndex, Sink};
use crate::policy::model::Common;

/// Maps a deserialized file to the model, recording every problem in `sink`; `lines` turns
/// toml's byte spans into positions.
pub(super) struct Mapper<'s, 'p, 't> {
    pub(super) sink: &'s mut Sink<'p>,
    pub(super) lines: LineIndex<'t>,
}

impl Mapper<'_, '_, '_> {
    pub(super) fn at<T>(&mut self, s: &Spanned<T>) -> Pos {
        self.lines.pos(s.span().start)
    }

    pub(super) fn toml_error(&mut self, e: &::toml::de::Error) {
        let pos = e.span().map_or(Pos::new(1, 1), |s| self.lines.pos(s.start));
        let mut lines = e.message().lines().map(str::trim).filter(|l| !l.is_empty());
        let mut message = lines.next().unwrap_or("invalid TOML").to_string();
        let rest: Vec<&str> = lines.collect();
        if !rest.is_empty() {
            message = format!("{message}: {}", rest.join("; "));
        }
        let message = message.replace("expected i64", "expected an integer");
        let hint = error_hint(&message);
        self.sink.error(pos, message, hint);
    }

    pub(super) fn common(&mut self, c: &CommonKeys<'_>) -> Common {
        let pos = self.at(c.name);
        if let Err(issue) = check::check_name(c.name.get_ref()) {
            self.sink.issue(pos, issue);
        }
        Common {
            name: Located::new(c.name.get_ref().clone(), pos),
            display_name: c
                .display_name
                .map(str::to_string)
                .filter(|d| !d.trim().is_empty()),
            enabled: c.enabled.unwrap_or(true),
            continue_on_error: c.continue_on_error.unwrap_or(false),
            async_: false,
        }
    }

    /// An optional string: empty = absent.
    pub(super) fn located(&mut self, s: Option<Spanned<String>>) -> Option<Located<String>> {
        let s = s?;
        let pos = self.at(&s);
        let v = s.into_inner();
        (!v.trim().is_empty()).then(|| Located::new(v.trim().to_string(), pos))
    }

    /// A required string: empty is an error.
    pub(super) fn required(
        &mut self,
        s: Spanned<String>,
        key: &str,
        example: &str,
    ) -> Option<Located<String>> {
        let pos = self.at(&s);
        let v = s.into_inner();
        if v.trim().is_empty() {
            self.sink.error(
                pos,
                format!("empty {key}"),
                Some(format!(
                    "write the flow variable's name, e.g. {key} = \"{example}\""
                )),
            );
            return None;
        }
        Some(Located::new(v.trim().to_string(), pos))
    }
}

/// A hint for a serde/toml error message: did-you-mean for unknown keys, an example for missing
/// ones.
fn error_hint(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (word, expected) = rest.split_once('`')?;
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return check::did_you_mean(word, &candidates).map(|s| format!("did you mean `{s}`?"));
    }
    if message.starts_with("invalid type:") {
        let hint = if message.ends_with("expected a boolean") {
            "write true or false, without quotes"
        } else if message.ends_with("expected an integer") {
            "write a whole number, without quotes"
        } else if message.ends_with("expected a string") {
            "write the value in quotes"
        } else {
            return None;
        };
        return Some(hint.to_string());
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let (field, _) = rest.split_once('`')?;
        let example = match field {
            "name" => "name = \"LookupCache-1\"",
            "cache_key" => "cache_key = { fragments = [{ ref = \"request.uri\" }] }",
            "assign_to" => "assign_to = \"cached.value\"",
            "source" => "source = \"response.content\"",
            "template" => "template = \"{variable}\"",
            _ => return Some(format!("add {field} = …")),
        };
        return Some(format!("add {example}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_util::messages;

    #[test]
    fn unknown_key_has_suggestion() {
        let m = messages(
            "[ResponseCache]\nname = \"r\"\nexclude_error_respons = true\ncache_key = { fragments = [{ ref = \"request.uri\" }] }\n",
        );
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("t.toml:3:1: error: unknown field `exclude_error_respons`"),
            "{m:?}"
        );
        assert!(
            m[0].contains("hint: did you mean `exclude_error_response`?"),
            "{m:?}"
        );
    }
}
