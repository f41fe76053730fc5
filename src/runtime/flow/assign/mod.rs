//! Running an AssignMessage policy (the subset cachegate supports) against a message.
//!
//! The policy model ([`crate::policy::model::AssignMessage`]) is compiled once, when the
//! configuration is loaded: `{var}` templates are parsed and header names are turned into
//! [`http::HeaderName`]s. Per request, [`CompiledAssignMessage::apply`] renders every template and
//! checks every value *before* it changes anything, so a step that fails (an unresolved variable,
//! a header value carrying CR/LF, an invalid status code, …) leaves the message exactly as it was.
//!
//! The message itself is abstract ([`Message`]): the proxy implements it for the upstream request
//! and for the response to the client, and the tests (`tests/`) for a plain struct.
//!
//! Every template is rendered against the variables as they were when the step started: the
//! changes a step makes to its message are not visible to its own templates. `<AssignVariable>`s
//! are the exception in one way: each sees the variables assigned by the ones before it in the same
//! policy, as in Apigee.
//!
//! # Files
//!
//! `compile.rs` turns the policy model into a [`CompiledAssignMessage`]; `apply.rs` renders,
//! checks and applies it to a [`Message`] (`message.rs`), using the query-string helpers of
//! `query.rs`; `error.rs` holds [`AssignError`]. Imports go one way: `apply.rs` uses the others,
//! `compile.rs` only `error.rs`, and nothing uses `apply.rs`.

mod apply;
pub(crate) mod compile;
mod error;
pub(crate) use error::escaped;
mod message;
mod query;
#[cfg(test)]
mod tests;

pub use compile::CompiledAssignMessage;
pub use error::AssignError;
pub use message::{Message, MessageTarget};
