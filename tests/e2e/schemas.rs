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

/// The numeric bounds the schemas give editors are exactly what `validate` enforces: for every
/// `[server]` and `[cache]` setting the schema bounds, the bound itself loads and one past it is
/// refused, naming the setting.
#[test]
fn schema_bounds_are_the_bounds_validate_enforces() {
    use crate::harness::{origin, PolicyDir};

    let o = origin();
    for (schema, definition, section) in [
        ("gateway.schema.json", "FileServer", "server"),
        ("stage.schema.json", "FileCache", "cache"),
    ] {
        let text = std::fs::read_to_string(repo().join("schemas").join(schema)).expect("schema");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let props = v["definitions"][definition]["properties"]
            .as_object()
            .expect("properties");
        let mut checked = 0;
        for (name, p) in props {
            let (Some(min), Some(max)) = (p["minimum"].as_f64(), p["maximum"].as_f64()) else {
                continue;
            };
            let load = |value: u64| {
                let d = PolicyDir::new(&o);
                let line = format!("{name} = {value}\n");
                if section == "server" {
                    d.server_settings(&line);
                    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
                } else {
                    d.stage(
                        "prod",
                        &format!(
                            "target = \"http://{{{{ORIGIN}}}}\"\n[cache]\nenabled = true\n{line}"
                        ),
                    );
                }
                cachegate::config::load(d.path())
            };
            let (min, max) = (min as u64, max as u64);
            for ok in [min, max] {
                let outcome = load(ok);
                assert!(
                    outcome.config.is_some(),
                    "[{section}] {name} = {ok} is within the schema but refused:\n{}",
                    outcome.diagnostics
                );
            }
            let mut out = vec![max + 1];
            if min > 0 {
                out.push(min - 1);
            }
            for bad in out {
                let outcome = load(bad);
                assert!(
                    outcome.config.is_none()
                        && outcome.diagnostics.to_string().contains(name.as_str()),
                    "[{section}] {name} = {bad} is outside the schema but loads:\n{}",
                    outcome.diagnostics
                );
            }
            checked += 1;
        }
        assert!(checked >= 4, "{schema}: only {checked} bounded settings");
    }
}
