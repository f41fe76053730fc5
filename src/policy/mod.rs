//! Policies: the model, and the XML and TOML syntaxes that parse into it.

pub mod model;
