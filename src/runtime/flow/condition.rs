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

use std::cmp::Ordering;
use std::fmt;

use regex::{Regex, RegexBuilder};

use super::Variables;

/// Longest condition accepted, in bytes. Real conditions are a few hundred bytes at most; the limit
/// bounds parse time and memory for hostile or broken configuration.
pub const MAX_CONDITION_LEN: usize = 8 * 1024;

/// Deepest nesting of parentheses and `not` accepted. The parser and evaluator recurse once per
/// level, so this bounds their stack use.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Size limit for a compiled JavaRegex (and for its lazy DFA cache). The `regex` crate matches in
/// linear time, so this only bounds memory; patterns that exceed it are rejected at load time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

const OPERATORS_HINT: &str = "valid operators are = == != := > >= < <= =| ~~ ~ ~/ and the words \
     Equals, Is, NotEquals, IsNot, EqualsCaseInsensitive, GreaterThan, GreaterThanOrEquals, \
     LesserThan, LesserThanOrEquals, StartsWith, JavaRegex, Matches, Like, MatchesPath, LikePath";

/// Why a condition could not be parsed.
///
/// `offset` is a byte offset into the condition text so that callers can point at the exact spot
/// (for example with a caret under the XML element's text); `hint` suggests a fix when one is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// Byte offset into the source text where the problem is (always `<=` the source length).
    pub offset: usize,
    /// What is wrong, in one line.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl ConditionError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        ConditionError {
            offset,
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

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
        if src.len() > MAX_CONDITION_LEN {
            // Point at the limit, moved back to a character boundary so callers can slice there.
            let mut offset = MAX_CONDITION_LEN;
            while !src.is_char_boundary(offset) {
                offset -= 1;
            }
            return Err(ConditionError::new(
                offset,
                format!(
                    "condition is too long ({} bytes; the limit is {MAX_CONDITION_LEN})",
                    src.len()
                ),
            )
            .hint("split the logic across several steps or flows"));
        }
        let (toks, lex_err) = lex(src);
        if toks.is_empty() && lex_err.is_none() {
            return Err(ConditionError::new(0, "empty condition")
                .hint("write a condition such as request.verb = \"GET\", or remove the element"));
        }
        let mut p = Parser {
            src,
            toks,
            lex_err,
            pos: 0,
        };
        let root = p.parse_or(0, None)?;
        if let Some(t) = p.peek()? {
            return Err(match t.kind {
                Tok::RParen => {
                    ConditionError::new(t.start, "unbalanced parenthesis: unexpected `)`")
                        .hint("remove it or add a matching `(`")
                }
                _ => ConditionError::new(
                    t.start,
                    format!("unexpected {} after a complete condition", p.describe(t)),
                )
                .hint("combine conditions with `and` or `or`"),
            });
        }
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

// ---------------------------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------------------------

/// `and`/`or` chains are n-ary so that a long chain (`a or b or c …`) is one flat node: the tree's
/// depth, and so recursion in evaluation and drop, is bounded by the nesting limit alone.
#[derive(Debug, Clone)]
enum Node {
    Const(bool),
    Truthy(Box<str>),
    Not(Box<Node>),
    All(Vec<Node>),
    Any(Vec<Node>),
    Cmp(Box<Cmp>),
}

#[derive(Debug, Clone)]
struct Cmp {
    lhs: Operand,
    test: Test,
    /// `!=`, `IsNot`, and `x not StartsWith …` are stored as their positive test, negated.
    negate: bool,
}

#[derive(Debug, Clone)]
enum Operand {
    Var(Box<str>),
    /// A string or number literal; `num` is its numeric value, computed once at parse time.
    Text {
        text: Box<str>,
        num: Option<f64>,
    },
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrdOp {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone)]
enum Test {
    Eq(Operand),
    EqIc(Operand),
    Ord(OrdOp, Operand),
    StartsWith(Operand),
    Regex(Regex),
    Matches(Box<[GlobTok]>),
    MatchesPath(Box<[PathSeg]>),
}

impl Test {
    fn operand(&self) -> Option<&Operand> {
        match self {
            Test::Eq(o) | Test::EqIc(o) | Test::Ord(_, o) | Test::StartsWith(o) => Some(o),
            Test::Regex(_) | Test::Matches(_) | Test::MatchesPath(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobTok {
    Char(char),
    AnyChar,
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathSeg {
    Lit(Box<str>),
    /// A lone `*`: exactly one non-empty segment.
    One,
    /// A segment containing `*` or `?` among other characters.
    Glob(Box<[GlobTok]>),
    /// `**`: zero or more segments.
    Many,
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sym {
    Eq,
    Ne,
    EqIc,
    Gt,
    Ge,
    Lt,
    Le,
    StartsWith,
    Regex,
    Matches,
    MatchesPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'s> {
    LParen,
    RParen,
    And,
    Or,
    Not,
    True,
    False,
    Null,
    Word(&'s str),
    /// Contents, without the quotes.
    Str(&'s str),
    Num(&'s str),
    Op(Sym),
}

#[derive(Debug, Clone, Copy)]
struct Token<'s> {
    kind: Tok<'s>,
    start: usize,
    end: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Splits `src` into tokens. Lexing stops at the first bad character; that error is returned beside
/// the tokens before it, so that the parser can report an earlier syntax error first.
fn lex(src: &str) -> (Vec<Token<'_>>, Option<ConditionError>) {
    let bytes = src.as_bytes();
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let kind = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'"' | b'\'' => {
                let rest = src.get(i + 1..).unwrap_or("");
                match rest.find(b as char) {
                    Some(len) => {
                        i += len + 2;
                        Tok::Str(rest.get(..len).unwrap_or(""))
                    }
                    None => {
                        let q = b as char;
                        return (
                            toks,
                            Some(
                                ConditionError::new(start, "unterminated string literal")
                                    .hint(format!("close the string with {q}")),
                            ),
                        );
                    }
                }
            }
            b if b.is_ascii_alphabetic() => {
                while is_word_byte(at(i)) {
                    i += 1;
                }
                let w = src.get(start..i).unwrap_or("");
                if w.eq_ignore_ascii_case("and") {
                    Tok::And
                } else if w.eq_ignore_ascii_case("or") {
                    Tok::Or
                } else if w.eq_ignore_ascii_case("not") {
                    Tok::Not
                } else if w.eq_ignore_ascii_case("true") {
                    Tok::True
                } else if w.eq_ignore_ascii_case("false") {
                    Tok::False
                } else if w.eq_ignore_ascii_case("null") {
                    Tok::Null
                } else {
                    Tok::Word(w)
                }
            }
            b'0'..=b'9' | b'.' | b'-' => {
                // `.` and `-` only start a number when a digit (or `.digit`) follows.
                let starts_number = b.is_ascii_digit()
                    || at(i + 1).is_ascii_digit()
                    || (b == b'-' && at(i + 1) == b'.' && at(i + 2).is_ascii_digit());
                if !starts_number {
                    return (toks, Some(unexpected_char(src, start)));
                }
                i += 1;
                while is_word_byte(at(i)) && at(i) != b'-' {
                    i += 1;
                }
                let text = src.get(start..i).unwrap_or("");
                if !is_number_literal(text) {
                    return (
                        toks,
                        Some(
                            ConditionError::new(start, format!("invalid number `{text}`")).hint(
                                format!("numbers look like 42, -7 or 0.5; quote text: \"{text}\""),
                            ),
                        ),
                    );
                }
                Tok::Num(text)
            }
            b'=' => match at(i + 1) {
                b'=' => {
                    i += 2;
                    Tok::Op(Sym::Eq)
                }
                b'|' => {
                    i += 2;
                    Tok::Op(Sym::StartsWith)
                }
                _ => {
                    i += 1;
                    Tok::Op(Sym::Eq)
                }
            },
            b'!' => {
                if at(i + 1) == b'=' {
                    i += 2;
                    Tok::Op(Sym::Ne)
                } else {
                    i += 1;
                    Tok::Not
                }
            }
            b':' if at(i + 1) == b'=' => {
                i += 2;
                Tok::Op(Sym::EqIc)
            }
            b'>' | b'<' => {
                let eq = at(i + 1) == b'=';
                i += if eq { 2 } else { 1 };
                Tok::Op(match (b, eq) {
                    (b'>', false) => Sym::Gt,
                    (b'>', true) => Sym::Ge,
                    (_, false) => Sym::Lt,
                    (_, true) => Sym::Le,
                })
            }
            b'~' => match at(i + 1) {
                b'~' => {
                    i += 2;
                    Tok::Op(Sym::Regex)
                }
                b'/' => {
                    i += 2;
                    Tok::Op(Sym::MatchesPath)
                }
                _ => {
                    i += 1;
                    Tok::Op(Sym::Matches)
                }
            },
            b'&' if at(i + 1) == b'&' => {
                i += 2;
                Tok::And
            }
            b'|' if at(i + 1) == b'|' => {
                i += 2;
                Tok::Or
            }
            _ => return (toks, Some(unexpected_char(src, start))),
        };
        toks.push(Token {
            kind,
            start,
            end: i,
        });
    }
    (toks, None)
}

fn unexpected_char(src: &str, at: usize) -> ConditionError {
    let c = src.get(at..).and_then(|s| s.chars().next()).unwrap_or('?');
    let err = ConditionError::new(at, format!("unexpected character `{c}`"));
    match c {
        '&' => err.hint("use `&&` or `and`"),
        '|' => err.hint("use `||` or `or`"),
        ':' => err.hint("use `:=` for a case-insensitive comparison"),
        '-' | '.' => err.hint("numbers look like 42, -7 or 0.5"),
        '{' | '}' => err.hint("conditions use variable names directly, without {braces}"),
        _ => err.hint(
            "conditions contain variable names, quoted strings, numbers, operators and parentheses",
        ),
    }
}

/// `-?( digits ( . digits )? | . digits )`: the literal syntax of the reference grammar.
fn is_number_literal(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (body, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match frac {
        None => digits(int),
        Some(frac) => (int.is_empty() || digits(int)) && digits(frac),
    }
}

/// The numeric value of a string, or `None` if it is not a plain decimal number.
///
/// Deliberately stricter than `f64::from_str`: `inf`, `NaN`, exponents and surrounding whitespace are
/// text, so that e.g. `"nan" = "NaN"` stays a (false) string comparison rather than a NaN comparison.
fn parse_number(s: &str) -> Option<f64> {
    let body = s
        .strip_prefix('-')
        .or_else(|| s.strip_prefix('+'))
        .unwrap_or(s);
    let mut digits = 0usize;
    let mut dots = 0usize;
    for b in body.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return None,
        }
    }
    if digits == 0 || dots > 1 {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| !n.is_nan())
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token<'s>>,
    lex_err: Option<ConditionError>,
    pos: usize,
}

impl<'s> Parser<'s> {
    /// The next token; `Ok(None)` at the end of input, or the lexing error once the parser reaches
    /// the point where lexing stopped.
    fn peek(&self) -> Result<Option<Token<'s>>, ConditionError> {
        match self.toks.get(self.pos) {
            Some(t) => Ok(Some(*t)),
            None => match &self.lex_err {
                Some(e) => Err(e.clone()),
                None => Ok(None),
            },
        }
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn text(&self, t: Token<'s>) -> &'s str {
        self.src.get(t.start..t.end).unwrap_or("")
    }

    fn describe(&self, t: Token<'s>) -> String {
        let text = self.text(t);
        match t.kind {
            Tok::Str(_) => format!("string {text}"),
            Tok::Num(_) => format!("number `{text}`"),
            _ => format!("`{text}`"),
        }
    }

    /// Where the next token starts, or the end of the source.
    fn here(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |t| t.start)
    }

    fn parse_or(&mut self, depth: usize, after: Option<Token<'s>>) -> Result<Node, ConditionError> {
        let first = self.parse_and(depth, after)?;
        let mut items = Vec::new();
        while let Some(t) = self.peek()? {
            if t.kind != Tok::Or {
                break;
            }
            self.bump();
            items.push(self.parse_and(depth, Some(t))?);
        }
        Ok(if items.is_empty() {
            first
        } else {
            items.insert(0, first);
            Node::Any(items)
        })
    }

    fn parse_and(
        &mut self,
        depth: usize,
        after: Option<Token<'s>>,
    ) -> Result<Node, ConditionError> {
        let first = self.parse_unary(depth, after)?;
        let mut items = Vec::new();
        while let Some(t) = self.peek()? {
            if t.kind != Tok::And {
                break;
            }
            self.bump();
            items.push(self.parse_unary(depth, Some(t))?);
        }
        Ok(if items.is_empty() {
            first
        } else {
            items.insert(0, first);
            Node::All(items)
        })
    }

    fn deeper(&self, depth: usize, t: Token<'s>) -> Result<usize, ConditionError> {
        if depth >= MAX_NESTING_DEPTH {
            return Err(ConditionError::new(
                t.start,
                format!(
                    "condition is nested too deeply (more than {MAX_NESTING_DEPTH} levels of \
                     parentheses and `not`)"
                ),
            )
            .hint("simplify the expression"));
        }
        Ok(depth + 1)
    }

    /// `after` is the token that requires a condition to follow (`and`, `or`, `not`, `(`), for the
    /// "missing condition" message.
    fn parse_unary(
        &mut self,
        depth: usize,
        after: Option<Token<'s>>,
    ) -> Result<Node, ConditionError> {
        let Some(t) = self.peek()? else {
            return Err(self.missing_condition(after));
        };
        match t.kind {
            Tok::Not => {
                let depth = self.deeper(depth, t)?;
                self.bump();
                Ok(Node::Not(Box::new(self.parse_unary(depth, Some(t))?)))
            }
            Tok::LParen => {
                let depth = self.deeper(depth, t)?;
                self.bump();
                if let Some(next) = self.peek()? {
                    if next.kind == Tok::RParen {
                        return Err(ConditionError::new(t.start, "empty parentheses")
                            .hint("put a condition inside, or remove them"));
                    }
                }
                let inner = self.parse_or(depth, Some(t))?;
                match self.peek()? {
                    Some(close) if close.kind == Tok::RParen => {
                        self.bump();
                        Ok(inner)
                    }
                    None => Err(ConditionError::new(
                        t.start,
                        "unbalanced parenthesis: this `(` is never closed",
                    )
                    .hint("add a `)`")),
                    Some(other) => Err(ConditionError::new(
                        other.start,
                        format!(
                            "expected `)`, `and` or `or`, found {}",
                            self.describe(other)
                        ),
                    )
                    .hint(format!(
                        "the `(` at byte {} is still open; join conditions with `and` or `or`",
                        t.start
                    ))),
                }
            }
            Tok::RParen | Tok::And | Tok::Or => Err(self.missing_condition(after)),
            _ => self.parse_comparison(t),
        }
    }

    fn missing_condition(&self, after: Option<Token<'s>>) -> ConditionError {
        match after {
            Some(a) => ConditionError::new(
                self.here(),
                format!("missing condition after `{}`", self.text(a)),
            )
            .hint("write a comparison such as request.verb = \"GET\""),
            None => ConditionError::new(self.here(), "expected a condition")
                .hint("write a comparison such as request.verb = \"GET\""),
        }
    }

    fn operand(&self, t: Token<'s>) -> Option<Operand> {
        Some(match t.kind {
            Tok::Word(w) => Operand::Var(w.into()),
            Tok::Str(s) => Operand::Text {
                text: s.into(),
                num: parse_number(s),
            },
            Tok::Num(n) => Operand::Text {
                text: n.into(),
                num: parse_number(n),
            },
            Tok::True => Operand::Bool(true),
            Tok::False => Operand::Bool(false),
            Tok::Null => Operand::Null,
            _ => return None,
        })
    }

    /// The operator at `t`, if it is one (symbol or case-insensitive word).
    fn operator(&self, t: Token<'s>) -> Option<Sym> {
        match t.kind {
            Tok::Op(s) => Some(s),
            Tok::Word(w) => operator_word(w),
            _ => None,
        }
    }

    fn parse_comparison(&mut self, first: Token<'s>) -> Result<Node, ConditionError> {
        let Some(lhs) = self.operand(first) else {
            return Err(ConditionError::new(
                first.start,
                format!("expected a condition, found {}", self.describe(first)),
            )
            .hint("a comparison starts with a variable name, e.g. request.verb = \"GET\""));
        };
        self.bump();

        // Operator, possibly preceded by `not`.
        let next = self.peek()?;
        let (negate, op_tok) = match next {
            None => return self.bare(first, lhs),
            Some(t) => match t.kind {
                Tok::RParen | Tok::And | Tok::Or => return self.bare(first, lhs),
                Tok::Not => {
                    self.bump();
                    match self.peek()? {
                        Some(op) if self.operator(op).is_some() => (true, op),
                        Some(other) => {
                            return Err(self.not_an_operator(other, Some(t)));
                        }
                        None => {
                            return Err(ConditionError::new(
                                self.src.len(),
                                "expected an operator after `not`",
                            )
                            .hint(OPERATORS_HINT));
                        }
                    }
                }
                _ if self.operator(t).is_some() => (false, t),
                _ => return Err(self.not_an_operator(t, None)),
            },
        };
        let Some(sym) = self.operator(op_tok) else {
            return Err(self.not_an_operator(op_tok, None));
        };
        self.bump();

        // Right operand.
        let op_text = self.text(op_tok);
        let rhs_tok = match self.peek()? {
            Some(t) if self.operand(t).is_some() => t,
            other => {
                let mut err = match other {
                    Some(t) if !matches!(t.kind, Tok::RParen | Tok::And | Tok::Or | Tok::Not) => {
                        ConditionError::new(
                            t.start,
                            format!(
                                "expected a variable or value after `{op_text}`, found {}",
                                self.describe(t)
                            ),
                        )
                    }
                    _ => ConditionError::new(
                        self.here(),
                        format!("missing right operand after `{op_text}`"),
                    ),
                };
                err = match (sym, other.map(|t| t.kind)) {
                    (Sym::Eq, Some(Tok::Not)) => err.hint("write `IsNot` or `!=` for not-equals"),
                    (Sym::Regex | Sym::Matches | Sym::MatchesPath, _) => {
                        err.hint("give a quoted pattern, e.g. \"/items/*\"")
                    }
                    _ => err.hint("give a variable name or a value such as \"GET\", 200 or null"),
                };
                return Err(err);
            }
        };
        self.bump();

        let pattern = || -> Result<&'s str, ConditionError> {
            match rhs_tok.kind {
                Tok::Str(s) => Ok(s),
                _ => Err(ConditionError::new(
                    rhs_tok.start,
                    format!("the pattern after `{op_text}` must be a quoted string"),
                )
                .hint(
                    "patterns are compiled when the configuration loads, so they cannot come \
                     from a variable or be a number",
                )),
            }
        };
        let rhs = self.operand(rhs_tok).unwrap_or(Operand::Null);
        let (test, negate) = match sym {
            Sym::Eq => (Test::Eq(rhs), negate),
            Sym::Ne => (Test::Eq(rhs), !negate),
            Sym::EqIc => (Test::EqIc(rhs), negate),
            Sym::Gt => (Test::Ord(OrdOp::Gt, rhs), negate),
            Sym::Ge => (Test::Ord(OrdOp::Ge, rhs), negate),
            Sym::Lt => (Test::Ord(OrdOp::Lt, rhs), negate),
            Sym::Le => (Test::Ord(OrdOp::Le, rhs), negate),
            Sym::StartsWith => (Test::StartsWith(rhs), negate),
            Sym::Regex => (
                Test::Regex(compile_regex(pattern()?, rhs_tok.start)?),
                negate,
            ),
            Sym::Matches => (Test::Matches(compile_glob(pattern()?).into()), negate),
            Sym::MatchesPath => (Test::MatchesPath(compile_path(pattern()?).into()), negate),
        };
        Ok(Node::Cmp(Box::new(Cmp { lhs, test, negate })))
    }

    /// An operand with no operator: a variable's truthiness, or a boolean constant.
    fn bare(&self, t: Token<'s>, lhs: Operand) -> Result<Node, ConditionError> {
        match lhs {
            Operand::Var(name) => Ok(Node::Truthy(name)),
            Operand::Bool(b) => Ok(Node::Const(b)),
            Operand::Text { .. } | Operand::Null => Err(ConditionError::new(
                t.start,
                format!("{} is not a condition on its own", self.describe(t)),
            )
            .hint("compare it with a variable, e.g. request.verb = \"GET\"")),
        }
    }

    fn not_an_operator(&self, t: Token<'s>, after_not: Option<Token<'s>>) -> ConditionError {
        if let Tok::Word(w) = t.kind {
            let hint = match suggest_operator(w) {
                Some(s) => s.to_string(),
                None => OPERATORS_HINT.to_string(),
            };
            return ConditionError::new(t.start, format!("unknown operator `{w}`")).hint(hint);
        }
        let after = match after_not {
            Some(n) => format!("`{}`", self.text(n)),
            None => "the operand".to_string(),
        };
        ConditionError::new(
            t.start,
            format!(
                "expected an operator after {after}, found {}",
                self.describe(t)
            ),
        )
        .hint(OPERATORS_HINT)
    }
}

fn operator_word(w: &str) -> Option<Sym> {
    const WORDS: &[(&str, Sym)] = &[
        ("Equals", Sym::Eq),
        ("Is", Sym::Eq),
        ("NotEquals", Sym::Ne),
        ("IsNot", Sym::Ne),
        ("EqualsCaseInsensitive", Sym::EqIc),
        ("GreaterThan", Sym::Gt),
        ("GreaterThanOrEquals", Sym::Ge),
        ("LesserThan", Sym::Lt),
        ("LesserThanOrEquals", Sym::Le),
        ("StartsWith", Sym::StartsWith),
        ("JavaRegex", Sym::Regex),
        ("Matches", Sym::Matches),
        ("Like", Sym::Matches),
        ("MatchesPath", Sym::MatchesPath),
        ("LikePath", Sym::MatchesPath),
    ];
    WORDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(w))
        .map(|(_, sym)| *sym)
}

/// A targeted hint for common near-misses (other languages' operator names).
fn suggest_operator(w: &str) -> Option<&'static str> {
    const NEAR: &[(&str, &str)] = &[
        (
            "Contains",
            "there is no Contains operator; use Matches \"*text*\" or JavaRegex \".*text.*\"",
        ),
        ("LessThan", "Apigee spells it `LesserThan` (or use `<`)"),
        (
            "LessThanOrEquals",
            "Apigee spells it `LesserThanOrEquals` (or use `<=`)",
        ),
        (
            "LessThanOrEqual",
            "Apigee spells it `LesserThanOrEquals` (or use `<=`)",
        ),
        (
            "LesserThanOrEqual",
            "Apigee spells it `LesserThanOrEquals` (or use `<=`)",
        ),
        (
            "GreaterThanOrEqual",
            "Apigee spells it `GreaterThanOrEquals` (or use `>=`)",
        ),
        ("Equal", "Apigee spells it `Equals` (or use `=`)"),
        ("NotEqual", "Apigee spells it `NotEquals` (or use `!=`)"),
        (
            "EndsWith",
            "there is no EndsWith operator; use Matches \"*suffix\"",
        ),
        (
            "In",
            "there is no In operator; combine comparisons with `or`",
        ),
        ("Regex", "Apigee calls it `JavaRegex` (or use `~~`)"),
    ];
    NEAR.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(w))
        .map(|(_, hint)| *hint)
}

/// Compiles a JavaRegex pattern so that it must match the whole value, as Java's
/// `Matcher.matches()` does.
///
/// The pattern is first compiled on its own: that rejects text such as `a)|(b` which, once wrapped
/// in `\A(?:…)\z`, would otherwise escape the anchors and match a different language.
fn compile_regex(pat: &str, offset: usize) -> Result<Regex, ConditionError> {
    let build = |p: &str| {
        RegexBuilder::new(p)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
    };
    let bad = |e: regex::Error| {
        let err = ConditionError::new(
            offset,
            format!("invalid JavaRegex pattern: {}", regex_error_summary(&e)),
        );
        match e {
            regex::Error::CompiledTooBig(_) => err.hint("simplify the pattern"),
            _ => err.hint(
                "patterns use Rust regex syntax: Java's, without look-around, backreferences or \
                 possessive quantifiers",
            ),
        }
    };
    build(pat).map_err(bad)?;
    build(&format!(r"\A(?:{pat})\z"))
        .map_err(|e| bad(e).hint("a `#` comment in (?x) mode must end with a newline"))
}

fn regex_error_summary(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => {
            let line = s
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .or_else(|| s.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("syntax error");
            line.trim().to_string()
        }
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled pattern exceeds the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

fn compile_glob(pat: &str) -> Vec<GlobTok> {
    let mut out = Vec::with_capacity(pat.len());
    for c in pat.chars() {
        let tok = match c {
            '*' => GlobTok::Star,
            '?' => GlobTok::AnyChar,
            c => GlobTok::Char(c),
        };
        // Consecutive stars are one star; keeping them would only slow matching down.
        if tok == GlobTok::Star && out.last() == Some(&GlobTok::Star) {
            continue;
        }
        out.push(tok);
    }
    out
}

fn compile_path(pat: &str) -> Vec<PathSeg> {
    let mut out: Vec<PathSeg> = Vec::new();
    for seg in pat.split('/') {
        let s = match seg {
            "**" => PathSeg::Many,
            "*" => PathSeg::One,
            s if s.contains(['*', '?']) => PathSeg::Glob(compile_glob(s).into()),
            s => PathSeg::Lit(s.into()),
        };
        if s == PathSeg::Many && out.last() == Some(&PathSeg::Many) {
            continue;
        }
        out.push(s);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

fn eval_node(node: &Node, vars: &dyn Variables) -> bool {
    match node {
        Node::Const(b) => *b,
        Node::Truthy(name) => match vars.get(name) {
            Some(v) => !v.is_empty() && !v.eq_ignore_ascii_case("false"),
            None => false,
        },
        Node::Not(inner) => !eval_node(inner, vars),
        Node::All(items) => items.iter().all(|n| eval_node(n, vars)),
        Node::Any(items) => items.iter().any(|n| eval_node(n, vars)),
        Node::Cmp(cmp) => cmp.eval(vars) != cmp.negate,
    }
}

/// Numeric value of a text: known for literals (parsed once), parsed on demand for variables so
/// that a comparison with a non-numeric literal never parses the variable.
#[derive(Clone, Copy)]
enum Num {
    Known(Option<f64>),
    Unknown,
}

/// A resolved operand, borrowing from the AST or from the variable's value.
#[derive(Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Text(&'a str, Num),
}

impl<'a> Val<'a> {
    fn text(self) -> Option<&'a str> {
        match self {
            Val::Null => None,
            Val::Bool(b) => Some(bool_str(b)),
            Val::Text(s, _) => Some(s),
        }
    }

    fn num(self) -> Option<f64> {
        match self {
            Val::Null | Val::Bool(_) => None,
            Val::Text(_, Num::Known(n)) => n,
            Val::Text(s, Num::Unknown) => parse_number(s),
        }
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// Resolves `op` and passes it to `f`; the callback form lets a variable's `Cow` live on this
/// stack frame instead of being copied.
fn with_val<R>(op: &Operand, vars: &dyn Variables, f: impl FnOnce(Val<'_>) -> R) -> R {
    match op {
        Operand::Var(name) => {
            let v = vars.get(name);
            f(match &v {
                Some(s) => Val::Text(s, Num::Unknown),
                None => Val::Null,
            })
        }
        Operand::Text { text, num } => f(Val::Text(text, Num::Known(*num))),
        Operand::Bool(b) => f(Val::Bool(*b)),
        Operand::Null => f(Val::Null),
    }
}

impl Cmp {
    /// The positive test (before `negate`).
    fn eval(&self, vars: &dyn Variables) -> bool {
        match &self.test {
            Test::Eq(rhs) => with_val(&self.lhs, vars, |l| with_val(rhs, vars, |r| equals(l, r))),
            Test::EqIc(rhs) => with_val(&self.lhs, vars, |l| {
                with_val(rhs, vars, |r| equals_ignore_case(l, r))
            }),
            Test::Ord(op, rhs) => with_val(&self.lhs, vars, |l| {
                with_val(rhs, vars, |r| match compare(l, r) {
                    None => false,
                    Some(ord) => match op {
                        OrdOp::Gt => ord == Ordering::Greater,
                        OrdOp::Ge => ord != Ordering::Less,
                        OrdOp::Lt => ord == Ordering::Less,
                        OrdOp::Le => ord != Ordering::Greater,
                    },
                })
            }),
            Test::StartsWith(rhs) => with_val(&self.lhs, vars, |l| {
                with_val(rhs, vars, |r| match (l.text(), r.text()) {
                    (Some(a), Some(b)) => a.starts_with(b),
                    _ => false,
                })
            }),
            Test::Regex(re) => with_val(&self.lhs, vars, |l| {
                l.text().is_some_and(|s| re.is_match(s))
            }),
            Test::Matches(glob) => with_val(&self.lhs, vars, |l| {
                l.text().is_some_and(|s| glob_match(glob, s))
            }),
            Test::MatchesPath(segs) => with_val(&self.lhs, vars, |l| {
                l.text().is_some_and(|s| path_match(segs, s))
            }),
        }
    }
}

fn equals(l: Val<'_>, r: Val<'_>) -> bool {
    match (l, r) {
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        (Val::Bool(a), Val::Bool(b)) => a == b,
        (Val::Bool(b), Val::Text(t, _)) | (Val::Text(t, _), Val::Bool(b)) => {
            t.eq_ignore_ascii_case(bool_str(b))
        }
        (Val::Text(a, _), Val::Text(b, _)) => {
            if a == b {
                return true;
            }
            // The right side is usually the literal, whose number is already known.
            let Some(y) = r.num() else { return false };
            l.num() == Some(y)
        }
    }
}

fn equals_ignore_case(l: Val<'_>, r: Val<'_>) -> bool {
    match (l, r) {
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        _ => match (l.text(), r.text()) {
            (Some(a), Some(b)) => str_eq_ignore_case(a, b),
            _ => false,
        },
    }
}

/// Unicode-aware case-insensitive equality without allocating (Java's `equalsIgnoreCase` is
/// Unicode-aware too); ASCII strings take the fast path.
fn str_eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// Numeric ordering when both sides are numbers, byte-wise string ordering otherwise; `None` if
/// either side is null.
fn compare(l: Val<'_>, r: Val<'_>) -> Option<Ordering> {
    let (a, b) = (l.text()?, r.text()?);
    if let Some(y) = r.num() {
        if let Some(x) = l.num() {
            return x.partial_cmp(&y);
        }
    }
    Some(a.cmp(b))
}

/// Classic wildcard matching (greedy, with one backtrack point at the last star), generic over the
/// unit being matched: characters for globs, path segments for MatchesPath. Runs in
/// O(pattern × input) without allocating, whatever the pattern, so hostile patterns cannot blow up.
fn wild_match<T, U, I>(
    pat: &[T],
    is_star: impl Fn(&T) -> bool,
    unit_matches: impl Fn(&T, &U) -> bool,
    input: I,
) -> bool
where
    I: Iterator<Item = U> + Clone,
{
    let mut p = 0usize;
    let mut cur = input;
    // (pattern index after the last star, input position the star has consumed up to)
    let mut backtrack: Option<(usize, I)> = None;
    loop {
        let mut next = cur.clone();
        let Some(unit) = next.next() else { break };
        match pat.get(p) {
            Some(t) if is_star(t) => {
                p += 1;
                backtrack = Some((p, cur.clone()));
                continue;
            }
            Some(t) if unit_matches(t, &unit) => {
                p += 1;
                cur = next;
                continue;
            }
            _ => {}
        }
        match backtrack.as_mut() {
            Some((bp, bi)) => {
                // Let the last star swallow one more unit and retry from there.
                bi.next();
                p = *bp;
                cur = bi.clone();
            }
            None => return false,
        }
    }
    pat.get(p..).is_some_and(|rest| rest.iter().all(is_star))
}

fn glob_match(glob: &[GlobTok], s: &str) -> bool {
    wild_match(
        glob,
        |t| *t == GlobTok::Star,
        |t, c: &char| match t {
            GlobTok::Char(x) => x == c,
            GlobTok::AnyChar => true,
            GlobTok::Star => false,
        },
        s.chars(),
    )
}

fn path_match(segs: &[PathSeg], path: &str) -> bool {
    wild_match(
        segs,
        |s| *s == PathSeg::Many,
        |seg, value: &&str| match seg {
            PathSeg::Lit(l) => **l == **value,
            PathSeg::One => !value.is_empty(),
            PathSeg::Glob(g) => glob_match(g, value),
            PathSeg::Many => false,
        },
        path.split('/'),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic: that is how they fail.
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn eval(src: &str, pairs: &[(&str, &str)]) -> bool {
        Condition::parse(src)
            .unwrap_or_else(|e| panic!("{src:?} failed to parse: {e:?}"))
            .eval(&vars(pairs))
    }

    fn err(src: &str) -> ConditionError {
        match Condition::parse(src) {
            Ok(c) => panic!("{src:?} unexpectedly parsed: {c:?}"),
            Err(e) => e,
        }
    }

    // --- the real expressions from configurations -------------------------------------------

    #[test]
    fn matches_path_double_star() {
        let c = r#"proxy.pathsuffix MatchesPath "/items/**""#;
        assert!(eval(c, &[("proxy.pathsuffix", "/items/7")]));
        assert!(eval(c, &[("proxy.pathsuffix", "/items/7/x")]));
        assert!(eval(c, &[("proxy.pathsuffix", "/items")]));
        assert!(eval(c, &[("proxy.pathsuffix", "/items/")]));
        assert!(!eval(c, &[("proxy.pathsuffix", "/itemsX")]));
        assert!(!eval(c, &[("proxy.pathsuffix", "/other/7")]));
        assert!(!eval(c, &[]));
    }

    #[test]
    fn parenthesised_and_uppercase() {
        let c = r#"(proxy.pathsuffix MatchesPath "/products") AND (request.verb = "GET")"#;
        assert!(eval(
            c,
            &[("proxy.pathsuffix", "/products"), ("request.verb", "GET")]
        ));
        assert!(!eval(
            c,
            &[("proxy.pathsuffix", "/products"), ("request.verb", "POST")]
        ));
        assert!(!eval(
            c,
            &[("proxy.pathsuffix", "/products/1"), ("request.verb", "GET")]
        ));
        assert!(!eval(
            c,
            &[("proxy.pathsuffix", "/products/"), ("request.verb", "GET")]
        ));
    }

    #[test]
    fn not_regex_or_bypass_header() {
        let c = r#"NOT (request.verb JavaRegex "(GET|HEAD)") or request.header.x-bypass-cache = "true""#;
        assert!(!eval(c, &[("request.verb", "GET")]));
        assert!(!eval(c, &[("request.verb", "HEAD")]));
        assert!(eval(c, &[("request.verb", "POST")]));
        // Whole-value match: "GETX" is not GET.
        assert!(eval(c, &[("request.verb", "GETX")]));
        assert!(eval(
            c,
            &[
                ("request.verb", "GET"),
                ("request.header.x-bypass-cache", "true")
            ]
        ));
        assert!(!eval(
            c,
            &[
                ("request.verb", "GET"),
                ("request.header.x-bypass-cache", "TRUE")
            ]
        ));
        // Unresolved verb: the regex does not match null, so NOT(...) is true.
        assert!(eval(c, &[]));
        let parsed = Condition::parse(c).unwrap();
        assert_eq!(
            parsed.variables(),
            vec!["request.verb", "request.header.x-bypass-cache"]
        );
    }

    #[test]
    fn bypass_and_cachehit_true_literal() {
        let c = r#"(request.header.x-bypass-cache != "true") and (responsecache.RC-CacheVolumes.cachehit = true)"#;
        assert!(eval(
            c,
            &[("responsecache.RC-CacheVolumes.cachehit", "true")]
        ));
        assert!(eval(
            c,
            &[("responsecache.RC-CacheVolumes.cachehit", "TRUE")]
        ));
        assert!(!eval(
            c,
            &[("responsecache.RC-CacheVolumes.cachehit", "false")]
        ));
        assert!(!eval(
            c,
            &[
                ("responsecache.RC-CacheVolumes.cachehit", "true"),
                ("request.header.x-bypass-cache", "true")
            ]
        ));
        assert!(eval(
            c,
            &[
                ("responsecache.RC-CacheVolumes.cachehit", "true"),
                ("request.header.x-bypass-cache", "no")
            ]
        ));
        assert!(!eval(c, &[]));
    }

    #[test]
    fn cachehit_false_spellings() {
        for c in [
            "responsecache.RC-CacheVolumes.cachehit = false",
            "responsecache.RC-CacheVolumes.cachehit == false",
            "responsecache.RC-CacheVolumes.cachehit is false",
            "responsecache.RC-CacheVolumes.cachehit Equals FALSE",
        ] {
            assert!(
                eval(c, &[("responsecache.RC-CacheVolumes.cachehit", "false")]),
                "{c}"
            );
            assert!(
                !eval(c, &[("responsecache.RC-CacheVolumes.cachehit", "true")]),
                "{c}"
            );
            assert!(!eval(c, &[]), "{c}");
        }
        let c = r#"lookupcache.LC-tier.cachehit = "false""#;
        assert!(eval(c, &[("lookupcache.LC-tier.cachehit", "false")]));
        assert!(!eval(c, &[("lookupcache.LC-tier.cachehit", "FALSE")]));
        for c in [
            "lookupcache.LC-tier.cachehit == false",
            "lookupcache.LC-tier.cachehit is false",
        ] {
            assert!(eval(c, &[("lookupcache.LC-tier.cachehit", "false")]), "{c}");
            assert!(eval(c, &[("lookupcache.LC-tier.cachehit", "False")]), "{c}");
            assert!(!eval(c, &[("lookupcache.LC-tier.cachehit", "true")]), "{c}");
            assert_eq!(
                Condition::parse(c).unwrap().variables(),
                vec!["lookupcache.LC-tier.cachehit"]
            );
        }
    }

    #[test]
    fn header_equality() {
        let c = r#"request.header.cache-control = "no-cache""#;
        assert!(eval(c, &[("request.header.cache-control", "no-cache")]));
        assert!(!eval(c, &[("request.header.cache-control", "No-Cache")]));
        assert!(!eval(
            c,
            &[("request.header.cache-control", "no-cache, no-store")]
        ));
        assert!(!eval(c, &[]));
        let c = r#"request.header.skip-lookup = "true""#;
        assert!(eval(c, &[("request.header.skip-lookup", "true")]));
        assert!(!eval(c, &[("request.header.skip-lookup", "1")]));
    }

    #[test]
    fn status_code_numeric() {
        let c = "response.status.code >= 400";
        assert!(eval(c, &[("response.status.code", "400")]));
        assert!(eval(c, &[("response.status.code", "503")]));
        assert!(!eval(c, &[("response.status.code", "200")]));
        // Numeric, not lexicographic: "1000" > "400" although "1" < "4".
        assert!(eval(c, &[("response.status.code", "1000")]));
        assert!(!eval(c, &[("response.status.code", "99")]));
        assert!(!eval(c, &[]));
    }

    #[test]
    fn and_with_not_null() {
        let c = r#"request.verb = "GET" && request.queryparam.w != null"#;
        assert!(eval(
            c,
            &[("request.verb", "GET"), ("request.queryparam.w", "100")]
        ));
        assert!(eval(
            c,
            &[("request.verb", "GET"), ("request.queryparam.w", "")]
        ));
        assert!(!eval(c, &[("request.verb", "GET")]));
        assert!(!eval(
            c,
            &[("request.verb", "PUT"), ("request.queryparam.w", "1")]
        ));
    }

    #[test]
    fn path_single_star_symbol() {
        let c = r#"proxy.pathsuffix ~/ "/items/*""#;
        assert!(eval(c, &[("proxy.pathsuffix", "/items/7")]));
        assert!(!eval(c, &[("proxy.pathsuffix", "/items/7/x")]));
        assert!(!eval(c, &[("proxy.pathsuffix", "/items/7/")]));
        assert!(!eval(c, &[("proxy.pathsuffix", "/items/")]));
        assert!(!eval(c, &[("proxy.pathsuffix", "/items")]));
    }

    #[test]
    fn regex_symbol_is_anchored() {
        let c = r#"request.path ~~ "^/a.*""#;
        assert!(eval(c, &[("request.path", "/a")]));
        assert!(eval(c, &[("request.path", "/abc/d")]));
        assert!(!eval(c, &[("request.path", "/b/a")]));
        let c = r#"request.path ~~ "/a""#;
        assert!(!eval(c, &[("request.path", "/abc")]));
        assert!(!eval(c, &[("request.path", "x/a")]));
        assert!(eval(c, &[("request.path", "/a")]));
        // Backslashes are not string escapes.
        assert!(eval(r#"x ~~ "\d+""#, &[("x", "123")]));
        assert!(!eval(r#"x ~~ "\d+""#, &[("x", "12a")]));
        // Inline flags stay scoped inside the anchoring group.
        assert!(eval(r#"x ~~ "(?i)get""#, &[("x", "GET")]));
        assert!(!eval(r#"x ~~ "(?i)get""#, &[("x", "GETS")]));
        // Anchors survive alternation at top level.
        assert!(!eval(r#"x ~~ "a|b""#, &[("x", "ab")]));
    }

    #[test]
    fn starts_with_symbol() {
        let c = r#"request.uri =| "/prod""#;
        assert!(eval(c, &[("request.uri", "/prod")]));
        assert!(eval(c, &[("request.uri", "/products?x=1")]));
        assert!(!eval(c, &[("request.uri", "/Prod")]));
        assert!(!eval(c, &[("request.uri", "x/prod")]));
        assert!(!eval(c, &[]));
        assert!(eval(
            r#"request.uri StartsWith "/p""#,
            &[("request.uri", "/p")]
        ));
        assert!(eval(
            r#"request.uri not StartsWith "/p""#,
            &[("request.uri", "/q")]
        ));
        assert!(eval(r#"request.uri NOT StartsWith "/p""#, &[]));
    }

    #[test]
    fn equals_case_insensitive() {
        let c = r#"request.verb := "get""#;
        assert!(eval(c, &[("request.verb", "GET")]));
        assert!(eval(c, &[("request.verb", "get")]));
        assert!(!eval(c, &[("request.verb", "GETS")]));
        assert!(!eval(c, &[]));
        assert!(eval(r#"x EqualsCaseInsensitive "ÉTÉ""#, &[("x", "été")]));
    }

    #[test]
    fn matches_glob() {
        let c = r#"request.header.accept ~ "*json*""#;
        assert!(eval(c, &[("request.header.accept", "application/json")]));
        assert!(eval(c, &[("request.header.accept", "json")]));
        assert!(eval(
            c,
            &[("request.header.accept", "application/json; charset=utf-8")]
        ));
        assert!(!eval(c, &[("request.header.accept", "text/html")]));
        assert!(!eval(c, &[]));
        // `*` crosses `/`, `?` is one character, the match is whole-value and case-sensitive.
        assert!(eval(r#"p Matches "/a/*""#, &[("p", "/a/b/c")]));
        assert!(eval(r#"p Like "/a?c""#, &[("p", "/abc")]));
        assert!(eval(r#"p Like "/a?c""#, &[("p", "/aéc")]));
        assert!(!eval(r#"p Like "/a?c""#, &[("p", "/ac")]));
        assert!(!eval(r#"p ~ "/cat""#, &[("p", "/cats")]));
        assert!(!eval(r#"p ~ "/Cat""#, &[("p", "/cat")]));
        assert!(eval(r#"p ~ "a*b*c""#, &[("p", "aXbYbZc")]));
        assert!(!eval(r#"p ~ "a*b*c""#, &[("p", "aXbYbZ")]));
        assert!(eval(r#"p ~ "**""#, &[("p", "")]));
    }

    // --- semantics -----------------------------------------------------------------------

    #[test]
    fn null_semantics() {
        assert!(eval("x = null", &[]));
        assert!(!eval("x = null", &[("x", "")]));
        assert!(eval("x != null", &[("x", "")]));
        assert!(!eval("x != null", &[]));
        assert!(eval("x IsNot null", &[("x", "v")]));
        assert!(eval("null = x", &[]));
        // Unresolved vs non-null: only `!=` (and negations) are true.
        assert!(!eval(r#"x = "a""#, &[]));
        assert!(eval(r#"x != "a""#, &[]));
        assert!(eval(r#"x NotEquals "a""#, &[]));
        assert!(!eval("x > 1", &[]));
        assert!(!eval("x <= 1", &[]));
        assert!(!eval(r#"x := "a""#, &[]));
        assert!(!eval(r#"x ~ "*""#, &[]));
        assert!(!eval(r#"x ~/ "/**""#, &[]));
        assert!(!eval(r#"x ~~ ".*""#, &[]));
        // Two unresolved variables are both null, hence equal.
        assert!(eval("x = y", &[]));
        assert!(!eval("x = y", &[("x", "1")]));
    }

    #[test]
    fn variable_to_variable() {
        assert!(eval("a = b", &[("a", "v"), ("b", "v")]));
        assert!(!eval("a = b", &[("a", "v"), ("b", "w")]));
        assert!(eval("a < b", &[("a", "9"), ("b", "10")]));
        assert!(eval("a StartsWith b", &[("a", "abc"), ("b", "ab")]));
        assert_eq!(
            Condition::parse("a = b").unwrap().variables(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn numeric_and_string_comparisons() {
        assert!(eval("x = 200", &[("x", "200")]));
        assert!(eval("x = 200", &[("x", "200.0")]));
        assert!(eval(r#"x = "1.0""#, &[("x", "1")]));
        assert!(eval("x != 200", &[("x", "404")]));
        assert!(eval("x < -1.5", &[("x", "-2")]));
        assert!(eval("x > .5", &[("x", "0.75")]));
        assert!(eval("x GreaterThan 1", &[("x", "2")]));
        assert!(eval("x GreaterThanOrEquals 2", &[("x", "2")]));
        assert!(eval("x LesserThan 3", &[("x", "2")]));
        assert!(eval("x LesserThanOrEquals 2", &[("x", "2")]));
        // Non-numeric: lexicographic.
        assert!(eval(r#"x < "b""#, &[("x", "a")]));
        assert!(eval(r#"x > "B""#, &[("x", "a")]));
        assert!(eval("x > 10", &[("x", "abc")]));
        // Strict numbers: NaN / inf / whitespace are text.
        assert!(!eval(r#"x = "NaN""#, &[("x", "nan")]));
        assert!(!eval("x = 1", &[("x", " 1")]));
        assert!(!eval("x = 1", &[("x", "1e0")]));
        assert!(eval("x = 1", &[("x", "+1")]));
        // Literal on the left.
        assert!(eval("400 <= x", &[("x", "404")]));
    }

    #[test]
    fn bare_variable_truthiness() {
        assert!(eval("flag", &[("flag", "true")]));
        assert!(eval("flag", &[("flag", "yes")]));
        assert!(!eval("flag", &[("flag", "false")]));
        assert!(!eval("flag", &[("flag", "FALSE")]));
        assert!(!eval("flag", &[("flag", "")]));
        assert!(!eval("flag", &[]));
        assert!(eval("!flag", &[]));
        assert!(eval("not flag", &[("flag", "false")]));
        assert!(eval("(flag)", &[("flag", "1")]));
        assert!(eval("true", &[]));
        assert!(!eval("false", &[]));
        assert!(eval("TRUE or x", &[]));
    }

    #[test]
    fn precedence_and_associativity() {
        // and binds tighter than or.
        assert!(eval("a or b and c", &[("a", "1")]));
        assert!(!eval("(a or b) and c", &[("a", "1")]));
        // not binds to the comparison, tighter than and/or.
        assert!(eval(r#"not a = "x" and b"#, &[("a", "y"), ("b", "1")]));
        assert!(!eval(r#"not a = "x" and b"#, &[("a", "x"), ("b", "1")]));
        assert!(eval(r#"!a = "x" || b"#, &[("a", "x"), ("b", "1")]));
        assert!(eval("not not a", &[("a", "1")]));
        assert!(eval("a && b || c && d", &[("c", "1"), ("d", "1")]));
        assert!(!eval("a && (b || c) && d", &[("c", "1"), ("d", "1")]));
        // Symbols need no surrounding whitespace.
        assert!(eval(r#"a="x"&&b!="y"||c"#, &[("a", "x")]));
        assert!(eval(r#"(a="x")and(b="y")"#, &[("a", "x"), ("b", "y")]));
    }

    #[test]
    fn keywords_and_operator_words_are_case_insensitive() {
        assert!(eval(
            r#"a EQUALS "x" AnD b isnot "y""#,
            &[("a", "x"), ("b", "z")]
        ));
        assert!(eval(
            r#"p matchespath "/a/*" OR p likepath "/b""#,
            &[("p", "/b")]
        ));
        assert!(eval(r#"v javaregex "G.T""#, &[("v", "GET")]));
        assert!(eval(r#"v NOT javaregex "P.*""#, &[("v", "GET")]));
        assert!(eval(r#"v startswith 'G'"#, &[("v", "GET")]));
        assert!(eval(r#"x = NULL"#, &[]));
    }

    #[test]
    fn single_quotes_and_embedded_quotes() {
        assert!(eval(r#"x = 'say "hi"'"#, &[("x", r#"say "hi""#)]));
        assert!(eval(r#"x = "it's""#, &[("x", "it's")]));
        assert!(eval(r#"x = """#, &[("x", "")]));
    }

    #[test]
    fn path_patterns() {
        let m = |pat: &str, path: &str| path_match(&compile_path(pat), path);
        assert!(m("/**", "/"));
        assert!(m("/**", "/a/b/c"));
        assert!(!m("/**", "a"));
        assert!(m("/**/x", "/x"));
        assert!(m("/**/x", "/a/b/x"));
        assert!(!m("/**/x", "/a/b/x/y"));
        assert!(m("/a/**/b/*", "/a/1/2/b/3"));
        assert!(!m("/a/**/b/*", "/a/1/2/b/3/4"));
        assert!(m("/files/*.json", "/files/x.json"));
        assert!(!m("/files/*.json", "/files/a/x.json"));
        assert!(m("/v?/items", "/v1/items"));
        assert!(m("/a/**/**/b", "/a/b"));
        assert!(m("", ""));
        assert!(!m("/a", "/a/"));
    }

    #[test]
    fn glob_worst_case_is_fast() {
        let value = "a".repeat(4000);
        let pat = format!("{}b", "*a".repeat(100));
        let c = Condition::parse(&format!(r#"x ~ "{pat}""#)).unwrap();
        let start = std::time::Instant::now();
        assert!(!c.eval(&vars(&[("x", &value)])));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    // --- API ---------------------------------------------------------------------------------

    #[test]
    fn source_eq_clone_debug() {
        let src = r#"request.verb = "GET""#;
        let a = Condition::parse(src).unwrap();
        let b = a.clone();
        assert_eq!(a, b);
        assert_eq!(a.source(), src);
        assert_eq!(a.to_string(), src);
        assert_ne!(a, Condition::parse(r#"request.verb  = "GET""#).unwrap());
        assert!(format!("{a:?}").contains("request.verb"));
        let c: Condition = src.parse().unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn variables_lists_each_once_in_order() {
        let c = Condition::parse(
            r#"(a = "1" or not b) and c ~~ "x" and a != d and true and e ~/ "/x" and f := "G""#,
        )
        .unwrap();
        assert_eq!(c.variables(), vec!["a", "b", "c", "d", "e", "f"]);
        assert!(Condition::parse("true").unwrap().variables().is_empty());
    }

    // --- errors ------------------------------------------------------------------------------

    #[test]
    fn error_empty() {
        for src in ["", "   ", "\n\t"] {
            let e = err(src);
            assert_eq!(e.message, "empty condition");
            assert_eq!(e.offset, 0);
        }
    }

    #[test]
    fn error_unterminated_string() {
        let src = r#"request.verb = "GET"#;
        let e = err(src);
        assert_eq!(e.message, "unterminated string literal");
        assert_eq!(e.offset, 15);
        assert_eq!(e.hint.as_deref(), Some("close the string with \""));
        assert_eq!(
            err("x = 'abc").hint.as_deref(),
            Some("close the string with '")
        );
    }

    #[test]
    fn error_unknown_operator() {
        let e = err(r#"request.path Contains "/a""#);
        assert_eq!(e.message, "unknown operator `Contains`");
        assert_eq!(e.offset, 13);
        assert!(e.hint.unwrap().contains("Matches"));
        let e = err("x LessThan 3");
        assert_eq!(e.message, "unknown operator `LessThan`");
        assert!(e.hint.unwrap().contains("LesserThan"));
        let e = err("x Frobs 3");
        assert!(e.hint.unwrap().contains("StartsWith"));
        let e = err(r#"x not Frobs "a""#);
        assert_eq!(e.message, "unknown operator `Frobs`");
        assert_eq!(e.offset, 6);
    }

    #[test]
    fn error_missing_right_operand() {
        let e = err("request.verb =");
        assert_eq!(e.message, "missing right operand after `=`");
        assert_eq!(e.offset, 14);
        let e = err("(a = ) and b");
        assert_eq!(e.message, "missing right operand after `=`");
        assert_eq!(e.offset, 5);
        let e = err("a is not null");
        assert_eq!(e.offset, 5);
        assert!(e.hint.unwrap().contains("IsNot"));
        let e = err("a === 1");
        assert_eq!(
            e.message,
            "expected a variable or value after `==`, found `=`"
        );
        assert_eq!(e.offset, 4);
    }

    #[test]
    fn error_unbalanced_parentheses() {
        let e = err(r#"(a = "1" and (b = "2")"#);
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("never closed"), "{e:?}");
        let e = err(r#"a and ((b = "2")"#);
        assert_eq!(e.offset, 6);
        let e = err(r#"a = "1")"#);
        assert_eq!(e.offset, 7);
        assert!(e.message.contains("unexpected `)`"));
        let e = err("()");
        assert_eq!(e.message, "empty parentheses");
        let e = err(r#"(a = "1" b)"#);
        assert_eq!(e.offset, 9);
        assert!(e.hint.unwrap().contains("byte 0"));
    }

    #[test]
    fn error_trailing_garbage() {
        let e = err(r#"a = "1" b = "2""#);
        assert_eq!(e.offset, 8);
        assert!(e.message.contains("after a complete condition"), "{e:?}");
        let e = err(r#"a = "1" "2""#);
        assert_eq!(e.offset, 8);
    }

    #[test]
    fn error_missing_condition() {
        let e = err("a and");
        assert_eq!(e.message, "missing condition after `and`");
        assert_eq!(e.offset, 5);
        let e = err("a || ) ");
        assert_eq!(e.message, "missing condition after `||`");
        assert_eq!(e.offset, 5);
        let e = err("not");
        assert_eq!(e.message, "missing condition after `not`");
        let e = err("and b");
        assert_eq!(e.message, "expected a condition");
        assert_eq!(e.offset, 0);
        let e = err("x not");
        assert_eq!(e.message, "expected an operator after `not`");
    }

    #[test]
    fn error_bare_literals_and_bad_tokens() {
        assert!(err(r#""GET""#)
            .message
            .contains("not a condition on its own"));
        assert!(err("42").message.contains("not a condition on its own"));
        assert!(err("null").message.contains("not a condition on its own"));
        let e = err("a & b");
        assert_eq!(e.offset, 2);
        assert!(e.hint.unwrap().contains("&&"));
        let e = err("x = 2xx");
        assert_eq!(e.message, "invalid number `2xx`");
        assert_eq!(e.offset, 4);
        assert_eq!(err("x = 1.2.3").message, "invalid number `1.2.3`");
        assert_eq!(err("x = -").offset, 4);
        assert_eq!(err("x = {y}").offset, 4);
        assert_eq!(err("x = é").message, "unexpected character `é`");
        let e = err(r#"= "x""#);
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("expected a condition"));
        // A syntax error before a lexing error is reported first.
        let e = err(r#"a Contains "b"#);
        assert_eq!(e.message, "unknown operator `Contains`");
    }

    #[test]
    fn error_patterns() {
        let e = err(r#"x ~~ "(unclosed""#);
        assert_eq!(e.offset, 5);
        assert!(e.message.starts_with("invalid JavaRegex pattern"), "{e:?}");
        assert!(!e.message.contains('\n'));
        let e = err(r#"x JavaRegex "a)|(b""#);
        assert_eq!(e.offset, 12);
        let e = err(r#"x ~~ "(?=look)ahead""#);
        assert!(e.hint.unwrap().contains("look-around"));
        let e = err(r#"x ~~ "a{1000}{1000}{1000}""#);
        assert_eq!(e.offset, 5);
        let e = err(r#"x ~~ "(?x)a # trailing comment""#);
        assert!(e.hint.unwrap().contains("comment"));
        let e = err("x ~~ y");
        assert!(e.message.contains("must be a quoted string"));
        assert_eq!(e.offset, 5);
        let e = err("x MatchesPath 3");
        assert_eq!(e.offset, 14);
        let e = err("x ~ ");
        assert_eq!(e.message, "missing right operand after `~`");
    }

    #[test]
    fn limits() {
        let ok = format!(
            "{}x{}",
            "(".repeat(MAX_NESTING_DEPTH),
            ")".repeat(MAX_NESTING_DEPTH)
        );
        assert!(eval(&ok, &[("x", "1")]));
        let deep = format!(
            "{}x{}",
            "(".repeat(MAX_NESTING_DEPTH + 1),
            ")".repeat(MAX_NESTING_DEPTH + 1)
        );
        let e = err(&deep);
        assert!(e.message.contains("nested too deeply"));
        assert_eq!(e.offset, MAX_NESTING_DEPTH);
        let nots = format!("{}x", "!".repeat(MAX_NESTING_DEPTH + 1));
        assert!(err(&nots).message.contains("nested too deeply"));
        let mixed = format!("{}x{}", "not (".repeat(40), ")".repeat(40));
        assert!(err(&mixed).message.contains("nested too deeply"));

        let wide = format!("x = \"{}\"", "é".repeat(MAX_CONDITION_LEN));
        let e = err(&wide);
        assert!(wide.is_char_boundary(e.offset));
        let long = format!("x = \"{}\"", "a".repeat(MAX_CONDITION_LEN));
        let e = err(&long);
        assert!(e.message.contains("too long"));
        assert!(e.offset <= long.len());

        // A long flat chain is fine (and does not recurse per term).
        let mut chain = String::from("v0");
        let mut i = 1;
        while chain.len() < MAX_CONDITION_LEN - 20 {
            chain.push_str(&format!(" or v{i}"));
            i += 1;
        }
        let c = Condition::parse(&chain).unwrap();
        assert!(!c.eval(&vars(&[])));
        assert!(c.eval(&vars(&[("v1000", "1")])));
        assert_eq!(c.variables().len(), i);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn fragment() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "(",
                ")",
                " and ",
                " or ",
                "&&",
                "||",
                "!",
                "not ",
                " NOT ",
                "x",
                "request.verb",
                "a-b.c",
                " = ",
                "==",
                "!=",
                ":=",
                ">",
                ">=",
                "<",
                "<=",
                "=|",
                "~~",
                "~",
                "~/",
                " Equals ",
                " IsNot ",
                " StartsWith ",
                " JavaRegex ",
                " MatchesPath ",
                " Like ",
                " Contains ",
                "\"GET\"",
                "\"/a/**\"",
                "\"(a|b\"",
                "\"",
                "'",
                "'x'",
                "1",
                "-2.5",
                ".5",
                "1.",
                "true",
                "false",
                "null",
                " ",
                "é",
                "{",
                "-",
                "*",
                "?",
            ])
        }

        fn check(src: &str) {
            match Condition::parse(src) {
                Ok(c) => {
                    let _ = c.eval(&HashMap::new());
                    let _ = c.eval(&vars(&[
                        ("x", "1"),
                        ("request.verb", "GET"),
                        ("a-b.c", "/a/b"),
                    ]));
                    for v in c.variables() {
                        assert!(src.contains(v));
                    }
                }
                Err(e) => {
                    assert!(e.offset <= src.len(), "{src:?} → {e:?}");
                    assert!(src.is_char_boundary(e.offset), "{src:?} → {e:?}");
                    assert!(!e.message.is_empty());
                }
            }
        }

        proptest! {
            #[test]
            fn parse_never_panics_on_arbitrary_strings(src in ".{0,200}") {
                check(&src);
            }

            #[test]
            fn parse_never_panics_on_token_soup(parts in prop::collection::vec(fragment(), 0..40)) {
                check(&parts.concat());
            }
        }
    }
}
