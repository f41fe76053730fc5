//! Unit tests of the condition language: the expressions real configurations use, the semantics
//! (null, numbers, truthiness, precedence, patterns), the public API, every error text and
//! position, the limits, and property tests that parsing never panics.

use super::pattern::{compile_path, path_match};
use super::*;
use std::collections::HashMap;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn eval(src: &str, pairs: &[(&str, &str)]) -> bool {
    Condition::parse(src)
        .unwrap_or_else(|e| panic!("{src:?} failed to parse: {e:?}"))
        .eval(&vars(pairs))
}

fn err(src: &str) -> ConditionError {
    match Condition::parse(src) {
        Ok(c) => panic!("{src:?} unexpectedly parsed: {c:?}"),
        Err(e) => e,
    }
}

// --- the real expressions from configurations -------------------------------------------

#[test]
fn matches_path_double_star() {
    let c = r#"proxy.pathsuffix MatchesPath "/items/**""#;
    assert!(eval(c, &[("proxy.pathsuffix", "/items/7")]));
    assert!(eval(c, &[("proxy.pathsuffix", "/items/7/x")]));
    assert!(eval(c, &[("proxy.pathsuffix", "/items")]));
    assert!(eval(c, &[("proxy.pathsuffix", "/items/")]));
    assert!(!eval(c, &[("proxy.pathsuffix", "/itemsX")]));
    assert!(!eval(c, &[("proxy.pathsuffix", "/other/7")]));
    assert!(!eval(c, &[]));
}

#[test]
fn parenthesised_and_uppercase() {
    let c = r#"(proxy.pathsuffix MatchesPath "/products") AND (request.verb = "GET")"#;
    assert!(eval(
        c,
        &[("proxy.pathsuffix", "/products"), ("request.verb", "GET")]
    ));
    assert!(!eval(
        c,
        &[("proxy.pathsuffix", "/products"), ("request.verb", "POST")]
    ));
    assert!(!eval(
        c,
        &[("proxy.pathsuffix", "/products/1"), ("request.verb", "GET")]
    ));
    assert!(!eval(
        c,
        &[("proxy.pathsuffix", "/products/"), ("request.verb", "GET")]
    ));
}

#[test]
fn not_regex_or_bypass_header() {
    let c =
        r#"NOT (request.verb JavaRegex "(GET|HEAD)") or request.header.x-bypass-cache = "true""#;
    assert!(!eval(c, &[("request.verb", "GET")]));
    assert!(!eval(c, &[("request.verb", "HEAD")]));
    assert!(eval(c, &[("request.verb", "POST")]));
    // Whole-value match: "GETX" is not GET.
    assert!(eval(c, &[("request.verb", "GETX")]));
    assert!(eval(
        c,
        &[
            ("request.verb", "GET"),
            ("request.header.x-bypass-cache", "true")
        ]
    ));
    assert!(!eval(
        c,
        &[
            ("request.verb", "GET"),
            ("request.header.x-bypass-cache", "TRUE")
        ]
    ));
    // Unresolved verb: the regex does not match null, so NOT(...) is true.
    assert!(eval(c, &[]));
    let parsed = Condition::parse(c).unwrap();
    assert_eq!(
        parsed.variables(),
        vec!["request.verb", "request.header.x-bypass-cache"]
    );
}

#[test]
fn bypass_and_cachehit_true_literal() {
    let c = r#"(request.header.x-bypass-cache != "true") and (responsecache.RC-CacheVolumes.cachehit = true)"#;
    assert!(eval(
        c,
        &[("responsecache.RC-CacheVolumes.cachehit", "true")]
    ));
    assert!(eval(
        c,
        &[("responsecache.RC-CacheVolumes.cachehit", "TRUE")]
    ));
    assert!(!eval(
        c,
        &[("responsecache.RC-CacheVolumes.cachehit", "false")]
    ));
    assert!(!eval(
        c,
        &[
            ("responsecache.RC-CacheVolumes.cachehit", "true"),
            ("request.header.x-bypass-cache", "true")
        ]
    ));
    assert!(eval(
        c,
        &[
            ("responsecache.RC-CacheVolumes.cachehit", "true"),
            ("request.header.x-bypass-cache", "no")
        ]
    ));
    assert!(!eval(c, &[]));
}

#[test]
fn cachehit_false_spellings() {
    for c in [
        "responsecache.RC-CacheVolumes.cachehit = false",
        "responsecache.RC-CacheVolumes.cachehit == false",
        "responsecache.RC-CacheVolumes.cachehit is false",
        "responsecache.RC-CacheVolumes.cachehit Equals FALSE",
    ] {
        assert!(
            eval(c, &[("responsecache.RC-CacheVolumes.cachehit", "false")]),
            "{c}"
        );
        assert!(
            !eval(c, &[("responsecache.RC-CacheVolumes.cachehit", "true")]),
            "{c}"
        );
        assert!(!eval(c, &[]), "{c}");
    }
    let c = r#"lookupcache.LC-tier.cachehit = "false""#;
    assert!(eval(c, &[("lookupcache.LC-tier.cachehit", "false")]));
    assert!(!eval(c, &[("lookupcache.LC-tier.cachehit", "FALSE")]));
    for c in [
        "lookupcache.LC-tier.cachehit == false",
        "lookupcache.LC-tier.cachehit is false",
    ] {
        assert!(eval(c, &[("lookupcache.LC-tier.cachehit", "false")]), "{c}");
        assert!(eval(c, &[("lookupcache.LC-tier.cachehit", "False")]), "{c}");
        assert!(!eval(c, &[("lookupcache.LC-tier.cachehit", "true")]), "{c}");
        assert_eq!(
            Condition::parse(c).unwrap().variables(),
            vec!["lookupcache.LC-tier.cachehit"]
        );
    }
}

#[test]
fn header_equality() {
    let c = r#"request.header.cache-control = "no-cache""#;
    assert!(eval(c, &[("request.header.cache-control", "no-cache")]));
    assert!(!eval(c, &[("request.header.cache-control", "No-Cache")]));
    assert!(!eval(
        c,
        &[("request.header.cache-control", "no-cache, no-store")]
    ));
    assert!(!eval(c, &[]));
    let c = r#"request.header.skip-lookup = "true""#;
    assert!(eval(c, &[("request.header.skip-lookup", "true")]));
    assert!(!eval(c, &[("request.header.skip-lookup", "1")]));
}

#[test]
fn status_code_numeric() {
    let c = "response.status.code >= 400";
    assert!(eval(c, &[("response.status.code", "400")]));
    assert!(eval(c, &[("response.status.code", "503")]));
    assert!(!eval(c, &[("response.status.code", "200")]));
    // Numeric, not lexicographic: "1000" > "400" although "1" < "4".
    assert!(eval(c, &[("response.status.code", "1000")]));
    assert!(!eval(c, &[("response.status.code", "99")]));
    assert!(!eval(c, &[]));
}

#[test]
fn and_with_not_null() {
    let c = r#"request.verb = "GET" && request.queryparam.w != null"#;
    assert!(eval(
        c,
        &[("request.verb", "GET"), ("request.queryparam.w", "100")]
    ));
    assert!(eval(
        c,
        &[("request.verb", "GET"), ("request.queryparam.w", "")]
    ));
    assert!(!eval(c, &[("request.verb", "GET")]));
    assert!(!eval(
        c,
        &[("request.verb", "PUT"), ("request.queryparam.w", "1")]
    ));
}

#[test]
fn path_single_star_symbol() {
    let c = r#"proxy.pathsuffix ~/ "/items/*""#;
    assert!(eval(c, &[("proxy.pathsuffix", "/items/7")]));
    assert!(!eval(c, &[("proxy.pathsuffix", "/items/7/x")]));
    assert!(!eval(c, &[("proxy.pathsuffix", "/items/7/")]));
    assert!(!eval(c, &[("proxy.pathsuffix", "/items/")]));
    assert!(!eval(c, &[("proxy.pathsuffix", "/items")]));
}

#[test]
fn regex_symbol_is_anchored() {
    let c = r#"request.path ~~ "^/a.*""#;
    assert!(eval(c, &[("request.path", "/a")]));
    assert!(eval(c, &[("request.path", "/abc/d")]));
    assert!(!eval(c, &[("request.path", "/b/a")]));
    let c = r#"request.path ~~ "/a""#;
    assert!(!eval(c, &[("request.path", "/abc")]));
    assert!(!eval(c, &[("request.path", "x/a")]));
    assert!(eval(c, &[("request.path", "/a")]));
    // Backslashes are not string escapes.
    assert!(eval(r#"x ~~ "\d+""#, &[("x", "123")]));
    assert!(!eval(r#"x ~~ "\d+""#, &[("x", "12a")]));
    // Inline flags stay scoped inside the anchoring group.
    assert!(eval(r#"x ~~ "(?i)get""#, &[("x", "GET")]));
    assert!(!eval(r#"x ~~ "(?i)get""#, &[("x", "GETS")]));
    // Anchors survive alternation at top level.
    assert!(!eval(r#"x ~~ "a|b""#, &[("x", "ab")]));
}

#[test]
fn starts_with_symbol() {
    let c = r#"request.uri =| "/prod""#;
    assert!(eval(c, &[("request.uri", "/prod")]));
    assert!(eval(c, &[("request.uri", "/products?x=1")]));
    assert!(!eval(c, &[("request.uri", "/Prod")]));
    assert!(!eval(c, &[("request.uri", "x/prod")]));
    assert!(!eval(c, &[]));
    assert!(eval(
        r#"request.uri StartsWith "/p""#,
        &[("request.uri", "/p")]
    ));
    assert!(eval(
        r#"request.uri not StartsWith "/p""#,
        &[("request.uri", "/q")]
    ));
    assert!(eval(r#"request.uri NOT StartsWith "/p""#, &[]));
}

#[test]
fn equals_case_insensitive() {
    let c = r#"request.verb := "get""#;
    assert!(eval(c, &[("request.verb", "GET")]));
    assert!(eval(c, &[("request.verb", "get")]));
    assert!(!eval(c, &[("request.verb", "GETS")]));
    assert!(!eval(c, &[]));
    assert!(eval(r#"x EqualsCaseInsensitive "ÉTÉ""#, &[("x", "été")]));
}

#[test]
fn matches_glob() {
    let c = r#"request.header.accept ~ "*json*""#;
    assert!(eval(c, &[("request.header.accept", "application/json")]));
    assert!(eval(c, &[("request.header.accept", "json")]));
    assert!(eval(
        c,
        &[("request.header.accept", "application/json; charset=utf-8")]
    ));
    assert!(!eval(c, &[("request.header.accept", "text/html")]));
    assert!(!eval(c, &[]));
    // `*` crosses `/`, `?` is one character, the match is whole-value and case-sensitive.
    assert!(eval(r#"p Matches "/a/*""#, &[("p", "/a/b/c")]));
    assert!(eval(r#"p Like "/a?c""#, &[("p", "/abc")]));
    assert!(eval(r#"p Like "/a?c""#, &[("p", "/aéc")]));
    assert!(!eval(r#"p Like "/a?c""#, &[("p", "/ac")]));
    assert!(!eval(r#"p ~ "/cat""#, &[("p", "/cats")]));
    assert!(!eval(r#"p ~ "/Cat""#, &[("p", "/cat")]));
    assert!(eval(r#"p ~ "a*b*c""#, &[("p", "aXbYbZc")]));
    assert!(!eval(r#"p ~ "a*b*c""#, &[("p", "aXbYbZ")]));
    assert!(eval(r#"p ~ "**""#, &[("p", "")]));
}

// --- semantics -----------------------------------------------------------------------

#[test]
fn null_semantics() {
    assert!(eval("x = null", &[]));
    assert!(!eval("x = null", &[("x", "")]));
    assert!(eval("x != null", &[("x", "")]));
    assert!(!eval("x != null", &[]));
    assert!(eval("x IsNot null", &[("x", "v")]));
    assert!(eval("null = x", &[]));
    // Unresolved vs non-null: only `!=` (and negations) are true.
    assert!(!eval(r#"x = "a""#, &[]));
    assert!(eval(r#"x != "a""#, &[]));
    assert!(eval(r#"x NotEquals "a""#, &[]));
    assert!(!eval("x > 1", &[]));
    assert!(!eval("x <= 1", &[]));
    assert!(!eval(r#"x := "a""#, &[]));
    assert!(!eval(r#"x ~ "*""#, &[]));
    assert!(!eval(r#"x ~/ "/**""#, &[]));
    assert!(!eval(r#"x ~~ ".*""#, &[]));
    // Two unresolved variables are both null, hence equal.
    assert!(eval("x = y", &[]));
    assert!(!eval("x = y", &[("x", "1")]));
}

#[test]
fn variable_to_variable() {
    assert!(eval("a = b", &[("a", "v"), ("b", "v")]));
    assert!(!eval("a = b", &[("a", "v"), ("b", "w")]));
    assert!(eval("a < b", &[("a", "9"), ("b", "10")]));
    assert!(eval("a StartsWith b", &[("a", "abc"), ("b", "ab")]));
    assert_eq!(
        Condition::parse("a = b").unwrap().variables(),
        vec!["a", "b"]
    );
}

#[test]
fn numeric_and_string_comparisons() {
    assert!(eval("x = 200", &[("x", "200")]));
    assert!(eval("x = 200", &[("x", "200.0")]));
    assert!(eval(r#"x = "1.0""#, &[("x", "1")]));
    assert!(eval("x != 200", &[("x", "404")]));
    assert!(eval("x < -1.5", &[("x", "-2")]));
    assert!(eval("x > .5", &[("x", "0.75")]));
    assert!(eval("x GreaterThan 1", &[("x", "2")]));
    assert!(eval("x GreaterThanOrEquals 2", &[("x", "2")]));
    assert!(eval("x LesserThan 3", &[("x", "2")]));
    assert!(eval("x LesserThanOrEquals 2", &[("x", "2")]));
    // Non-numeric: lexicographic.
    assert!(eval(r#"x < "b""#, &[("x", "a")]));
    assert!(eval(r#"x > "B""#, &[("x", "a")]));
    assert!(eval("x > 10", &[("x", "abc")]));
    // Strict numbers: NaN / inf / whitespace are text.
    assert!(!eval(r#"x = "NaN""#, &[("x", "nan")]));
    assert!(!eval("x = 1", &[("x", " 1")]));
    assert!(!eval("x = 1", &[("x", "1e0")]));
    assert!(eval("x = 1", &[("x", "+1")]));
    // Literal on the left.
    assert!(eval("400 <= x", &[("x", "404")]));
}

#[test]
fn bare_variable_truthiness() {
    assert!(eval("flag", &[("flag", "true")]));
    assert!(eval("flag", &[("flag", "yes")]));
    assert!(!eval("flag", &[("flag", "false")]));
    assert!(!eval("flag", &[("flag", "FALSE")]));
    assert!(!eval("flag", &[("flag", "")]));
    assert!(!eval("flag", &[]));
    assert!(eval("!flag", &[]));
    assert!(eval("not flag", &[("flag", "false")]));
    assert!(eval("(flag)", &[("flag", "1")]));
    assert!(eval("true", &[]));
    assert!(!eval("false", &[]));
    assert!(eval("TRUE or x", &[]));
}

#[test]
fn precedence_and_associativity() {
    // and binds tighter than or.
    assert!(eval("a or b and c", &[("a", "1")]));
    assert!(!eval("(a or b) and c", &[("a", "1")]));
    // not binds to the comparison, tighter than and/or.
    assert!(eval(r#"not a = "x" and b"#, &[("a", "y"), ("b", "1")]));
    assert!(!eval(r#"not a = "x" and b"#, &[("a", "x"), ("b", "1")]));
    assert!(eval(r#"!a = "x" || b"#, &[("a", "x"), ("b", "1")]));
    assert!(eval("not not a", &[("a", "1")]));
    assert!(eval("a && b || c && d", &[("c", "1"), ("d", "1")]));
    assert!(!eval("a && (b || c) && d", &[("c", "1"), ("d", "1")]));
    // Symbols need no surrounding whitespace.
    assert!(eval(r#"a="x"&&b!="y"||c"#, &[("a", "x")]));
    assert!(eval(r#"(a="x")and(b="y")"#, &[("a", "x"), ("b", "y")]));
}

#[test]
fn keywords_and_operator_words_are_case_insensitive() {
    assert!(eval(
        r#"a EQUALS "x" AnD b isnot "y""#,
        &[("a", "x"), ("b", "z")]
    ));
    assert!(eval(
        r#"p matchespath "/a/*" OR p likepath "/b""#,
        &[("p", "/b")]
    ));
    assert!(eval(r#"v javaregex "G.T""#, &[("v", "GET")]));
    assert!(eval(r#"v NOT javaregex "P.*""#, &[("v", "GET")]));
    assert!(eval(r#"v startswith 'G'"#, &[("v", "GET")]));
    assert!(eval(r#"x = NULL"#, &[]));
}

#[test]
fn single_quotes_and_embedded_quotes() {
    assert!(eval(r#"x = 'say "hi"'"#, &[("x", r#"say "hi""#)]));
    assert!(eval(r#"x = "it's""#, &[("x", "it's")]));
    assert!(eval(r#"x = """#, &[("x", "")]));
}

#[test]
fn path_patterns() {
    let m = |pat: &str, path: &str| path_match(&compile_path(pat), path);
    assert!(m("/**", "/"));
    assert!(m("/**", "/a/b/c"));
    assert!(!m("/**", "a"));
    assert!(m("/**/x", "/x"));
    assert!(m("/**/x", "/a/b/x"));
    assert!(!m("/**/x", "/a/b/x/y"));
    assert!(m("/a/**/b/*", "/a/1/2/b/3"));
    assert!(!m("/a/**/b/*", "/a/1/2/b/3/4"));
    assert!(m("/files/*.json", "/files/x.json"));
    assert!(!m("/files/*.json", "/files/a/x.json"));
    assert!(m("/v?/items", "/v1/items"));
    assert!(m("/a/**/**/b", "/a/b"));
    assert!(m("", ""));
    assert!(!m("/a", "/a/"));
}

#[test]
fn glob_worst_case_is_fast() {
    let value = "a".repeat(4000);
    let pat = format!("{}b", "*a".repeat(100));
    let c = Condition::parse(&format!(r#"x ~ "{pat}""#)).unwrap();
    let start = std::time::Instant::now();
    assert!(!c.eval(&vars(&[("x", &value)])));
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

// --- API ---------------------------------------------------------------------------------

#[test]
fn source_eq_clone_debug() {
    let src = r#"request.verb = "GET""#;
    let a = Condition::parse(src).unwrap();
    let b = a.clone();
    assert_eq!(a, b);
    assert_eq!(a.source(), src);
    assert_eq!(a.to_string(), src);
    assert_ne!(a, Condition::parse(r#"request.verb  = "GET""#).unwrap());
    assert!(format!("{a:?}").contains("request.verb"));
    let c: Condition = src.parse().unwrap();
    assert_eq!(a, c);
}

#[test]
fn variables_lists_each_once_in_order() {
    let c = Condition::parse(
        r#"(a = "1" or not b) and c ~~ "x" and a != d and true and e ~/ "/x" and f := "G""#,
    )
    .unwrap();
    assert_eq!(c.variables(), vec!["a", "b", "c", "d", "e", "f"]);
    assert!(Condition::parse("true").unwrap().variables().is_empty());
}

// --- errors ------------------------------------------------------------------------------

#[test]
fn error_empty() {
    for src in ["", "   ", "\n\t"] {
        let e = err(src);
        assert_eq!(e.message, "empty condition");
        assert_eq!(e.offset, 0);
    }
}

#[test]
fn error_unterminated_string() {
    let src = r#"request.verb = "GET"#;
    let e = err(src);
    assert_eq!(e.message, "unterminated string literal");
    assert_eq!(e.offset, 15);
    assert_eq!(e.hint.as_deref(), Some("close the string with \""));
    assert_eq!(
        err("x = 'abc").hint.as_deref(),
        Some("close the string with '")
    );
}

#[test]
fn error_unknown_operator() {
    let e = err(r#"request.path Contains "/a""#);
    assert_eq!(e.message, "unknown operator `Contains`");
    assert_eq!(e.offset, 13);
    assert!(e.hint.unwrap().contains("Matches"));
    let e = err("x LessThan 3");
    assert_eq!(e.message, "unknown operator `LessThan`");
    assert!(e.hint.unwrap().contains("LesserThan"));
    let e = err("x Frobs 3");
    assert!(e.hint.unwrap().contains("StartsWith"));
    let e = err(r#"x not Frobs "a""#);
    assert_eq!(e.message, "unknown operator `Frobs`");
    assert_eq!(e.offset, 6);
}

#[test]
fn error_missing_right_operand() {
    let e = err("request.verb =");
    assert_eq!(e.message, "missing right operand after `=`");
    assert_eq!(e.offset, 14);
    let e = err("(a = ) and b");
    assert_eq!(e.message, "missing right operand after `=`");
    assert_eq!(e.offset, 5);
    let e = err("a is not null");
    assert_eq!(e.offset, 5);
    assert!(e.hint.unwrap().contains("IsNot"));
    let e = err("a === 1");
    assert_eq!(
        e.message,
        "expected a variable or value after `==`, found `=`"
    );
    assert_eq!(e.offset, 4);
}

#[test]
fn error_unbalanced_parentheses() {
    let e = err(r#"(a = "1" and (b = "2")"#);
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("never closed"), "{e:?}");
    let e = err(r#"a and ((b = "2")"#);
    assert_eq!(e.offset, 6);
    let e = err(r#"a = "1")"#);
    assert_eq!(e.offset, 7);
    assert!(e.message.contains("unexpected `)`"));
    let e = err("()");
    assert_eq!(e.message, "empty parentheses");
    let e = err(r#"(a = "1" b)"#);
    assert_eq!(e.offset, 9);
    assert!(e.hint.unwrap().contains("byte 0"));
}

#[test]
fn error_trailing_garbage() {
    let e = err(r#"a = "1" b = "2""#);
    assert_eq!(e.offset, 8);
    assert!(e.message.contains("after a complete condition"), "{e:?}");
    let e = err(r#"a = "1" "2""#);
    assert_eq!(e.offset, 8);
}

#[test]
fn error_missing_condition() {
    let e = err("a and");
    assert_eq!(e.message, "missing condition after `and`");
    assert_eq!(e.offset, 5);
    let e = err("a || ) ");
    assert_eq!(e.message, "missing condition after `||`");
    assert_eq!(e.offset, 5);
    let e = err("not");
    assert_eq!(e.message, "missing condition after `not`");
    let e = err("and b");
    assert_eq!(e.message, "expected a condition");
    assert_eq!(e.offset, 0);
    let e = err("x not");
    assert_eq!(e.message, "expected an operator after `not`");
}

#[test]
fn error_bare_literals_and_bad_tokens() {
    assert!(err(r#""GET""#)
        .message
        .contains("not a condition on its own"));
    assert!(err("42").message.contains("not a condition on its own"));
    assert!(err("null").message.contains("not a condition on its own"));
    let e = err("a & b");
    assert_eq!(e.offset, 2);
    assert!(e.hint.unwrap().contains("&&"));
    let e = err("x = 2xx");
    assert_eq!(e.message, "invalid number `2xx`");
    assert_eq!(e.offset, 4);
    assert_eq!(err("x = 1.2.3").message, "invalid number `1.2.3`");
    assert_eq!(err("x = -").offset, 4);
    assert_eq!(err("x = {y}").offset, 4);
    assert_eq!(err("x = é").message, "unexpected character `é`");
    let e = err(r#"= "x""#);
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("expected a condition"));
    // A syntax error before a lexing error is reported first.
    let e = err(r#"a Contains "b"#);
    assert_eq!(e.message, "unknown operator `Contains`");
}

#[test]
fn error_patterns() {
    let e = err(r#"x ~~ "(unclosed""#);
    assert_eq!(e.offset, 5);
    assert!(e.message.starts_with("invalid JavaRegex pattern"), "{e:?}");
    assert!(!e.message.contains('\n'));
    let e = err(r#"x JavaRegex "a)|(b""#);
    assert_eq!(e.offset, 12);
    let e = err(r#"x ~~ "(?=look)ahead""#);
    assert!(e.hint.unwrap().contains("look-around"));
    let e = err(r#"x ~~ "a{1000}{1000}{1000}""#);
    assert_eq!(e.offset, 5);
    let e = err(r#"x ~~ "(?x)a # trailing comment""#);
    assert!(e.hint.unwrap().contains("comment"));
    let e = err("x ~~ y");
    assert!(e.message.contains("must be a quoted string"));
    assert_eq!(e.offset, 5);
    let e = err("x MatchesPath 3");
    assert_eq!(e.offset, 14);
    let e = err("x ~ ");
    assert_eq!(e.message, "missing right operand after `~`");
}

#[test]
fn limits() {
    let ok = format!(
        "{}x{}",
        "(".repeat(MAX_NESTING_DEPTH),
        ")".repeat(MAX_NESTING_DEPTH)
    );
    assert!(eval(&ok, &[("x", "1")]));
    let deep = format!(
        "{}x{}",
        "(".repeat(MAX_NESTING_DEPTH + 1),
        ")".repeat(MAX_NESTING_DEPTH + 1)
    );
    let e = err(&deep);
    assert!(e.message.contains("nested too deeply"));
    assert_eq!(e.offset, MAX_NESTING_DEPTH);
    let nots = format!("{}x", "!".repeat(MAX_NESTING_DEPTH + 1));
    assert!(err(&nots).message.contains("nested too deeply"));
    let mixed = format!("{}x{}", "not (".repeat(40), ")".repeat(40));
    assert!(err(&mixed).message.contains("nested too deeply"));

    let wide = format!("x = \"{}\"", "é".repeat(MAX_CONDITION_LEN));
    let e = err(&wide);
    assert!(wide.is_char_boundary(e.offset));
    let long = format!("x = \"{}\"", "a".repeat(MAX_CONDITION_LEN));
    let e = err(&long);
    assert!(e.message.contains("too long"));
    assert!(e.offset <= long.len());

    // A long flat chain is fine (and does not recurse per term).
    let mut chain = String::from("v0");
    let mut i = 1;
    while chain.len() < MAX_CONDITION_LEN - 20 {
        chain.push_str(&format!(" or v{i}"));
        i += 1;
    }
    let c = Condition::parse(&chain).unwrap();
    assert!(!c.eval(&vars(&[])));
    assert!(c.eval(&vars(&[("v1000", "1")])));
    assert_eq!(c.variables().len(), i);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "(",
            ")",
            " and ",
            " or ",
            "&&",
            "||",
            "!",
            "not ",
            " NOT ",
            "x",
            "request.verb",
            "a-b.c",
            " = ",
            "==",
            "!=",
            ":=",
            ">",
            ">=",
            "<",
            "<=",
            "=|",
            "~~",
            "~",
            "~/",
            " Equals ",
            " IsNot ",
            " StartsWith ",
            " JavaRegex ",
            " MatchesPath ",
            " Like ",
            " Contains ",
            "\"GET\"",
            "\"/a/**\"",
            "\"(a|b\"",
            "\"",
            "'",
            "'x'",
            "1",
            "-2.5",
            ".5",
            "1.",
            "true",
            "false",
            "null",
            " ",
            "é",
            "{",
            "-",
            "*",
            "?",
        ])
    }

    fn check(src: &str) {
        match Condition::parse(src) {
            Ok(c) => {
                let _ = c.eval(&HashMap::new());
                let _ = c.eval(&vars(&[
                    ("x", "1"),
                    ("request.verb", "GET"),
                    ("a-b.c", "/a/b"),
                ]));
                for v in c.variables() {
                    assert!(src.contains(v));
                }
            }
            Err(e) => {
                assert!(e.offset <= src.len(), "{src:?} → {e:?}");
                assert!(src.is_char_boundary(e.offset), "{src:?} → {e:?}");
                assert!(!e.message.is_empty());
            }
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_strings(src in ".{0,200}") {
            check(&src);
        }

        #[test]
        fn parse_never_panics_on_token_soup(parts in prop::collection::vec(fragment(), 0..40)) {
            check(&parts.concat());
        }
    }
}
