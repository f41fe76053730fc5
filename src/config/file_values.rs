//! The value sets of string settings, for the JSON Schemas only: each setting is read as a
//! string (so a wrong value gets a positioned error naming the choices, see `compile`), while
//! editors get the enumeration.

use schemars::JsonSchema;

/// Values of `unkeyed_query` (schema only).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum UnkeyedQuerySchema {
    Strip,
    Forward,
}

/// Values of `underscores_in_headers` (schema only).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum UnderscoresSchema {
    Drop,
    Refuse,
    Allow,
}

/// Values of `mode` (schema only).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum ModeSchema {
    Aws,
    Http,
}

/// Values of `unauthorized` (schema only).
#[derive(JsonSchema)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum UnauthorizedSchema {
    FAIL_WITH_403,
    SUCCEED_WITH_RESPONSE_HEADER,
    SUCCEED_WITHOUT_RESPONSE_HEADER,
}
