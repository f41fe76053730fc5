//! Headers and payload: the target, Remove, Add and Set (in Apigee's order), and the rule that a
//! step which fails (response splitting, an unresolved variable) writes nothing at all.

use super::*;

#[test]
fn target_is_assign_to_or_the_steps_side() {
    let plain = CompiledAssignMessage::compile(&AssignMessage::default());
    assert_eq!(plain.target(MessageTarget::Request), MessageTarget::Request);
    assert_eq!(
        plain.target(MessageTarget::Response),
        MessageTarget::Response
    );
    let to_request = CompiledAssignMessage::compile(&AssignMessage {
        assign_to: Some(AssignTo {
            pos: pos(),
            target: MessageTarget::Request,
        }),
        ..AssignMessage::default()
    });
    assert_eq!(
        to_request.target(MessageTarget::Response),
        MessageTarget::Request
    );
}

#[test]
fn empty_policy_changes_nothing() {
    let mut msg = TestMessage::request("a=1&&b").with_header("x-a", "1");
    let before = msg.clone();
    let out = CompiledAssignMessage::compile(&AssignMessage::default())
        .apply(&mut msg, &no_vars())
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(msg, before);
}

#[test]
fn remove_listed_headers_only() {
    let am = AssignMessage {
        remove: Some(Remove {
            headers: Some(vec![nv("X-Drop", ""), nv("x-also", "")]),
            ..Remove::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("")
        .with_header("x-drop", "1")
        .with_header("x-drop", "2")
        .with_header("x-also", "3")
        .with_header("x-keep", "4");
    run(&am, &mut msg, &no_vars());
    assert!(msg.values("x-drop").is_empty());
    assert!(msg.values("x-also").is_empty());
    assert_eq!(msg.values("x-keep"), ["4"]);
}

#[test]
fn remove_empty_headers_removes_all_and_none_removes_nothing() {
    let all = AssignMessage {
        remove: Some(Remove {
            headers: Some(Vec::new()),
            ..Remove::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("")
        .with_header("x-a", "1")
        .with_header("x-b", "2");
    run(&all, &mut msg, &no_vars());
    assert!(msg.headers.is_empty());

    let nothing = AssignMessage {
        remove: Some(Remove::default()),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("a=1").with_header("x-a", "1");
    let before = msg.clone();
    run(&nothing, &mut msg, &no_vars());
    assert_eq!(msg, before);
}

#[test]
fn invalid_header_names_are_skipped_not_turned_into_remove_all() {
    let am = AssignMessage {
        remove: Some(Remove {
            headers: Some(vec![nv("bad name", "")]),
            ..Remove::default()
        }),
        add: Some(Add {
            headers: vec![nv("bad:name", "v"), nv("x-ok", "v")],
            ..Add::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("").with_header("x-keep", "1");
    run(&am, &mut msg, &no_vars());
    assert_eq!(msg.values("x-keep"), ["1"]);
    assert_eq!(msg.values("x-ok"), ["v"]);
    assert_eq!(msg.headers.len(), 2);
}

#[test]
fn remove_payload() {
    let am = AssignMessage {
        remove: Some(Remove {
            payload: true,
            ..Remove::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("");
    run(&am, &mut msg, &no_vars());
    assert_eq!(msg.payload, None);
}

#[test]
fn add_appends_header_values() {
    let am = AssignMessage {
        add: Some(Add {
            headers: vec![nv("X-Tier", "{client.tier}"), nv("x-tier", "second")],
            ..Add::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("").with_header("x-tier", "first");
    run(&am, &mut msg, &vars(&[("client.tier", "gold")]));
    assert_eq!(msg.values("x-tier"), ["first", "gold", "second"]);
}

#[test]
fn set_replaces_header_values() {
    let am = set_headers(vec![nv("X-Api", "v{ver}"), nv("x-new", "n")]);
    let mut msg = TestMessage::request("")
        .with_header("x-api", "old1")
        .with_header("x-api", "old2");
    run(&am, &mut msg, &vars(&[("ver", "2")]));
    assert_eq!(msg.values("x-api"), ["v2"]);
    assert_eq!(msg.values("x-new"), ["n"]);
}

#[test]
fn header_values_may_be_utf8() {
    let am = set_headers(vec![nv("x-name", "{who}")]);
    let mut msg = TestMessage::request("");
    run(&am, &mut msg, &vars(&[("who", "Zoë")]));
    assert_eq!(
        msg.headers.get("x-name").unwrap().as_bytes(),
        "Zoë".as_bytes()
    );
}

#[test]
fn order_is_remove_then_add_then_set() {
    let am = AssignMessage {
        remove: Some(Remove {
            headers: Some(vec![nv("x-a", "")]),
            query_params: Some(vec![nv("p", "")]),
            payload: false,
        }),
        add: Some(Add {
            headers: vec![nv("x-a", "added"), nv("x-b", "added")],
            query_params: vec![nv("p", "added"), nv("q", "added")],
        }),
        set: Some(Set {
            headers: vec![nv("x-b", "set")],
            query_params: vec![nv("q", "set")],
            ..Set::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("p=old&x=1").with_header("x-a", "old");
    run(&am, &mut msg, &no_vars());
    // Remove ran before Add: the added value survives, the old one does not.
    assert_eq!(msg.values("x-a"), ["added"]);
    // Set ran after Add: it replaced the added value.
    assert_eq!(msg.values("x-b"), ["set"]);
    assert_eq!(msg.query, "x=1&p=added&q=set");
}

#[test]
fn json_payload_keeps_its_braces() {
    let am = set_only(Set {
        payload: Some(Payload {
            pos: pos(),
            content_type: Some("application/json".into()),
            template: r#"{"tier":"{client.tier}"}"#.into(),
        }),
        ..Set::default()
    });
    let mut msg = TestMessage::response();
    run(&am, &mut msg, &vars(&[("client.tier", "gold")]));
    assert_eq!(
        msg.payload,
        Some((
            Some("application/json".to_owned()),
            Bytes::from_static(br#"{"tier":"gold"}"#)
        ))
    );
}

#[test]
fn payload_without_content_type() {
    let am = set_only(Set {
        payload: Some(Payload {
            pos: pos(),
            content_type: None,
            template: "hello {name}".into(),
        }),
        ..Set::default()
    });
    let mut msg = TestMessage::request("");
    run(&am, &mut msg, &vars(&[("name", "world")]));
    assert_eq!(
        msg.payload,
        Some((None, Bytes::from_static(b"hello world")))
    );
}

#[test]
fn payload_with_invalid_content_type_is_rejected() {
    let am = set_only(Set {
        payload: Some(Payload {
            pos: pos(),
            content_type: Some("text/plain\r\nx: y".into()),
            template: "x".into(),
        }),
        ..Set::default()
    });
    let mut msg = TestMessage::request("");
    let err = CompiledAssignMessage::compile(&am)
        .apply(&mut msg, &no_vars())
        .unwrap_err();
    assert_eq!(
        err,
        AssignError::InvalidHeaderValue {
            name: "content-type".into()
        }
    );
}

#[test]
fn response_splitting_is_rejected_and_nothing_is_written() {
    let evil = vars(&[("evil", "a\r\nSet-Cookie: x=1")]);
    for ignore in [false, true] {
        for am in [
            AssignMessage {
                remove: Some(Remove {
                    headers: Some(Vec::new()),
                    ..Remove::default()
                }),
                set: Some(Set {
                    headers: vec![nv("x-ok", "fine"), nv("X-Echo", "{evil}")],
                    ..Set::default()
                }),
                ignore_unresolved_variables: ignore,
                ..AssignMessage::default()
            },
            AssignMessage {
                add: Some(Add {
                    headers: vec![nv("x-echo", "pre-{evil}")],
                    ..Add::default()
                }),
                ignore_unresolved_variables: ignore,
                ..AssignMessage::default()
            },
        ] {
            let mut msg = TestMessage::response().with_header("x-keep", "1");
            let before = msg.clone();
            let err = CompiledAssignMessage::compile(&am)
                .apply(&mut msg, &evil)
                .unwrap_err();
            assert_eq!(
                err,
                AssignError::InvalidHeaderValue {
                    name: "x-echo".into()
                }
            );
            assert_eq!(err.to_string(), "invalid header value for `x-echo`");
            // Not even the valid header or the Remove was applied.
            assert_eq!(msg, before);
            assert!(msg.headers.get("set-cookie").is_none());
        }
    }
    for bad in ["a\nb", "a\rb", "a\0b"] {
        let am = set_headers(vec![nv("x-echo", "{v}")]);
        let mut msg = TestMessage::response();
        assert!(matches!(
            CompiledAssignMessage::compile(&am).apply(&mut msg, &vars(&[("v", bad)])),
            Err(AssignError::InvalidHeaderValue { .. })
        ));
    }
}

#[test]
fn unresolved_variable_is_an_error_unless_ignored() {
    let mut am = set_headers(vec![nv("x-a", "[{missing}]")]);
    let mut msg = TestMessage::request("");
    let err = CompiledAssignMessage::compile(&am)
        .apply(&mut msg, &no_vars())
        .unwrap_err();
    assert_eq!(err, AssignError::Unresolved("missing".into()));
    assert_eq!(err.to_string(), "unresolved variable `missing`");
    assert!(msg.headers.is_empty());

    am.ignore_unresolved_variables = true;
    run(&am, &mut msg, &no_vars());
    assert_eq!(msg.values("x-a"), ["[]"]);
}
