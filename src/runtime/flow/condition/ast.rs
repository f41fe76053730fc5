//! The parsed form of a condition (the AST the parser builds and the evaluator walks), and the
//! strict reading of text as a number that both of them use.

use regex::Regex;

use super::pattern::{GlobTok, PathSeg};

/// `and`/`or` chains are n-ary so that a long chain (`a or b or c …`) is one flat node: the tree's
/// depth, and so recursion in evaluation and drop, is bounded by the nesting limit alone.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Const(bool),
    Truthy(Box<str>),
    Not(Box<Node>),
    All(Vec<Node>),
    Any(Vec<Node>),
    Cmp(Box<Cmp>),
}

#[derive(Debug, Clone)]
pub(super) struct Cmp {
    pub(super) lhs: Operand,
    pub(super) test: Test,
    /// `!=`, `IsNot`, and `x not StartsWith …` are stored as their positive test, negated.
    pub(super) negate: bool,
}

#[derive(Debug, Clone)]
pub(super) enum Operand {
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
pub(super) enum OrdOp {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone)]
pub(super) enum Test {
    Eq(Operand),
    EqIc(Operand),
    Ord(OrdOp, Operand),
    StartsWith(Operand),
    Regex(Regex),
    Matches(Box<[GlobTok]>),
    MatchesPath(Box<[PathSeg]>),
}

impl Test {
    pub(super) fn operand(&self) -> Option<&Operand> {
        match self {
            Test::Eq(o) | Test::EqIc(o) | Test::Ord(_, o) | Test::StartsWith(o) => Some(o),
            Test::Regex(_) | Test::Matches(_) | Test::MatchesPath(_) => None,
        }
    }
}

/// The numeric value of a string, or `None` if it is not a plain decimal number.
///
/// Deliberately stricter than `f64::from_str`: `inf`, `NaN`, exponents and surrounding whitespace are
/// text, so that e.g. `"nan" = "NaN"` stays a (false) string comparison rather than a NaN comparison.
pub(super) fn parse_number(s: &str) -> Option<f64> {
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
