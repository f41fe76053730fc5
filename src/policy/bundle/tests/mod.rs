//! Tests of the bundle parse model: the nine real `apiproxy/` fixtures under
//! `tests/fixtures/apigee-bundles/` (copied from the shared fixtures, licences and MANIFEST.md
//! with them) here, and synthetic bundles written to temporary folders for each rule in
//! `synthetic.rs`.

use std::path::{Path, PathBuf};

use super::model::Endpoint;
use super::{
    load_bundle, policy_header, Bundle, Connection, EndpointKind, RouteTarget, MAX_FILES_PER_FOLDER,
};
use crate::diag::{Diagnostic, Pos};

const FIXTURES: &str = "tests/fixtures/apigee-bundles";

/// The nine API proxy bundles of the fixture set (MANIFEST.md).
const FIXTURE_BUNDLES: &[&str] = &[
    "apigee+api-platform-samples/sample-proxies/response-cache/apiproxy",
    "apigee+api-platform-samples/sample-proxies/outbound-oauth/apiproxy",
    "apigee+api-platform-samples/sample-proxies/pagination/apiproxy",
    "apigee+api-platform-samples/learn-edge/response-cache-2/apiproxy",
    "apigee+api-platform-samples/edge-ux/response-cache-simple/apiproxy",
    "apigee+api-platform-samples/perf-proxies/perfproxy/apiproxy",
    "GoogleCloudPlatform+apigee-samples/basic-caching/apiproxy",
    "GoogleCloudPlatform+apigee-samples/llm-semantic-cache/apiproxy",
    "apigee+devrel/references/product-recommendations/apiproxy",
];

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

fn shown(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads a fixture bundle and asserts it has no diagnostics at all.
fn load_clean(rel: &str) -> Bundle {
    let (bundle, diags) = load_bundle(&fixture(rel));
    assert!(diags.is_empty(), "{rel}:\n{}", shown(&diags));
    bundle.unwrap_or_else(|| panic!("{rel}: no bundle"))
}

fn only_proxy(b: &Bundle) -> &Endpoint {
    assert_eq!(b.proxies.len(), 1, "{:?}", b.proxies);
    &b.proxies[0].endpoint
}

fn only_target(b: &Bundle) -> &Endpoint {
    assert_eq!(b.targets.len(), 1, "{:?}", b.targets);
    &b.targets[0].endpoint
}

fn names(steps: &[super::Step]) -> Vec<&str> {
    steps.iter().map(|s| s.name.value.as_str()).collect()
}

// --- The real bundles ---

#[test]
fn every_fixture_bundle_loads_without_diagnostics() {
    let mut seen = 0;
    for rel in FIXTURE_BUNDLES {
        let b = load_clean(rel);
        assert!(b.descriptor.is_some(), "{rel}");
        assert!(b.name.is_some(), "{rel}");
        assert!(!b.proxies.is_empty(), "{rel}");
        assert_eq!(b.targets.len(), 1, "{rel}");
        assert!(!b.policy_files.is_empty(), "{rel}");
        for e in &b.proxies {
            assert_eq!(e.endpoint.kind, EndpointKind::Proxy, "{}", e.path.display());
            assert!(e.endpoint.base_path.is_some(), "{}", e.path.display());
            assert!(!e.endpoint.route_rules.is_empty(), "{}", e.path.display());
        }
        assert_eq!(b.targets[0].endpoint.kind, EndpointKind::Target, "{rel}");
        assert!(b.targets[0].endpoint.connection.is_some(), "{rel}");
        seen += 1;
    }
    assert_eq!(seen, 9);
    // And nothing else under the fixtures is an apiproxy/ this test forgot.
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from(FIXTURES)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "apiproxy") {
                    found.push(p.strip_prefix(FIXTURES).unwrap().to_path_buf());
                } else {
                    stack.push(p);
                }
            }
        }
    }
    found.sort();
    let mut listed: Vec<PathBuf> = FIXTURE_BUNDLES.iter().map(PathBuf::from).collect();
    listed.sort();
    assert_eq!(found, listed);
}

#[test]
fn basic_caching() {
    let b = load_clean("GoogleCloudPlatform+apigee-samples/basic-caching/apiproxy");
    assert_eq!(b.name.as_ref().unwrap().value, "basic-caching");
    assert!(b.revision.is_none());
    assert_eq!(
        b.descriptor.as_ref().unwrap().file_name().unwrap(),
        "basic-caching.xml"
    );
    assert_eq!(b.policy_files.len(), 5);
    assert!(b.policy_files.windows(2).all(|w| w[0] < w[1]));

    let pe = only_proxy(&b);
    assert_eq!(pe.kind, EndpointKind::Proxy);
    assert_eq!(pe.name.value, "default");
    assert_eq!(pe.pos, Pos::new(14, 1));
    let bp = pe.base_path.as_ref().unwrap();
    assert_eq!(bp.value, "/v1/samples/basic-caching");
    assert_eq!(bp.pos, Pos::new(37, 9));
    assert_eq!(names(&pe.preflow.request), ["RC-CacheVolumes"]);
    assert_eq!(pe.preflow.request[0].name.pos, Pos::new(18, 17));
    assert!(pe.preflow.request[0].condition.is_none());
    assert!(pe.preflow.response.is_empty());
    assert!(pe.flows.is_empty());
    assert_eq!(
        names(&pe.postflow.response),
        ["AM-SetCacheHitHeader", "AM-SetCachedOnHeader"]
    );
    assert_eq!(
        pe.postflow.response[1].condition.as_ref().unwrap().value,
        "(request.header.x-bypass-cache != \"true\") and (responsecache.RC-CacheVolumes.cachehit = true)"
    );
    assert_eq!(pe.route_rules.len(), 1);
    assert_eq!(pe.route_rules[0].name.value, "default");
    assert!(matches!(&pe.route_rules[0].to, RouteTarget::Endpoint(t) if t.value == "default"));
    assert!(pe.unsupported.is_empty());
    assert!(pe.connection.is_none());

    let te = only_target(&b);
    assert_eq!(te.kind, EndpointKind::Target);
    assert!(te.base_path.is_none() && te.route_rules.is_empty());
    assert_eq!(
        names(&te.postflow.response),
        [
            "RC-CacheVolumes",
            "PC-SetCachedOnDateTime",
            "LC-LookupCachedOnDateTime"
        ]
    );
    assert!(
        matches!(&te.connection, Some(Connection::Url(u)) if u.value == "https://www.googleapis.com/books/v1/volumes")
    );
}

#[test]
fn perfproxy() {
    let b = load_clean("apigee+api-platform-samples/perf-proxies/perfproxy/apiproxy");
    assert_eq!(b.name.as_ref().unwrap().value, "perf");
    assert_eq!(b.revision.as_ref().unwrap().value, "25");
    // The descriptor's <Policies> list is not trusted: it names 34 policies, the folder has 36.
    assert_eq!(b.policy_files.len(), 36);
    let pe = only_proxy(&b);
    assert_eq!(pe.name.value, "proxy");
    assert_eq!(pe.base_path.as_ref().unwrap().value, "/v1/perf");
    assert_eq!(pe.flows.len(), 24);
    assert_eq!(
        pe.flows.iter().filter(|f| f.condition.is_some()).count(),
        23
    );
    assert_eq!(pe.flows[0].name.value, "createAccessToken");
    assert_eq!(pe.flows[23].name.value, "fallback");
    assert!(pe.flows[23].condition.is_none());
    let cache = pe.flows.iter().find(|f| f.name.value == "cache").unwrap();
    assert_eq!(names(&cache.steps.request), ["ResponseCache"]);
    assert_eq!(
        names(&cache.steps.response),
        ["ResponseCache", "SetCacheHeader"]
    );
    assert_eq!(
        cache.condition.as_ref().unwrap().value,
        "request.queryparam.test = \"cache\""
    );
    // Empty per-Step <FaultRules/> are ignored, not unsupported.
    assert!(pe.unsupported.is_empty(), "{:?}", pe.unsupported);
    let rules: Vec<&str> = pe
        .route_rules
        .iter()
        .map(|r| r.name.value.as_str())
        .collect();
    assert_eq!(rules, ["noRoute", "default"]);
    assert!(matches!(pe.route_rules[0].to, RouteTarget::Null));
    assert!(pe.route_rules[0]
        .condition
        .as_ref()
        .unwrap()
        .value
        .starts_with("request.queryparam.test = \"sc\" OR"));
    assert!(matches!(&pe.route_rules[1].to, RouteTarget::Endpoint(t) if t.value == "static"));
    assert!(pe.route_rules[1].condition.is_none());

    let te = only_target(&b);
    assert_eq!(te.name.value, "static");
    assert!(te.fault_rules.is_empty());
    let dfr = te.default_fault_rule.as_ref().unwrap();
    assert_eq!(dfr.name.as_ref().unwrap().value, "DefaultFaultRule");
    assert!(dfr.always_enforce && dfr.steps.is_empty() && dfr.condition.is_none());
    assert!(
        matches!(&te.connection, Some(Connection::Url(u)) if u.value == "https://mocktarget.apigee.net")
    );
}

#[test]
fn product_recommendations() {
    let b = load_clean("apigee+devrel/references/product-recommendations/apiproxy");
    assert_eq!(b.name.as_ref().unwrap().value, "product-recommendations-v1");
    let pe = only_proxy(&b);
    let flows: Vec<&str> = pe.flows.iter().map(|f| f.name.value.as_str()).collect();
    assert_eq!(flows, ["products", "openapi", "notFound"]);
    assert!(pe.flows[0].condition.is_some() && pe.flows[1].condition.is_some());
    assert!(pe.flows[2].condition.is_none());
    assert_eq!(names(&pe.flows[2].steps.request), ["RF-not-found"]);
    assert_eq!(pe.flows[0].steps.response.len(), 11);
    assert_eq!(
        pe.flows[0].condition.as_ref().unwrap().value,
        "(proxy.pathsuffix MatchesPath \"/products\") AND (request.verb = \"GET\")"
    );
    assert_eq!(pe.preflow.request.len(), 5);
    assert!(pe.postflow.request.is_empty() && pe.postflow.response.is_empty());
    let rules: Vec<&str> = pe
        .route_rules
        .iter()
        .map(|r| r.name.value.as_str())
        .collect();
    assert_eq!(rules, ["no-target", "default"]);
    assert!(matches!(pe.route_rules[0].to, RouteTarget::Null));
    assert!(matches!(&pe.route_rules[1].to, RouteTarget::Endpoint(t) if t.value == "default"));

    let te = only_target(&b);
    let unsupported: Vec<&str> = te.unsupported.iter().map(|u| u.value.as_str()).collect();
    assert_eq!(unsupported, ["HTTPTargetConnection/Authentication"]);
    assert_eq!(te.unsupported[0].pos, Pos::new(36, 9));
    assert!(matches!(&te.connection, Some(Connection::Url(u)) if u.value.contains("PROJECT_ID")));
}

#[test]
fn pagination_targets_another_proxy() {
    let b = load_clean("apigee+api-platform-samples/sample-proxies/pagination/apiproxy");
    let te = only_target(&b);
    let Some(Connection::Local(l)) = &te.connection else {
        panic!("{:?}", te.connection)
    };
    assert_eq!(l.pos, Pos::new(2, 5));
    assert_eq!(l.api.as_ref().unwrap().value, "restaurant_locator");
    assert_eq!(l.endpoint.as_ref().unwrap().value, "default");
    assert!(l.path.is_none());
    let pe = only_proxy(&b);
    assert_eq!(
        names(&pe.preflow.request),
        ["ExtractVariables-1", "ResponseCache-1"]
    );
    assert_eq!(
        names(&pe.preflow.response),
        ["ResponseCache-1", "XSLT-Paginate", "AssignMessage-1"]
    );
    assert!(pe.unsupported.is_empty());
}

#[test]
fn smaller_fixtures() {
    let b = load_clean("apigee+api-platform-samples/sample-proxies/outbound-oauth/apiproxy");
    let pe = only_proxy(&b);
    // `&quot;` is resolved.
    assert_eq!(
        pe.preflow.request[2].condition.as_ref().unwrap().value,
        "lookupcache.api-token-lookup-cache.cachehit == \"false\""
    );
    assert_eq!(pe.flows[0].name.value, "GET-search");
    assert_eq!(names(&pe.flows[0].steps.response), ["translate-results"]);

    let b = load_clean("apigee+api-platform-samples/learn-edge/response-cache-2/apiproxy");
    assert_eq!(b.name.as_ref().unwrap().value, "learn-edge");
    let pe = only_proxy(&b);
    assert_eq!(pe.fault_rules.len(), 1);
    let fr = &pe.fault_rules[0];
    assert_eq!(fr.name.as_ref().unwrap().value, "InvalidApiKey");
    assert_eq!(
        fr.condition.as_ref().unwrap().value,
        "fault.name Matches \"InvalidApiKey\""
    );
    assert_eq!(names(&fr.steps), ["AM-Invalid-API-Key-Message"]);
    assert!(!fr.always_enforce);

    let b = load_clean("apigee+api-platform-samples/sample-proxies/response-cache/apiproxy");
    assert_eq!(b.name.as_ref().unwrap().value, "responsecache");
    assert_eq!(only_proxy(&b).route_rules[0].name.value, "Route");

    let b = load_clean("GoogleCloudPlatform+apigee-samples/llm-semantic-cache/apiproxy");
    let pe = only_proxy(&b);
    assert_eq!(pe.flows[0].name.value, "/");
    assert!(matches!(pe.route_rules[0].to, RouteTarget::Null));
    assert_eq!(
        pe.route_rules[0].condition.as_ref().unwrap().value,
        "lookupcache.LC-LookupDatapoint.cachehit = true"
    );
    assert!(
        matches!(&only_target(&b).connection, Some(Connection::Url(u)) if u.value.starts_with("https://{propertyset.vertex_config.region}"))
    );
}

#[test]
fn policy_header_of_a_policy_cachegate_does_not_run() {
    let path =
        fixture("apigee+api-platform-samples/learn-edge/response-cache-2/apiproxy/policies/VerifyApiKey.xml");
    let h = policy_header(&path).unwrap();
    assert_eq!(h.kind.value, "VerifyAPIKey");
    assert_eq!(h.kind.pos, Pos::new(1, 1));
    assert_eq!(h.name.as_ref().unwrap().value, "VerifyAPIKey");
    assert!(h.enabled && !h.continue_on_error);
    assert_eq!(h.path, path);

    let path = fixture(
        "GoogleCloudPlatform+apigee-samples/llm-semantic-cache/semantic-cache-response-v1/sharedflowbundle/policies/PC-PopulateLLMCache.xml",
    );
    let h = policy_header(&path).unwrap();
    assert_eq!(h.kind.value, "PopulateCache");
    assert!(h.continue_on_error);
}

mod synthetic;
