//! The start line: `<StatusCode>` and `<ReasonPhrase>` of a response, `<Verb>` and `<Path>` of a
//! request, each checked before it is written, and the escaping of the values errors quote.

use super::*;

#[test]
fn status_code_and_reason_phrase() {
    let am = set_only(Set {
        status_code: Some(loc("{code}")),
        reason_phrase: Some(loc("Not {what}")),
        ..Set::default()
    });
    let mut msg = TestMessage::response();
    run(&am, &mut msg, &vars(&[("code", "404"), ("what", "Here")]));
    assert_eq!(msg.status, StatusCode::NOT_FOUND);
    assert_eq!(msg.reason.as_deref(), Some("Not Here"));

    for bad in ["abc", "99", "600", "", "-1", "20 0"] {
        let mut msg = TestMessage::response();
        let err = CompiledAssignMessage::compile(&am)
            .apply(&mut msg, &vars(&[("code", bad), ("what", "x")]))
            .unwrap_err();
        assert_eq!(err, AssignError::InvalidStatus(bad.into()));
        assert_eq!(msg.status, StatusCode::OK);
    }
}

#[test]
fn status_code_without_reason() {
    let am = set_only(Set {
        status_code: Some(loc("201")),
        ..Set::default()
    });
    let mut msg = TestMessage::response();
    run(&am, &mut msg, &no_vars());
    assert_eq!(msg.status, StatusCode::CREATED);
    assert_eq!(msg.reason, None);
}

#[test]
fn reason_phrase_with_crlf_is_rejected() {
    let am = set_only(Set {
        status_code: Some(loc("200")),
        reason_phrase: Some(loc("{r}")),
        ..Set::default()
    });
    let mut msg = TestMessage::response();
    let err = CompiledAssignMessage::compile(&am)
        .apply(&mut msg, &vars(&[("r", "OK\r\nSet-Cookie: x=1")]))
        .unwrap_err();
    assert_eq!(
        err,
        AssignError::InvalidReasonPhrase("OK\\r\\nSet-Cookie: x=1".into())
    );
    assert_eq!(msg.reason, None);
}

#[test]
fn verb() {
    let am = set_only(Set {
        verb: Some(loc("{v}")),
        ..Set::default()
    });
    let mut msg = TestMessage::request("");
    run(&am, &mut msg, &vars(&[("v", "POST")]));
    assert_eq!(msg.method, Method::POST);
    for bad in ["", "GE T", "GET\r\n", "(x)"] {
        let mut msg = TestMessage::request("");
        let err = CompiledAssignMessage::compile(&am)
            .apply(&mut msg, &vars(&[("v", bad)]))
            .unwrap_err();
        assert_eq!(err, AssignError::InvalidMethod(escaped(bad)));
        assert_eq!(msg.method, Method::GET);
    }
}

#[test]
fn path() {
    let am = set_only(Set {
        path: Some(loc("/v2/items/{id}")),
        ..Set::default()
    });
    let mut msg = TestMessage::request("a=1");
    run(&am, &mut msg, &vars(&[("id", "7")]));
    assert_eq!(msg.path, "/v2/items/7");
    assert_eq!(msg.query, "a=1");
    for bad in ["7 8", "7\r\nx: y", "7?x=1", "7#f", "é"] {
        let mut msg = TestMessage::request("");
        let err = CompiledAssignMessage::compile(&am)
            .apply(&mut msg, &vars(&[("id", bad)]))
            .unwrap_err();
        assert_eq!(
            err,
            AssignError::InvalidPath(escaped(&format!("/v2/items/{bad}")))
        );
        assert_eq!(msg.path, "/items");
    }
    let relative = set_only(Set {
        path: Some(loc("items")),
        ..Set::default()
    });
    assert_eq!(
        CompiledAssignMessage::compile(&relative)
            .apply(&mut TestMessage::request(""), &no_vars())
            .unwrap_err(),
        AssignError::InvalidPath("items".into())
    );
}

#[test]
fn error_text_escapes_control_characters() {
    let err = AssignError::InvalidPath(escaped("/a\r\nb"));
    assert_eq!(err.to_string(), "invalid path `/a\\r\\nb`");
}
