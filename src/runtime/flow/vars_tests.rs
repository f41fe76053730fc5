//! Unit tests of `vars.rs`, and the check that README's variable table lists every built-in.

use super::*;

#[test]
fn classification() {
    assert_eq!(classify("request.verb"), VarKind::Builtin);
    assert_eq!(classify("request.header.x-a"), VarKind::Builtin);
    assert_eq!(classify("request.header."), VarKind::Unknown);
    assert_eq!(classify("request.verbb"), VarKind::Unknown);
    assert_eq!(
        classify("responsecache.RC-1.cachehit"),
        VarKind::Policy {
            kind: "responsecache",
            policy: "RC-1".into()
        }
    );
    assert_eq!(
        classify("lookupcache.LC.tier.cachehit"),
        VarKind::Policy {
            kind: "lookupcache",
            policy: "LC.tier".into()
        }
    );
    assert_eq!(classify("responsecache.RC-1.nope"), VarKind::Unknown);
    assert_eq!(classify("client.tier"), VarKind::Unknown);
    assert_eq!(classify("tier"), VarKind::Custom);
    assert_eq!(suggest("request.verbb"), Some("request.verb"));
}

#[test]
fn resolves_request_variables() {
    let mut headers = HeaderMap::new();
    headers.append("x-a", "1".parse().unwrap());
    headers.append("x-a", "2".parse().unwrap());
    let custom = HashMap::new();
    let mid = std::sync::OnceLock::new();
    let vars = RequestVars {
        method: "GET",
        uri: "/prod/items/7?w=a%20b&w=c",
        path: "/prod/items/7",
        query: "w=a%20b&w=c",
        path_suffix: "/items/7",
        path_params: &[("id", "7")],
        revision: 3,
        flow: Some("items"),
        proxy_name: "edge",
        target_name: Some("backend"),
        route_name: Some("default"),
        target_url: Some("http://127.0.0.1:9/api"),
        ..with_body(&headers, &custom, &mid, Body::Absent, false)
    };
    assert_eq!(vars.get("request.header.x-a").as_deref(), Some("1, 2"));
    assert_eq!(vars.get("request.header.X-A").as_deref(), Some("1, 2"));
    assert_eq!(vars.get("request.queryparam.w").as_deref(), Some("a b"));
    assert_eq!(vars.get("request.path.id").as_deref(), Some("7"));
    assert_eq!(vars.get("proxy.pathsuffix").as_deref(), Some("/items/7"));
    assert_eq!(vars.get("proxy.name").as_deref(), Some("edge"));
    assert_eq!(vars.get("target.name").as_deref(), Some("backend"));
    assert_eq!(vars.get("route.target").as_deref(), Some("backend"));
    assert_eq!(
        vars.get("target.url").as_deref(),
        Some("http://127.0.0.1:9/api")
    );
    assert_eq!(vars.get("is.error").as_deref(), Some("false"));
    let year: i64 = vars
        .get("system.time.year")
        .and_then(|y| y.parse().ok())
        .unwrap();
    assert!(year >= 2026, "{year}");
    let month: u32 = vars
        .get("system.time.month")
        .and_then(|m| m.parse().ok())
        .unwrap();
    assert!((1..=12).contains(&month));
    assert_eq!(vars.get("system.time.nope"), None);
    assert_eq!(vars.get("apiproxy.revision").as_deref(), Some("3"));
    assert_eq!(vars.get("response.status.code"), None);
    assert_eq!(vars.get("nope"), None);
    // `message.*` is the request before there is a response.
    assert_eq!(vars.get("message.header.x-a").as_deref(), Some("1, 2"));
    assert_eq!(vars.get("message.verb").as_deref(), Some("GET"));
    assert_eq!(
        vars.get("message.uri").as_deref(),
        Some("/prod/items/7?w=a%20b&w=c")
    );
    // One messageid per request, whoever asks.
    let id = vars.get("messageid").map(|c| c.into_owned());
    assert_eq!(id.as_ref().map(String::len), Some(36));
    assert_eq!(vars.get("messageid").map(|c| c.into_owned()), id);
    assert_eq!(classify("messageid"), VarKind::Builtin);
    assert_eq!(classify("message.header.x-b"), VarKind::Builtin);
    assert_eq!(classify("message.nope"), VarKind::Unknown);
}

/// A request with `body` (a form when `form`), otherwise like any other.
fn with_body<'a>(
    headers: &'a HeaderMap,
    custom: &'a HashMap<String, String>,
    mid: &'a std::sync::OnceLock<String>,
    body: Body<'a>,
    form: bool,
) -> RequestVars<'a> {
    RequestVars {
        method: "POST",
        uri: "/prod/login?user=q",
        path: "/prod/login",
        query: "user=q",
        headers,
        body,
        form,
        base_path: "/prod",
        path_suffix: "/login",
        path_params: &[],
        client_ip: "127.0.0.1",
        stage: "prod",
        organization: "org",
        api_name: "api",
        revision: 1,
        flow: None,
        proxy_name: "default",
        target_name: None,
        route_name: None,
        target_url: None,
        response_status: None,
        response_headers: None,
        response_reason: None,
        custom,
        message_id: mid,
    }
}

#[test]
fn form_parameters_decode_as_apigee_does() {
    let (headers, custom, mid) = (HeaderMap::new(), HashMap::new(), std::sync::OnceLock::new());
    let text = "user=a%20b+c&User=X&user=second&e=&flag&na%6De=n";
    let vars = with_body(&headers, &custom, &mid, Body::Text(text), true);
    // First occurrence wins; `+` and %XX decode; names are case-sensitive and decoded.
    assert_eq!(vars.get("request.formparam.user").as_deref(), Some("a b c"));
    assert_eq!(vars.get("request.formparam.User").as_deref(), Some("X"));
    assert_eq!(vars.get("request.formparam.e").as_deref(), Some(""));
    assert_eq!(vars.get("request.formparam.flag").as_deref(), Some(""));
    assert_eq!(vars.get("request.formparam.name").as_deref(), Some("n"));
    assert_eq!(vars.get("request.formparam.nope"), None);
    assert_eq!(vars.get("request.formparams.count").as_deref(), Some("5"));
    assert_eq!(
        vars.get("request.formparams.names").as_deref(),
        Some("user, User, e, flag, name")
    );
    assert_eq!(vars.get("request.content").as_deref(), Some(text));
    // `message` is the request on the request side.
    assert_eq!(vars.get("message.formparam.user").as_deref(), Some("a b c"));
    assert_eq!(vars.get("message.content").as_deref(), Some(text));
    // The query string is not the form.
    assert_eq!(vars.get("request.queryparam.user").as_deref(), Some("q"));
    assert!(!vars.withheld("request.formparam.user"));
}

#[test]
fn a_body_that_is_not_a_form_has_no_form_parameters() {
    let (headers, custom, mid) = (HeaderMap::new(), HashMap::new(), std::sync::OnceLock::new());
    let vars = with_body(&headers, &custom, &mid, Body::Text("user=a"), false);
    assert_eq!(vars.get("request.content").as_deref(), Some("user=a"));
    assert_eq!(vars.get("request.formparam.user"), None);
    assert_eq!(vars.get("request.formparams.count"), None);
    let vars = with_body(&headers, &custom, &mid, Body::Absent, true);
    assert_eq!(vars.get("request.content"), None);
    assert_eq!(vars.get("request.formparam.user"), None);
    assert!(!vars.withheld("request.formparam.user"));
}

#[test]
fn a_withheld_body_is_null_and_says_so() {
    let (headers, mid) = (HeaderMap::new(), std::sync::OnceLock::new());
    let custom: HashMap<String, String> =
        [("request.formparam.set".to_owned(), "v".to_owned())].into();
    let vars = with_body(&headers, &custom, &mid, Body::Withheld, true);
    assert_eq!(vars.get("request.formparam.user"), None);
    assert_eq!(vars.get("request.content"), None);
    assert!(vars.withheld("request.formparam.user"));
    assert!(vars.withheld("request.formparams.count"));
    assert!(vars.withheld("request.content"));
    assert!(vars.withheld("message.formparam.user"));
    // A variable a policy set is not the body's.
    assert!(!vars.withheld("request.formparam.set"));
    assert!(!vars.withheld("request.queryparam.user"));
    assert!(!vars.withheld("request.header.user"));
}

#[test]
fn body_references() {
    assert!(reads_request_body("request.content", false));
    assert!(reads_request_body("request.formparam.user", false));
    assert!(reads_request_body("request.formparams.count", false));
    assert!(reads_request_body("request.formparams.names", false));
    assert!(!reads_request_body("request.formparam.", true));
    assert!(!reads_request_body("request.queryparam.user", true));
    assert!(!reads_request_body("response.content", true));
    // `message` reads the request body only where it is the request.
    assert!(reads_request_body("message.content", true));
    assert!(reads_request_body("message.formparam.user", true));
    assert!(!reads_request_body("message.content", false));
    for name in [
        "request.formparam.user",
        "request.formparams.count",
        "request.formparams.names",
        "message.formparam.user",
        "message.formparams.names",
    ] {
        assert_eq!(classify(name), VarKind::Builtin, "{name}");
    }
}

#[test]
fn collections_urls_and_the_response_line() {
    let mut headers = HeaderMap::new();
    headers.append("host", "api.example:8080".parse().unwrap());
    headers.append("x-a", "1".parse().unwrap());
    headers.append("x-a", "2".parse().unwrap());
    let (custom, mid) = (HashMap::new(), std::sync::OnceLock::new());
    let mut vars = with_body(&headers, &custom, &mid, Body::Absent, false);
    assert_eq!(
        vars.get("proxy.url").as_deref(),
        Some("http://api.example:8080/prod/login?user=q")
    );
    assert_eq!(
        vars.get("request.headers.names").as_deref(),
        Some("host, x-a")
    );
    assert_eq!(vars.get("request.headers.count").as_deref(), Some("2"));
    assert_eq!(vars.get("message.headers.count").as_deref(), Some("2"));
    assert_eq!(
        vars.get("request.queryparams.names").as_deref(),
        Some("user")
    );
    assert_eq!(vars.get("request.queryparams.count").as_deref(), Some("1"));
    // A header named `names` is still a header.
    assert_eq!(vars.get("request.header.names"), None);
    assert_eq!(vars.get("response.reason.phrase"), None);
    assert_eq!(vars.get("response.headers.count"), None);
    let mut resp = HeaderMap::new();
    resp.append("etag", "\"v1\"".parse().unwrap());
    vars.response_status = Some(404);
    vars.response_headers = Some(&resp);
    vars.response_reason = Some("Not Found");
    assert_eq!(
        vars.get("response.reason.phrase").as_deref(),
        Some("Not Found")
    );
    assert_eq!(
        vars.get("message.reason.phrase").as_deref(),
        Some("Not Found")
    );
    assert_eq!(vars.get("message.headers.names").as_deref(), Some("etag"));
    assert_eq!(vars.get("message.status.code").as_deref(), Some("404"));
    // `message` is the response now: the request body is not its content.
    assert!(!vars.withheld("message.content"));
}

/// README's "Flow variables" table: the text from its heading to the next section.
fn readme_table() -> &'static str {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("\n### Flow variables\n")
        .expect("README has a \"### Flow variables\" section");
    let rest = &readme[start + 1..];
    let end = rest[4..].find("\n#").map_or(rest.len(), |i| i + 4);
    &rest[..end]
}

/// The names in the first column of the table (backticked, `<…>` kept).
fn readme_names() -> Vec<&'static str> {
    readme_table()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .collect()
}

/// README lists every built-in name cachegate resolves, so the table cannot drift from the
/// catalog: a name added to `FIXED`, `FAMILIES` or `POLICY_VARIABLES` must be documented.
#[test]
fn readme_lists_every_built_in_variable() {
    let names = readme_names();
    let listed = |n: &str| names.contains(&n);
    for name in FIXED {
        assert!(listed(name), "README's Flow variables table lacks `{name}`");
    }
    for family in FAMILIES {
        assert!(
            names.iter().any(|n| n
                .strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('<'))),
            "README's Flow variables table lacks `{family}<name>`"
        );
    }
    for (kind, fields) in POLICY_VARIABLES {
        for field in *fields {
            let name = format!("{kind}.<policy>.{field}");
            assert!(
                listed(&name),
                "README's Flow variables table lacks `{name}`"
            );
        }
    }
}

/// And the other way: every name the table lists is one cachegate knows.
#[test]
fn readme_lists_only_known_variables() {
    for name in readme_names() {
        let concrete = name
            .replace("<name>", "x-a")
            .replace("<param>", "id")
            .replace("<policy>", "P");
        assert!(
            matches!(
                classify(&concrete),
                VarKind::Builtin | VarKind::Policy { .. }
            ),
            "README lists `{name}`, which vars.rs does not know"
        );
    }
}
