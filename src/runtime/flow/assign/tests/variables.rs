//! `<AssignVariable>`: which of `<Ref>`, `<Template>` and `<Value>` wins, and what each variable
//! sees of the ones assigned before it.

use super::*;

#[test]
fn assign_variable_precedence() {
    let base = vars(&[("a", "from-ref"), ("t", "tt")]);
    let am = AssignMessage {
        assign_variables: vec![
            // Ref resolves: it wins.
            variable("v1", Some("a"), Some("tpl-{t}"), Some("lit")),
            // Ref unresolved: Template.
            variable("v2", Some("nope"), Some("tpl-{t}"), Some("lit")),
            // Template unresolved (not ignoring): Value.
            variable("v3", None, Some("tpl-{nope}"), Some("lit")),
            // Only Value.
            variable("v4", None, None, Some("")),
            // Nothing resolves: left unset, no error.
            variable("v5", Some("nope"), None, None),
            // Sees the earlier assignment in the same policy.
            variable("v6", Some("v2"), None, None),
        ],
        ..AssignMessage::default()
    };
    let compiled = CompiledAssignMessage::compile(&am);
    let expected: Vec<(String, String)> = [
        ("v1", "from-ref"),
        ("v2", "tpl-tt"),
        ("v3", "lit"),
        ("v4", ""),
        ("v6", "tpl-tt"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(compiled.assign_variables(&base).unwrap(), expected);
    let mut msg = TestMessage::request("");
    let before = msg.clone();
    assert_eq!(compiled.apply(&mut msg, &base).unwrap(), expected);
    assert_eq!(msg, before);
}

#[test]
fn assign_variable_unresolved_template_without_value() {
    let mut am = AssignMessage {
        assign_variables: vec![variable("v", Some("nope"), Some("x{nope}y"), None)],
        ..AssignMessage::default()
    };
    assert_eq!(
        CompiledAssignMessage::compile(&am).assign_variables(&no_vars()),
        Err(AssignError::Unresolved("nope".into()))
    );
    // An error in AssignVariable also leaves the message unchanged.
    am.set = Some(Set {
        headers: vec![nv("x-a", "1")],
        ..Set::default()
    });
    let mut msg = TestMessage::request("");
    assert!(CompiledAssignMessage::compile(&am)
        .apply(&mut msg, &no_vars())
        .is_err());
    assert!(msg.headers.is_empty());

    // Ignoring unresolved variables: the template renders them empty and wins over Value.
    am.ignore_unresolved_variables = true;
    am.assign_variables = vec![variable("v", None, Some("x{nope}y"), Some("lit"))];
    assert_eq!(
        CompiledAssignMessage::compile(&am)
            .assign_variables(&no_vars())
            .unwrap(),
        vec![("v".to_owned(), "xy".to_owned())]
    );
}
