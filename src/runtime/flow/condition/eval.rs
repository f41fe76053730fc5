//! The evaluator: walks the AST against one request's variables and answers true or false.
//!
//! It never fails and does not allocate: unresolved variables are `null`, and values are compared
//! as borrowed strings (or as numbers when both sides are numbers).

use std::cmp::Ordering;

use super::ast::{parse_number, Cmp, Node, Operand, OrdOp, Test};
use super::pattern::{glob_match, path_match};
use crate::runtime::flow::Variables;

pub(super) fn eval_node(node: &Node, vars: &dyn Variables) -> bool {
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
