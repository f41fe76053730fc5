//! `mode = "http"`: exact parsing of the fields that decide freshness (RFC 9110 §5.6.7 dates,
//! RFC 9111 §5.1 `Age`, §4.2.1 duplicated directives, §5.2.2 qualified `private`/`no-cache`) and
//! targeted fields (RFC 9213 `CDN-Cache-Control`, `Cachegate-Cache-Control`), against the example
//! origin, which adds any response header with `?header=Name:value`.

use cachegate_origin::Origin;

use crate::harness::{get, origin, PolicyDir, TestGateway};

/// One http-mode stage `prod` (default target list) and one `plain` with targeted fields off;
/// the origin is returned so it outlives the test.
fn gateway() -> (Origin, TestGateway) {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\nmode = \"http\"\n",
    );
    d.stage(
        "plain",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\nmode = \"http\"\n\
         targeted_cache_control = []\n",
    );
    let gw = TestGateway::start(d);
    (o, gw)
}

/// Fetches `path` twice and returns the second answer's `X-Cache`, after checking the first was
/// a miss.
async fn second(gw: &TestGateway, path: &str) -> String {
    let first = get(&gw.url(path)).await;
    assert_eq!(first.status, 200, "{path}: {}", first.body);
    assert_eq!(first.x_cache(), "MISS", "{path}");
    get(&gw.url(path)).await.x_cache().to_owned()
}

#[tokio::test]
async fn age_is_delta_seconds_of_the_first_member() {
    let (_origin, gw) = gateway();
    // age-parse-suffix: `Age: 7200, 0` is 7200, older than max-age=3600: stale, not stored
    // (`etag=0`: no validator to revalidate with).
    let path = "/prod/items/1?header=Age:7200,%200&cache_control=max-age%3D3600&etag=0";
    let first = get(&gw.url(path)).await;
    assert_eq!(
        first.header("cache-status"),
        "cachegate; fwd=uri-miss; detail=ttl"
    );
    assert_eq!(get(&gw.url(path)).await.x_cache(), "MISS");
    // age-parse-prefix: `Age: 0, 7200` is 0: fresh.
    let path = "/prod/items/2?header=Age:0,%207200&cache_control=max-age%3D3600";
    assert_eq!(second(&gw, path).await, "HIT");
    // age-parse-suffix-twoline: the first line counts.
    let path = "/prod/items/3?header=Age:7200&header=Age:0&cache_control=max-age%3D3600&etag=0";
    assert_eq!(second(&gw, path).await, "MISS");
    // age-parse-nonnumeric / -negative / -float: ignored, so fresh.
    for (n, age) in ["abc", "-7200", "7200.0"].iter().enumerate() {
        let path = format!("/prod/items/a{n}?header=Age:{age}&cache_control=max-age%3D3600");
        assert_eq!(second(&gw, &path).await, "HIT", "{age}");
    }
    // age-parse-large: 2^31 is older than any max-age.
    let path = "/prod/items/4?header=Age:2147483648&cache_control=max-age%3D3600&etag=0";
    assert_eq!(second(&gw, path).await, "MISS");
    // With a validator the stale entry is kept, and the next request revalidates it rather
    // than being served it fresh.
    let path = "/prod/items/5?header=Age:7200,%200&cache_control=max-age%3D3600";
    let first = get(&gw.url(path)).await;
    assert_eq!(
        first.header("cache-status"),
        "cachegate; fwd=uri-miss; stored"
    );
    let again = get(&gw.url(path)).await;
    assert!(
        again
            .header("cache-status")
            .starts_with("cachegate; fwd=stale"),
        "{}",
        again.header("cache-status")
    );
}

#[tokio::test]
async fn expires_must_be_an_exact_http_date() {
    let (_origin, gw) = gateway();
    // A valid IMF-fixdate in the future: stored.
    let ok = "/prod/items/1?header=Expires:Thu,%2001%20Jan%202099%2000:00:00%20GMT";
    assert_eq!(second(&gw, ok).await, "HIT");
    // freshness-expires-invalid-utc, -multiple-spaces, -2-digit-year: already expired.
    for (n, date) in [
        "Thu,%2001%20Jan%202099%2000:00:00%20UTC",
        "Thu,%2001%20%20Jan%202099%2000:00:00%20GMT",
        "Thu,%2001%20Jan%2099%2000:00:00%20GMT",
    ]
    .iter()
    .enumerate()
    {
        let path = format!("/prod/items/e{n}?header=Expires:{date}&etag=0");
        let first = get(&gw.url(&path)).await;
        assert_eq!(
            first.header("cache-status"),
            "cachegate; fwd=uri-miss; detail=ttl",
            "{date}"
        );
        assert_eq!(get(&gw.url(&path)).await.x_cache(), "MISS", "{date}");
    }
    // Two Expires lines: the first counts.
    let path = "/prod/items/2?header=Expires:Thu,%2001%20Jan%202099%2000:00:00%20GMT\
                &header=Expires:0";
    assert_eq!(second(&gw, path).await, "HIT");
}

#[tokio::test]
async fn duplicated_and_quoted_max_age() {
    let (_origin, gw) = gateway();
    // freshness-max-age-two-fresh-stale-sameline / -stale-fresh-sameline: the first wins.
    assert_eq!(
        second(
            &gw,
            "/prod/items/1?cache_control=max-age%3D3600,%20max-age%3D0"
        )
        .await,
        "HIT"
    );
    assert_eq!(
        second(
            &gw,
            "/prod/items/2?cache_control=max-age%3D0,%20max-age%3D3600&etag=0"
        )
        .await,
        "MISS"
    );
    // Across lines.
    let path = "/prod/items/3?header=Cache-Control:max-age%3D0\
                &header=Cache-Control:max-age%3D3600&etag=0";
    assert_eq!(second(&gw, path).await, "MISS");
    // freshness-max-age-ignore-quoted: max-age=0 inside a quoted string is not a directive.
    let path = "/prod/items/4?cache_control=foo%3D%22max-age%3D0%22,%20max-age%3D3600";
    assert_eq!(second(&gw, path).await, "HIT");
    // freshness-max-age-single-quoted / -decimal: not delta-seconds → stale.
    for (n, v) in ["%273600%27", "3600.0", "%2B3600"].iter().enumerate() {
        let path = format!("/prod/items/q{n}?cache_control=max-age%3D{v}&etag=0");
        assert_eq!(second(&gw, &path).await, "MISS", "{v}");
    }
}

#[tokio::test]
async fn qualified_private_and_no_cache_fields_are_not_stored() {
    let (_origin, gw) = gateway();
    let path = "/prod/items/1?header=X-Secret:abc&header=X-Hint:h&header=X-Kept:k\
                &cache_control=max-age%3D60,%20private%3D%22X-Secret%22,%20no-cache%3Dx-hint";
    let miss = get(&gw.url(path)).await;
    assert_eq!(miss.x_cache(), "MISS");
    assert_eq!(
        miss.header("cache-status"),
        "cachegate; fwd=uri-miss; stored"
    );
    // The client that fetched it gets every field.
    assert_eq!(miss.header("x-secret"), "abc");
    assert_eq!(miss.header("x-hint"), "h");
    let hit = get(&gw.url(path)).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert!(!hit.headers.contains_key("x-secret"), "{:?}", hit.headers);
    assert!(!hit.headers.contains_key("x-hint"), "{:?}", hit.headers);
    assert_eq!(hit.header("x-kept"), "k");
    assert_eq!(hit.body, miss.body);
    // Unqualified private keeps its meaning: not stored.
    let path = "/prod/items/2?cache_control=max-age%3D60,%20private";
    let first = get(&gw.url(path)).await;
    assert_eq!(
        first.header("cache-status"),
        "cachegate; fwd=uri-miss; detail=private"
    );
}

#[tokio::test]
async fn qualified_private_is_not_stored_in_aws_mode() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n\
         key_parameters = [\"method.request.querystring.cache_control\"]\n",
    );
    let gw = TestGateway::start(d);
    let path = "/prod/items/1?cache_control=private%3D%22x-secret%22";
    let first = get(&gw.url(path)).await;
    assert_eq!(
        first.header("cache-status"),
        "cachegate; fwd=uri-miss; detail=private"
    );
}

#[tokio::test]
async fn cdn_cache_control_takes_precedence() {
    let (_origin, gw) = gateway();
    // cdn-max-age-long-cc-max-age: the CDN lifetime (600 s) wins over Cache-Control's 5 s.
    let path = "/prod/items/1?header=CDN-Cache-Control:max-age%3D600&cache_control=max-age%3D5";
    let miss = get(&gw.url(path)).await;
    // Forwarded unchanged, on the miss and the hit.
    assert_eq!(miss.header("cdn-cache-control"), "max-age=600");
    let hit = get(&gw.url(path)).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert!(
        (590..=600).contains(&hit.status_ttl()),
        "{}",
        hit.header("cache-status")
    );
    assert_eq!(hit.header("cdn-cache-control"), "max-age=600");
    assert_eq!(hit.header("cache-control"), "max-age=5");
    // cdn-fresh-cc-nostore: Cache-Control is ignored for this cache.
    let path = "/prod/items/2?header=CDN-Cache-Control:max-age%3D600&cache_control=no-store";
    assert_eq!(second(&gw, path).await, "HIT");
    // cdn-no-store-cc-fresh.
    let path = "/prod/items/3?header=CDN-Cache-Control:no-store&cache_control=max-age%3D600";
    assert_eq!(second(&gw, path).await, "MISS");
    // cdn-max-age-0-expires: Expires is ignored too.
    let path = "/prod/items/4?header=CDN-Cache-Control:max-age%3D0&expires=600&etag=0";
    assert_eq!(second(&gw, path).await, "MISS");
    // cdn-cc-invalid-sh-type-wrong: a String max-age ignores the field; Cache-Control decides.
    let path = "/prod/items/5?header=CDN-Cache-Control:max-age%3D%22600%22&cache_control=no-store";
    assert_eq!(second(&gw, path).await, "MISS");
    // With targeted fields off, CDN-Cache-Control has no effect.
    let path = "/plain/items/6?header=CDN-Cache-Control:max-age%3D600&cache_control=no-store";
    assert_eq!(second(&gw, path).await, "MISS");
}

#[tokio::test]
async fn own_targeted_field_is_read_and_removed() {
    let (_origin, gw) = gateway();
    // Cachegate-Cache-Control comes first: its 600 s wins over CDN-Cache-Control's no-store.
    let path = "/prod/items/1?header=Cachegate-Cache-Control:max-age%3D600\
                &header=CDN-Cache-Control:no-store&cache_control=no-store";
    let miss = get(&gw.url(path)).await;
    assert_eq!(miss.x_cache(), "MISS");
    assert!(
        !miss.headers.contains_key("cachegate-cache-control"),
        "{:?}",
        miss.headers
    );
    assert_eq!(miss.header("cdn-cache-control"), "no-store");
    let hit = get(&gw.url(path)).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert!(!hit.headers.contains_key("cachegate-cache-control"));
    assert_eq!(hit.header("cdn-cache-control"), "no-store");
    // A stage without targeted fields forwards it and ignores it.
    let path = "/plain/items/2?header=Cachegate-Cache-Control:max-age%3D600&cache_control=no-store";
    let miss = get(&gw.url(path)).await;
    assert_eq!(miss.header("cachegate-cache-control"), "max-age=600");
    assert_eq!(get(&gw.url(path)).await.x_cache(), "MISS");
}

#[test]
fn targeted_cache_control_setting_is_validated() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\nmode = \"http\"\n\
         targeted_cache_control = [\"Content-Length\", \"CDN-Cache-Control\", \
         \"cdn-cache-control\", \"-Cache-Control\"]\n",
    );
    let (ok, text) = crate::validation::diagnostics(&d);
    assert!(!ok, "{text}");
    assert!(
        text.contains("`Content-Length` is not a targeted cache-control field"),
        "{text}"
    );
    assert!(
        text.contains("`cdn-cache-control` is listed twice"),
        "{text}"
    );
    assert!(
        text.contains("`-Cache-Control` is not a targeted cache-control field"),
        "{text}"
    );
    // Valid, but unused outside http mode: a warning, and the stage loads.
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n\
         targeted_cache_control = [\"CDN-Cache-Control\"]\n",
    );
    let (ok, text) = crate::validation::diagnostics(&d);
    assert!(ok, "{text}");
    assert!(
        text.contains("targeted_cache_control is only read in http mode"),
        "{text}"
    );
}
