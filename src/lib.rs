//! cachegate: a declarative, policy-driven caching API gateway on Pingora.

pub mod diag;
pub mod flow;
pub mod policy;
