//! The parser: turns the lexer's tokens into the AST, compiling every pattern on the way, and
//! reports syntax errors with their byte offset and a hint.
//!
//! It also holds the limits that bound parsing ([`MAX_CONDITION_LEN`], [`MAX_NESTING_DEPTH`]).

use super::ast::{parse_number, Cmp, Node, Operand, OrdOp, Test};
use super::error::ConditionError;
use super::lex::{lex, Sym, Tok, Token};
use super::pattern::{compile_glob, compile_path, compile_regex};

/// Longest condition accepted, in bytes. Real conditions are a few hundred bytes at most; the limit
/// bounds parse time and memory for hostile or broken configuration.
pub const MAX_CONDITION_LEN: usize = 8 * 1024;

/// Deepest nesting of parentheses and `not` accepted. The parser and evaluator recurse once per
/// level, so this bounds their stack use.
pub const MAX_NESTING_DEPTH: usize = 64;

const OPERATORS_HINT: &str = "valid operators are = == != := > >= < <= =| ~~ ~ ~/ and the words \
     Equals, Is, NotEquals, IsNot, EqualsCaseInsensitive, GreaterThan, GreaterThanOrEquals, \
     LesserThan, LesserThanOrEquals, StartsWith, JavaRegex, Matches, Like, MatchesPath, LikePath";

/// Parses `src` into its AST: the work behind `Condition::parse`, which documents the errors.
pub(super) fn parse(src: &str) -> Result<Node, ConditionError> {
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
            Tok::RParen => ConditionError::new(t.start, "unbalanced parenthesis: unexpected `)`")
                .hint("remove it or add a matching `(`"),
            _ => ConditionError::new(
                t.start,
                format!("unexpected {} after a complete condition", p.describe(t)),
            )
            .hint("combine conditions with `and` or `or`"),
        });
    }
    Ok(root)
}

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
