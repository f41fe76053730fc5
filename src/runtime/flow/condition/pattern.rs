//! The three pattern languages of conditions: JavaRegex (`~~`), Matches/Like globs (`~`) and
//! MatchesPath/LikePath path globs (`~/`).
//!
//! Patterns are compiled here once, when a condition is parsed, and matched here per request
//! without allocating. Both the parser (compiling) and the evaluator (matching) use this file.

use regex::{Regex, RegexBuilder};

use super::error::ConditionError;

/// Size limit for a compiled JavaRegex (and for its lazy DFA cache). The `regex` crate matches in
/// linear time, so this only bounds memory; patterns that exceed it are rejected at load time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GlobTok {
    Char(char),
    AnyChar,
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PathSeg {
    Lit(Box<str>),
    /// A lone `*`: exactly one non-empty segment.
    One,
    /// A segment containing `*` or `?` among other characters.
    Glob(Box<[GlobTok]>),
    /// `**`: zero or more segments.
    Many,
}

/// Compiles a JavaRegex pattern so that it must match the whole value, as Java's
/// `Matcher.matches()` does.
///
/// The pattern is first compiled on its own: that rejects text such as `a)|(b` which, once wrapped
/// in `\A(?:…)\z`, would otherwise escape the anchors and match a different language.
pub(super) fn compile_regex(pat: &str, offset: usize) -> Result<Regex, ConditionError> {
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

pub(super) fn compile_glob(pat: &str) -> Vec<GlobTok> {
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

pub(super) fn compile_path(pat: &str) -> Vec<PathSeg> {
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

pub(super) fn glob_match(glob: &[GlobTok], s: &str) -> bool {
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

pub(super) fn path_match(segs: &[PathSeg], path: &str) -> bool {
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
