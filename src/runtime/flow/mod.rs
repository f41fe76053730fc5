//! The flow language, evaluated: flow variables (`vars`), Apigee's condition language
//! (`condition`), `{variable}` templates (`template`) and compiled AssignMessage (`assign`).
//! Choosing the flow and running the steps is the engine's work (`engine::request`).

pub(crate) mod assign;
pub mod condition;
pub(crate) mod template;
pub mod vars;

use std::borrow::Cow;

/// Anything that can resolve flow variables by name (`request.verb`, `request.header.accept`, …).
///
/// Returning `None` means "unresolved" — the variable does not exist for this request — which Apigee
/// treats as `null` in conditions.
pub trait Variables {
    /// The value of variable `name`, if it resolves.
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;

    /// Whether `name` has a value the gateway did not read for this request (a request body
    /// over the read-ahead bound, see `vars::Body::Withheld`): `get` says `None`, yet requests
    /// differ in it, so a cache key must not treat it as absent.
    fn withheld(&self, _name: &str) -> bool {
        false
    }
}

impl Variables for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        std::collections::HashMap::get(self, name).map(|s| Cow::Borrowed(s.as_str()))
    }
}
