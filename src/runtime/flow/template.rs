//! `{variable}` message templates (AssignMessage payloads, headers, AssignVariable templates).
//!
//! As in Apigee, `{name}` is a variable reference only when `name` is a valid variable token
//! (`[A-Za-z][-A-Za-z0-9_.]*`); any other brace — such as JSON's `{"a": 1}` — is literal text.

use std::borrow::Cow;

use super::Variables;

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A variable reference.
    Var(String),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// A template whose variables did not all resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unresolved variable `{0}` in template")]
pub struct Unresolved(pub String);

fn is_var_token(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Template {
    /// Splits `src` into text and variable pieces. Never fails: unmatched braces are text.
    pub fn compile(src: &str) -> Self {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        while let Some(open) = rest.find('{') {
            let (before, after) = rest.split_at(open);
            text.push_str(before);
            let inner_and_more = &after[1..];
            match inner_and_more.find('}') {
                Some(close) if is_var_token(&inner_and_more[..close]) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(inner_and_more[..close].to_owned()));
                    rest = &inner_and_more[close + 1..];
                }
                _ => {
                    text.push('{');
                    rest = inner_and_more;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Self { pieces }
    }

    /// The variables the template reads.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Renders with `vars`. Unresolved variables are an error unless `ignore_unresolved`, in which
    /// case they render as empty text (Apigee's `IgnoreUnresolvedVariables`).
    pub fn render(
        &self,
        vars: &dyn Variables,
        ignore_unresolved: bool,
    ) -> Result<Cow<'_, str>, Unresolved> {
        if let [Piece::Text(t)] = self.pieces.as_slice() {
            return Ok(Cow::Borrowed(t));
        }
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => match vars.get(v) {
                    Some(val) => out.push_str(&val),
                    None if ignore_unresolved => {}
                    None => return Err(Unresolved(v.clone())),
                },
            }
        }
        Ok(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn json_braces_are_text() {
        let t = Template::compile(r#"{"tier": "{client.tier}", "n": {x}"#);
        assert_eq!(t.variables().collect::<Vec<_>>(), vec!["client.tier", "x"]);
        let mut vars = HashMap::new();
        vars.insert("client.tier".to_owned(), "gold".to_owned());
        vars.insert("x".to_owned(), "1".to_owned());
        assert_eq!(
            t.render(&vars, false).unwrap(),
            r#"{"tier": "gold", "n": 1"#
        );
    }

    #[test]
    fn unresolved_is_an_error_unless_ignored() {
        let t = Template::compile("a{missing}b");
        let vars: HashMap<String, String> = HashMap::new();
        assert_eq!(t.render(&vars, false), Err(Unresolved("missing".into())));
        assert_eq!(t.render(&vars, true).unwrap(), "ab");
        assert_eq!(
            Template::compile("{ {").render(&vars, false).unwrap(),
            "{ {"
        );
    }
}
