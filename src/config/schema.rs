//! JSON Schemas for `gateway.toml` and `stage.toml`, generated from the file model so they can
//! never disagree with the parser (a test fails when the committed copies in `schemas/` are stale).

use super::file::{FileGateway, FileStage};

/// `(file name, schema text)` for every generated schema.
pub fn generate() -> Vec<(&'static str, String)> {
    let render = |s: schemars::schema::RootSchema| {
        let mut text = serde_json::to_string_pretty(&s).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        (
            "gateway.schema.json",
            render(schemars::schema_for!(FileGateway)),
        ),
        (
            "stage.schema.json",
            render(schemars::schema_for!(FileStage)),
        ),
    ]
}
