//! Checks shared by the XML and TOML policy parsers: positions, did-you-mean suggestions, policy
//! names, booleans, scopes, timeouts, expiry dates and times of day.
//!
//! Each check returns the parsed value or an [`Issue`] (what is wrong and what to write instead);
//! the parser that called it adds the file and position and turns it into a [`Diagnostic`].

use std::path::Path;

use crate::diag::{Diagnostic, Pos};
use crate::policy::model::{ExpiryDate, Scope, TimeOfDay};

/// Policy files larger than this are rejected without being parsed.
pub const MAX_POLICY_FILE_BYTES: usize = 1024 * 1024;

/// apigeelint PO030 warns when a timeout is longer than 30 days.
pub const LONG_TIMEOUT_SECS: u64 = 30 * 24 * 60 * 60;

/// Longest policy name Apigee accepts.
pub const MAX_NAME_CHARS: usize = 255;

/// What is wrong with a value, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// What is wrong (lower case, no trailing full stop).
    pub message: String,
    /// What to write instead.
    pub hint: Option<String>,
}

impl Issue {
    /// An issue with a hint.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

/// `s` for a message: at most 64 characters, quoted and escaped like a Rust string.
pub fn quoted(s: &str) -> String {
    format!("{:?}", shown(s))
}

/// `s` shortened to at most 64 characters (with `…` when cut), for messages.
pub fn shown(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(63).collect();
        out.push('…');
        out
    }
}

/// `s` on one line (line breaks escaped as `\n`) and at most 1000 characters, so that a message
/// quoting the user's text (or a parser's message quoting it) cannot break the output format.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(1000));
    for (i, c) in s.chars().enumerate() {
        if i >= 999 {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Collects the diagnostics of one file.
#[derive(Debug)]
pub struct Sink<'a> {
    /// The file, as the caller named it.
    pub file: &'a Path,
    /// Everything found so far.
    pub diags: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    /// An empty sink for `file`.
    pub fn new(file: &'a Path) -> Self {
        Self {
            file,
            diags: Vec::new(),
        }
    }

    /// Records an error at `pos`.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, Some(pos), one_line(&message.into()));
        d.hint = hint.map(|h| one_line(&h));
        self.diags.push(d);
    }

    /// Records a warning at `pos`.
    pub fn warning(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::warning(self.file, Some(pos), one_line(&message.into()));
        d.hint = hint.map(|h| one_line(&h));
        self.diags.push(d);
    }

    /// Records an [`Issue`] as an error at `pos`.
    pub fn issue(&mut self, pos: Pos, issue: Issue) {
        self.error(pos, issue.message, issue.hint);
    }

    /// True when an error has been recorded.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// The diagnostics, sorted by position (stable, so same-position diagnostics keep their order).
    pub fn finish(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| d.pos);
        self.diags
    }
}

/// Converts byte offsets to [`Pos`] quickly: line starts are indexed once, and columns are counted
/// from the previous position when offsets come in increasing order (as they do while reading XML),
/// so a large one-line file does not make position lookups quadratic. Gives the same answer as
/// [`Pos::from_offset`].
#[derive(Debug)]
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of each line; `starts[0] == 0`.
    starts: Vec<usize>,
    /// The last position computed: (offset, line index, column).
    memo: Option<(usize, usize, usize)>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self {
            text,
            starts,
            memo: None,
        }
    }

    /// The 1-based line and column of byte `offset`.
    pub fn pos(&mut self, offset: usize) -> Pos {
        let mut offset = offset.min(self.text.len());
        if !self.text.is_char_boundary(offset) {
            // Pos::from_offset falls back to the whole text in this case.
            offset = self.text.len();
        }
        let line = self
            .starts
            .partition_point(|s| *s <= offset)
            .saturating_sub(1);
        let line_start = self.starts.get(line).copied().unwrap_or(0);
        let (from, base_col) = match self.memo {
            Some((o, l, c)) if l == line && o <= offset => (o, c),
            _ => (line_start, 0),
        };
        let col = base_col
            + self
                .text
                .get(from..offset)
                .map(|s| s.chars().count())
                .unwrap_or(0);
        self.memo = Some((offset, line, col));
        Pos::new(saturate(line + 1), saturate(col + 1))
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Levenshtein distance between `a` and `b` (in characters), or `None` when either is too long to
/// be worth comparing.
fn edit_distance(a: &str, b: &str) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        if let Some(first) = cur.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let del = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            let sub = prev
                .get(j)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(cost);
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = del.min(ins).min(sub);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied()
}

/// The candidate `word` was probably meant to be: a case-insensitive match, else the closest one
/// within edit distance 3 (and closer than the candidate's own length).
pub fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(word)) {
        return Some(c);
    }
    candidates
        .iter()
        .filter_map(|c| edit_distance(word, c).map(|d| (d, *c)))
        .filter(|(d, c)| *d <= 3 && *d < c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Checks a policy name: 1–255 characters, each a letter, digit, space, `-`, `_` or `.`.
pub fn check_name(name: &str) -> Result<(), Issue> {
    const HINT: &str = "use 1 to 255 letters, digits, spaces, '-', '_' and '.', e.g. RC-items";
    if name.is_empty() {
        return Err(Issue::new("policy name is empty", HINT));
    }
    let count = name.chars().count();
    if count > MAX_NAME_CHARS {
        return Err(Issue::new(
            format!("policy name is {count} characters long (at most {MAX_NAME_CHARS})"),
            HINT,
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.')))
    {
        return Err(Issue::new(
            format!(
                "policy name {} contains {bad:?}, which is not allowed",
                quoted(name)
            ),
            HINT,
        ));
    }
    Ok(())
}

/// Parses `true` / `false` (any case). `what` names the element or key in the message.
pub fn parse_bool(raw: &str, what: &str) -> Result<bool, Issue> {
    if raw.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if raw.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(Issue::new(
            format!("invalid boolean {} in {what}", quoted(raw)),
            "write true or false",
        ))
    }
}

/// How a written scope matched Apigee's spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeMatch {
    /// Spelt exactly as Apigee does.
    Exact(Scope),
    /// Spelt with different letter case (accepted with a warning).
    WrongCase(Scope),
}

/// Parses a scope; exact spelling, or a case-insensitive match (reported as a warning by callers).
pub fn parse_scope(raw: &str) -> Result<ScopeMatch, Issue> {
    if let Some(s) = Scope::from_name(raw) {
        return Ok(ScopeMatch::Exact(s));
    }
    if let Some(s) = Scope::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(raw))
    {
        return Ok(ScopeMatch::WrongCase(s));
    }
    Err(Issue::new(
        format!("unknown scope {}", quoted(raw)),
        "write one of Global, Application, Proxy, Target, Exclusive (the default)",
    ))
}

/// A problem with a timeout value.
pub fn parse_seconds(raw: &str, what: &str) -> Result<u64, Issue> {
    if let Some(rest) = raw.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(negative_timeout(raw, what));
        }
    }
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Issue::new(
            format!(
                "invalid timeout {} in {what}: not a whole number of seconds",
                quoted(raw)
            ),
            "write a whole number of seconds, e.g. 300",
        ));
    }
    raw.parse::<u64>().map_err(|_| {
        Issue::new(
            format!("invalid timeout {} in {what}: too large", quoted(raw)),
            "write a whole number of seconds, e.g. 300",
        )
    })
}

/// Apigee's `InvalidTimeout` deployment error.
pub fn negative_timeout(raw: &str, what: &str) -> Issue {
    Issue::new(
        format!(
            "invalid timeout {} in {what}: a timeout cannot be negative (InvalidTimeout)",
            shown(raw)
        ),
        "write 0 or a positive whole number of seconds",
    )
}

/// The warning text for a timeout over 30 days, or `None`.
pub fn long_timeout(secs: u64, what: &str) -> Option<Issue> {
    (secs > LONG_TIMEOUT_SECS).then(|| {
        Issue::new(
            format!(
                "{what} of {secs} seconds is longer than 30 days ({LONG_TIMEOUT_SECS} seconds)"
            ),
            "check the value; entries kept this long are rarely intended",
        )
    })
}

const DATE_HINT: &str = "write the date as mm-dd-yyyy, e.g. 12-31-2026";
const TIME_HINT: &str = "write the time as hh:mm:ss (24-hour clock), e.g. 03:00:00";

/// Splits `raw` into numeric fields of the given widths separated by `sep`.
fn fields(raw: &str, sep: char, widths: &[usize]) -> Option<Vec<u32>> {
    let parts: Vec<&str> = raw.split(sep).collect();
    if parts.len() != widths.len() {
        return None;
    }
    parts
        .iter()
        .zip(widths)
        .map(|(p, w)| {
            if p.len() == *w && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse::<u32>().ok()
            } else {
                None
            }
        })
        .collect()
}

/// Parses an `mm-dd-yyyy` expiry date. `what` names the element or key in the message.
pub fn parse_date(raw: &str, what: &str) -> Result<ExpiryDate, Issue> {
    let bad = |why: String| {
        Issue::new(
            format!("invalid date {} in {what}: {why}", quoted(raw)),
            DATE_HINT,
        )
    };
    let Some(f) = fields(raw, '-', &[2, 2, 4]) else {
        return Err(bad("not in the form mm-dd-yyyy".into()));
    };
    let (month, day, year) = match f.as_slice() {
        [m, d, y] => (*m, *d, *y),
        _ => return Err(bad("not in the form mm-dd-yyyy".into())),
    };
    if !(1..=12).contains(&month) {
        return Err(bad(format!("month {month} is not between 1 and 12")));
    }
    if year == 0 {
        return Err(bad("year 0000 does not exist".into()));
    }
    let days = crate::util::days_in_month(i64::from(year), month);
    if day == 0 || day > days {
        return Err(bad(format!(
            "day {day} does not exist in month {month:02} of {year}"
        )));
    }
    match (u8::try_from(month), u8::try_from(day), u16::try_from(year)) {
        (Ok(month), Ok(day), Ok(year)) => Ok(ExpiryDate { month, day, year }),
        _ => Err(bad("not in the form mm-dd-yyyy".into())),
    }
}

/// Parses an `hh:mm:ss` time of day. `what` names the element or key in the message.
pub fn parse_time_of_day(raw: &str, what: &str) -> Result<TimeOfDay, Issue> {
    let bad = |why: String| {
        Issue::new(
            format!("invalid time {} in {what}: {why}", quoted(raw)),
            TIME_HINT,
        )
    };
    let Some(f) = fields(raw, ':', &[2, 2, 2]) else {
        return Err(bad("not in the form hh:mm:ss".into()));
    };
    let (hour, minute, second) = match f.as_slice() {
        [h, m, s] => (*h, *m, *s),
        _ => return Err(bad("not in the form hh:mm:ss".into())),
    };
    if hour > 23 {
        return Err(bad(format!("hour {hour} is not between 00 and 23")));
    }
    if minute > 59 || second > 59 {
        return Err(bad("minutes and seconds must be between 00 and 59".into()));
    }
    match (
        u8::try_from(hour),
        u8::try_from(minute),
        u8::try_from(second),
    ) {
        (Ok(hour), Ok(minute), Ok(second)) => Ok(TimeOfDay {
            hour,
            minute,
            second,
        }),
        _ => Err(bad("not in the form hh:mm:ss".into())),
    }
}

/// Checks a literal `<Set><StatusCode>`: a number from 100 to 599, unless it is a `{var}` template.
pub fn check_status_code(raw: &str, what: &str) -> Result<(), Issue> {
    if raw.contains('{') {
        return Ok(());
    }
    match raw.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(()),
        _ => Err(Issue::new(
            format!("invalid status code {} in {what}", quoted(raw)),
            "write a number from 100 to 599, or a {variable} template",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_agrees_with_pos_from_offset() {
        let text = "ab\ncdé\nf\n\nxyz é é";
        let mut idx = LineIndex::new(text);
        for o in 0..=text.len() + 2 {
            assert_eq!(idx.pos(o), Pos::from_offset(text, o), "offset {o}");
        }
        // Out of order, too.
        for o in (0..=text.len()).rev() {
            assert_eq!(idx.pos(o), Pos::from_offset(text, o), "offset {o}");
        }
    }

    #[test]
    fn suggestions() {
        let c = ["ExcludeErrorResponse", "Scope", "CacheKey"];
        assert_eq!(
            did_you_mean("ExcludeErrorRespons", &c),
            Some("ExcludeErrorResponse")
        );
        assert_eq!(did_you_mean("scope", &c), Some("Scope"));
        assert_eq!(did_you_mean("Quota", &c), None);
        assert_eq!(did_you_mean("x", &["ref"]), None);
    }

    #[test]
    fn names() {
        assert!(check_name("RC-Cache Volumes_1.x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"a".repeat(255)).is_ok());
        assert!(check_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(
            parse_date("12-31-2026", "d"),
            Ok(ExpiryDate {
                month: 12,
                day: 31,
                year: 2026
            })
        );
        assert!(parse_date("02-29-2024", "d").is_ok());
        assert!(parse_date("02-29-2026", "d").is_err());
        assert!(parse_date("02-29-1900", "d").is_err());
        assert!(parse_date("02-29-2000", "d").is_ok());
        assert!(parse_date("04-31-2026", "d").is_err());
        assert!(parse_date("2021-22-99", "d").is_err());
        assert!(parse_date("13-01-2026", "d").is_err());
        assert!(parse_date("1-1-2026", "d").is_err());
        assert_eq!(
            parse_time_of_day("23:59:59", "t"),
            Ok(TimeOfDay {
                hour: 23,
                minute: 59,
                second: 59
            })
        );
        assert!(parse_time_of_day("24:00:00", "t").is_err());
        assert!(parse_time_of_day("03:60:00", "t").is_err());
        assert!(parse_time_of_day("03.00.00", "t").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("300", "t"), Ok(300));
        assert!(parse_seconds("-1", "t").is_err_and(|i| i.message.contains("InvalidTimeout")));
        assert!(parse_seconds("abc", "t").is_err());
        assert!(parse_seconds("99999999999999999999999", "t").is_err());
        assert!(long_timeout(LONG_TIMEOUT_SECS, "t").is_none());
        assert!(long_timeout(LONG_TIMEOUT_SECS + 1, "t").is_some());
    }
}
