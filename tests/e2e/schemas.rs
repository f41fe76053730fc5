//! Generated artefacts stay in step with the code.

use crate::harness::repo;

#[test]
fn committed_json_schemas_are_up_to_date() {
    for (name, text) in cachegate::config::schema::generate() {
        let path = repo().join("schemas").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is stale: run `make schemas` and commit the result",
            path.display()
        );
    }
}

#[test]
fn shipped_toml_files_point_editors_at_the_schemas() {
    let gateway =
        std::fs::read_to_string(repo().join("policies/gateway.toml")).expect("gateway.toml");
    assert!(gateway.starts_with("#:schema ../schemas/gateway.schema.json"));
    let stage =
        std::fs::read_to_string(repo().join("policies/prod/stage.toml")).expect("stage.toml");
    assert!(stage.starts_with("#:schema ../../schemas/stage.schema.json"));
}
