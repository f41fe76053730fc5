//! What cachegate does with each Apigee policy kind it meets in a bundle (or as an XML policy file
//! beside a stage.toml, which is how `cachegate import` keeps a bundle's skipped policies).
//!
//! Real bundles hold many kinds besides the cache policies (shared reference
//! `apigee-bundles.md` §9). cachegate runs the cache policies and AssignMessage. Every other kind
//! is refused by default, naming the policy and its steps, because a bundle that runs with a
//! policy silently missing does not mean what its author wrote. A stage may list kinds to run
//! as no-ops (`skip_policies`); kinds that protect the API need a second, explicit
//! acknowledgement (`acknowledge_unprotected`), since skipping them opens the API (and its
//! cache) to callers Apigee would have refused; a few kinds can never be skipped, because the
//! response itself depends on them.

/// What cachegate does with a policy kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// cachegate runs it.
    Run,
    /// Can be listed in `skip_policies` and then runs as a no-op.
    Skippable(Family),
    /// Can be skipped only when also listed in `acknowledge_unprotected`.
    Security,
    /// Can never be skipped: the status or body of responses depends on it.
    Never,
}

/// Why a skippable kind is safe enough to skip, for the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Logging and analytics: nothing a client sees changes.
    Observability,
    /// Rate limits: skipping lets more traffic through.
    Traffic,
    /// Code, callouts and transformations: the variables they set stay unset and the messages
    /// they change stay as they were.
    Mediation,
}

impl Family {
    /// What skipping a kind of this family changes, for the load warning.
    pub fn consequence(self) -> &'static str {
        match self {
            Family::Observability => "nothing is logged or recorded for it",
            Family::Traffic => "its limit is not enforced",
            Family::Mediation => {
                "the variables it sets stay unset and the message it changes stays as it was"
            }
        }
    }
}

/// Kinds cachegate runs.
pub const RUN: [&str; 7] = [
    "ResponseCache",
    "LookupCache",
    "PopulateCache",
    "InvalidateCache",
    "AssignMessage",
    "FlowCallout",
    "RaiseFault",
];

/// Observability kinds.
const OBSERVABILITY: [&str; 4] = [
    "StatisticsCollector",
    "MessageLogging",
    "DataCapture",
    "TraceCapture",
];

/// Rate-limiting kinds.
const TRAFFIC: [&str; 4] = ["Quota", "SpikeArrest", "ConcurrentRatelimit", "ResetQuota"];

/// Kinds that check who the caller is or what it may send.
pub const SECURITY: [&str; 22] = [
    "VerifyAPIKey",
    "OAuthV2",
    "OAuthV1",
    "GetOAuthV2Info",
    "SetOAuthV2Info",
    "DeleteOAuthV2Info",
    "GetOAuthV1Info",
    "DeleteOAuthV1Info",
    "VerifyJWT",
    "VerifyJWS",
    "DecodeJWT",
    "DecodeJWS",
    "BasicAuthentication",
    "AccessControl",
    "JSONThreatProtection",
    "XMLThreatProtection",
    "RegularExpressionProtection",
    "ValidateSAMLAssertion",
    "HMAC",
    "VerifyIAM",
    "OASValidation",
    "Ldap",
];

/// Kinds that run code or call other services: cachegate cannot tell what they check, and
/// real proxies use them to authenticate callers, so skipping them needs the same
/// acknowledgement as a security kind.
pub const CODE: [&str; 9] = [
    "Javascript",
    "JavaCallout",
    "Script",
    "ServiceCallout",
    "ExternalCallout",
    "KeyValueMapOperations",
    "MessageValidation",
    "SanitizeUserPrompt",
    "SanitizeModelResponse",
];

/// Transformations and other kinds whose effect is on variables and messages only.
const MEDIATION: [&str; 17] = [
    "ExtractVariables",
    "XSL",
    "XMLToJSON",
    "JSONToXML",
    "AssertCondition",
    "GenerateJWT",
    "GenerateJWS",
    "GenerateSAMLAssertion",
    "CORS",
    "GraphQL",
    "MonetizationLimitsCheck",
    "PublishMessage",
    "AccessEntity",
    "SetIntegrationRequest",
    "IntegrationCallout",
    "ParseDialogflowRequest",
    "SetDialogflowResponse",
];

/// The disposition of a policy kind (its root element name).
pub fn disposition(kind: &str) -> Disposition {
    if RUN.contains(&kind) {
        Disposition::Run
    } else if SECURITY.contains(&kind) || CODE.contains(&kind) {
        Disposition::Security
    } else if OBSERVABILITY.contains(&kind) {
        Disposition::Skippable(Family::Observability)
    } else if TRAFFIC.contains(&kind) {
        Disposition::Skippable(Family::Traffic)
    } else if MEDIATION.contains(&kind) {
        Disposition::Skippable(Family::Mediation)
    } else {
        // Any kind cachegate does not know (a newer Apigee kind or a misspelling): nothing
        // can be said about what skipping it would change.
        Disposition::Never
    }
}

/// Whether `kind` is an Apigee policy kind cachegate knows but does not run: a stage.toml
/// stage treats an XML file of such a kind as a bundle does (refused, or skipped on request),
/// while an unknown root element stays a parse error with a did-you-mean.
pub fn is_foreign(kind: &str) -> bool {
    match disposition(kind) {
        Disposition::Run | Disposition::Never => false,
        Disposition::Skippable(_) | Disposition::Security => true,
    }
}

/// Whether a kind needing the acknowledgement does so because it runs code or calls out (not
/// because it is a security policy as such), for the messages.
pub fn is_code(kind: &str) -> bool {
    CODE.contains(&kind)
}

/// Why a kind that can never be skipped cannot be, for the error's hint.
pub fn never_reason(_kind: &str) -> &'static str {
    "cachegate does not know this policy kind, so it cannot tell what skipping it would change"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_disposition() {
        assert_eq!(disposition("ResponseCache"), Disposition::Run);
        assert_eq!(disposition("VerifyAPIKey"), Disposition::Security);
        assert_eq!(disposition("OAuthV2"), Disposition::Security);
        assert_eq!(disposition("RaiseFault"), Disposition::Run);
        assert_eq!(
            disposition("Quota"),
            Disposition::Skippable(Family::Traffic)
        );
        assert_eq!(
            disposition("StatisticsCollector"),
            Disposition::Skippable(Family::Observability)
        );
        assert_eq!(disposition("Javascript"), Disposition::Security);
        assert_eq!(disposition("ServiceCallout"), Disposition::Security);
        assert_eq!(
            disposition("ExtractVariables"),
            Disposition::Skippable(Family::Mediation)
        );
        assert_eq!(disposition("VerifyApiKey"), Disposition::Never, "misspelt");
        for k in SECURITY.iter().chain(&CODE) {
            assert_eq!(disposition(k), Disposition::Security, "{k}");
        }
        assert_eq!(disposition("FlowCallout"), Disposition::Run);
    }

    #[test]
    fn foreign_kinds_are_the_known_ones_cachegate_does_not_run() {
        assert!(is_foreign("Quota") && is_foreign("VerifyAPIKey"));
        assert!(!is_foreign("ResponseCache") && !is_foreign("RaiseFault"));
        assert!(
            !is_foreign("ResponseCach"),
            "a misspelling stays a parse error"
        );
    }
}
