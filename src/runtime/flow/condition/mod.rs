//! Apigee's condition expression language (`<Condition>` elements, `<SkipCacheLookup>`,
//! `<SkipCachePopulation>`, …).
//!
//! Conditions are parsed once, when the configuration is loaded, into a small AST in which every
//! pattern (JavaRegex, Matches, MatchesPath) is already compiled. Evaluation then happens per request
//! and does not allocate: it only reads variables through [`Variables`] and compares borrowed strings.
//!
//! # Grammar
//!
//! The grammar follows apigeelint's `Apigee-Condition.pegjs`, and accepts a little more (a literal
//! on the left-hand side, `not` before any operator, single-quoted strings):
//!
//! ```text
//! condition  := or
//! or         := and ( ("or" | "||") and )*
//! and        := unary ( ("and" | "&&") unary )*
//! unary      := ("not" | "!") unary | "(" or ")" | comparison
//! comparison := operand [ [ "not" | "!" ] operator operand ]
//! operand    := variable | "string" | 'string' | number | true | false | null
//! variable   := [a-zA-Z][-a-zA-Z0-9_.]*
//! number     := -?( [0-9]+ ( "." [0-9]+ )? | "." [0-9]+ )
//! ```
//!
//! Keywords (`and`, `or`, `not`, `true`, `false`, `null`) and operator words are case-insensitive.
//! Because the operands of a comparison are always single values, `not` applies to the whole
//! comparison that follows it: `not a = "x" and b` is `(not (a = "x")) and b`.
//! Strings have no escape sequences (a backslash is an ordinary character, which keeps Java regexes
//! readable); to put a `"` in a string, quote it with `'`.
//!
//! # Semantics
//!
//! * An unresolved variable is `null`. `x = null` is true iff `x` is unresolved and `x != null` iff it
//!   resolves. Against anything else `null` is never equal, never ordered, never starts with, and never
//!   matches, so `=`, `>`, `StartsWith`, `~~`, … are false and `!=` is true.
//! * `true`/`false` literals compare case-insensitively with the strings `"true"`/`"false"`.
//! * When both sides are numbers (`[+-]digits[.digits]`), `=`, `!=`, `<`, … compare numerically
//!   (`"1.0" = 1` is true); otherwise `=` is case-sensitive string equality and `<`/`>` compare strings
//!   lexicographically (by bytes).
//! * A variable on its own is true when it resolves to a non-empty value that is not `false` (in any
//!   case); this matches flag-like variables such as `lookupcache.X.cachehit`.
//! * `~~`/JavaRegex must match the whole value (Java's `Matcher.matches()`). Patterns use the syntax
//!   of the Rust `regex` crate, i.e. Java's without look-around, backreferences or possessive
//!   quantifiers; such patterns are rejected when the configuration is loaded.
//! * `~`/Matches/Like is a whole-value glob: `*` matches any run of characters (including `/`) and `?`
//!   exactly one character. It is case-sensitive and has no escapes.
//! * `~/`/MatchesPath/LikePath is a path glob compared segment by segment (split on `/`): a segment
//!   `*` matches exactly one non-empty segment, `**` matches zero or more segments (so `/items/**`
//!   matches `/items`, `/items/`, `/items/7` and `/items/7/x`), and inside a segment `*` matches any
//!   run of characters and `?` one character. A trailing `/` is significant: `/items/*` does not match
//!   `/items/7/` (as in Apigee, where `/a` does not match `/a/`).
//!
//! # Files
//!
//! This file holds [`Condition`], the public face. Below it, imports go one way: `eval.rs` walks the
//! AST of `ast.rs`, which `parse.rs` builds from the tokens of `lex.rs`; `pattern.rs` compiles and
//! matches the three pattern languages for both; `error.rs` holds [`ConditionError`].

use std::fmt;

use super::Variables;

mod ast;
mod error;
mod eval;
mod lex;
mod parse;
mod pattern;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic: that is how they fail.
mod tests;

pub use error::ConditionError;
pub use parse::{MAX_CONDITION_LEN, MAX_NESTING_DEPTH};

use ast::{Node, Operand};
use eval::eval_node;

/// A parsed Apigee condition, ready to be evaluated against the flow variables of a request.
///
/// It is parsed once at configuration load so that syntax errors and bad patterns are reported
/// before any traffic is served, and so that per-request evaluation is cheap. Two conditions are
/// equal when their source texts are equal, which is what configuration diffing needs.
#[derive(Clone)]
pub struct Condition {
    source: Box<str>,
    root: Node,
}

impl Condition {
    /// Parses `src`, compiling every pattern it contains.
    ///
    /// Errors carry the byte offset of the problem. Empty (or whitespace-only) text is an error:
    /// callers are expected to treat an empty element as "no condition" before calling this, because
    /// Apigee's meaning for an empty condition depends on where it appears.
    ///
    /// # Errors
    ///
    /// A [`ConditionError`] for any syntax error, an invalid or oversized JavaRegex pattern, a
    /// condition longer than [`MAX_CONDITION_LEN`] bytes, or nesting deeper than
    /// [`MAX_NESTING_DEPTH`].
    pub fn parse(src: &str) -> Result<Condition, ConditionError> {
        let root = parse::parse(src)?;
        Ok(Condition {
            source: src.into(),
            root,
        })
    }

    /// Evaluates the condition against the variables of one request.
    ///
    /// Never fails: unresolved variables are `null`, as in Apigee, so a condition that parsed always
    /// yields an answer. Does not allocate (beyond what `vars` itself does to produce values).
    pub fn eval(&self, vars: &dyn Variables) -> bool {
        eval_node(&self.root, vars)
    }

    /// The text the condition was parsed from, for diagnostics and traces.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every variable name the expression reads, once each, in order of first appearance.
    ///
    /// Validation uses this to flag references to variables that can never exist at the point where
    /// the condition runs (a typo, or a cache policy name that is not defined).
    pub fn variables(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        // An explicit stack rather than recursion, pushing children in reverse to keep source order.
        let mut stack: Vec<&Node> = vec![&self.root];
        while let Some(node) = stack.pop() {
            match node {
                Node::Const(_) => {}
                Node::Truthy(name) => push_unique(&mut out, name),
                Node::Not(inner) => stack.push(inner),
                Node::All(items) | Node::Any(items) => stack.extend(items.iter().rev()),
                Node::Cmp(cmp) => {
                    if let Operand::Var(name) = &cmp.lhs {
                        push_unique(&mut out, name);
                    }
                    if let Some(Operand::Var(name)) = cmp.test.operand() {
                        push_unique(&mut out, name);
                    }
                }
            }
        }
        out
    }
}

fn push_unique<'a>(out: &mut Vec<&'a str>, name: &'a str) {
    if !out.contains(&name) {
        out.push(name);
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Condition {}

impl std::str::FromStr for Condition {
    type Err = ConditionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::parse(s)
    }
}
