//! `<QueryParams>` through a whole step: Remove, Add and Set with percent-encoding, and a query
//! left byte for byte as received when nothing changes (and on responses, which have none).

use super::*;

#[test]
fn query_params_set_add_remove_with_encoding() {
    let am = AssignMessage {
        remove: Some(Remove {
            query_params: Some(vec![nv("drop", ""), nv("my key", "")]),
            ..Remove::default()
        }),
        add: Some(Add {
            query_params: vec![nv("tag", "{tag}"), nv("sp ace", "a&b")],
            ..Add::default()
        }),
        set: Some(Set {
            query_params: vec![nv("page", "{page}"), nv("new", "x y")],
            ..Set::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("drop=1&page=1&Drop=keep&keep=a%2Fb&drop=2&page=9&my+key=z");
    run(&am, &mut msg, &vars(&[("tag", "café & co"), ("page", "2")]));
    assert_eq!(
        msg.query,
        "page=2&Drop=keep&keep=a%2Fb&tag=caf%C3%A9%20%26%20co&sp%20ace=a%26b&new=x%20y"
    );
}

#[test]
fn query_remove_all() {
    let am = AssignMessage {
        remove: Some(Remove {
            query_params: Some(Vec::new()),
            ..Remove::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("a=1&b=2");
    run(&am, &mut msg, &no_vars());
    assert_eq!(msg.query, "");
}

#[test]
fn query_untouched_when_unchanged_and_ignored_on_responses() {
    let am = AssignMessage {
        remove: Some(Remove {
            query_params: Some(vec![nv("absent", "")]),
            ..Remove::default()
        }),
        ..AssignMessage::default()
    };
    let mut msg = TestMessage::request("a=1&&b");
    run(&am, &mut msg, &no_vars());
    assert_eq!(msg.query, "a=1&&b");
    assert_eq!(msg.set_query_calls, 0);

    let add = AssignMessage {
        add: Some(Add {
            query_params: vec![nv("a", "1")],
            ..Add::default()
        }),
        ..AssignMessage::default()
    };
    let mut resp = TestMessage::response();
    run(&add, &mut resp, &no_vars());
    assert_eq!(resp.set_query_calls, 0);
    assert_eq!(resp.query, "");
}
