//! `[cache] unkeyed_query`: whether stage caching (`aws` mode) forwards query parameters that are
//! not part of its key, and that choosing to is visible in `validate`.

use crate::harness::{get, origin, PolicyDir, TestGateway};

fn dir(extra: &str) -> (cachegate_origin::Origin, PolicyDir) {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        &format!(
            "target = \"http://{{{{ORIGIN}}}}\"\n[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.type\"]\n{extra}"
        ),
    );
    (o, d)
}

#[tokio::test]
async fn undeclared_parameters_are_stripped_unless_forwarding_is_chosen() {
    let (_o, d) = dir("");
    let gw = TestGateway::start(d);
    let r = get(&gw.url("/prod/echo/q?type=a&callback=evil")).await;
    assert_eq!(r.json()["query"], "type=a", "{}", r.body);

    let (_o2, d) = dir("unkeyed_query = \"forward\"\n");
    let gw = TestGateway::start(d);
    let r = get(&gw.url("/prod/echo/q?type=a&callback=evil")).await;
    assert_eq!(r.json()["query"], "type=a&callback=evil", "{}", r.body);
    // The key is still the declared parameters only: the second request is served the first
    // one's response, callback and all — the trade-off the setting names.
    let again = get(&gw.url("/prod/echo/q?type=a&callback=other")).await;
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(again.json()["query"], "type=a&callback=evil");
}

#[test]
fn forwarding_unkeyed_parameters_is_a_validate_warning() {
    let (_o, d) = dir("unkeyed_query = \"forward\"\n");
    let outcome = cachegate::config::load(d.path());
    assert!(outcome.config.is_some());
    let text = outcome.diagnostics.to_string();
    assert!(
        text.contains("warning:") && text.contains("cache poisoning"),
        "{text}"
    );
    assert!(text.contains("stage.toml:"), "names the file: {text}");

    let (_o, d) = dir("unkeyed_query = \"sometimes\"\n");
    let outcome = cachegate::config::load(d.path());
    assert!(outcome.config.is_none());
    assert!(outcome
        .diagnostics
        .to_string()
        .contains("not a value of unkeyed_query"));
}
