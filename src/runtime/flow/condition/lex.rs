//! The lexer: splits condition text into tokens (parentheses, keywords, words, strings, numbers
//! and operator symbols), each with its byte span for error messages.
//!
//! Only the parser uses it; it knows nothing about what a token means in a condition.

use super::error::ConditionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sym {
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
pub(super) enum Tok<'s> {
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
pub(super) struct Token<'s> {
    pub(super) kind: Tok<'s>,
    pub(super) start: usize,
    pub(super) end: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Splits `src` into tokens. Lexing stops at the first bad character; that error is returned beside
/// the tokens before it, so that the parser can report an earlier syntax error first.
pub(super) fn lex(src: &str) -> (Vec<Token<'_>>, Option<ConditionError>) {
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
