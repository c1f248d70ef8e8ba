//! The generated CustomResourceDefinition: the copies in the repository are current, the
//! schema is structural, and the CEL rules follow the plugin names the plugins module exposes.

use std::path::{Path, PathBuf};

use ferry_crds::names;
use ferry_crds::pipeline::TRANSFORM_KINDS;
use ferry_crds::plugins::{SINK_PLUGINS, SOURCE_PLUGINS};
use ferry_crds::schema::{cel_field, crd, crd_yaml, CRD_FILES};
use ferry_crds::secret_access;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

fn schema() -> Value {
    let crd = crd();
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("the CRD has a schema"),
    )
    .expect("the schema serializes")
}

fn rules_at(schema: &Value, path: &[&str]) -> Vec<(String, String)> {
    let mut node = schema;
    for name in path {
        node = &node["properties"][name];
    }
    node["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    (
                        r["rule"].as_str().unwrap_or_default().to_owned(),
                        r["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn generated_files_are_current() {
    let expected = crd_yaml().expect("the CRD renders as YAML");
    let root = repo_root();
    let checks = ferry_crds::admission::checks_json(&crd());
    let stale: Vec<&str> = CRD_FILES
        .iter()
        .copied()
        .filter(|file| {
            std::fs::read_to_string(root.join(file)).ok().as_deref() != Some(expected.as_str())
        })
        .chain(
            (std::fs::read_to_string(root.join(ferry_crds::admission::CHECKS_FILE))
                .ok()
                .as_deref()
                != Some(checks.as_str()))
            .then_some(ferry_crds::admission::CHECKS_FILE),
        )
        .collect();
    assert!(
        stale.is_empty(),
        "{} differ from what the Rust types generate: run `cargo run -p ferry-crds --bin crdgen -- --write` and commit the result",
        stale.join(", ")
    );
}

#[test]
fn the_secret_access_policy_template_is_current() {
    let expected = secret_access::helm_template().expect("the policy renders as YAML");
    let actual = std::fs::read_to_string(repo_root().join(secret_access::HELM_TEMPLATE)).ok();
    assert_eq!(
        actual.as_deref(),
        Some(expected.as_str()),
        "{} differs from what ferry-crds generates: run `cargo run -p ferry-crds --bin crdgen -- --write` and commit the result",
        secret_access::HELM_TEMPLATE
    );
}

/// Paths (from the resource's root) of every object in `node` shaped like a Secret key
/// reference: exactly the properties `name` and `key`, both required.
fn secret_key_shapes(node: &Value, path: &str, found: &mut Vec<String>) {
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    let mut names: Vec<&str> = properties.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names == ["key", "name"] {
        found.push(path.trim_start_matches('.').to_owned());
    }
    for (name, child) in properties {
        secret_key_shapes(child, &format!("{path}.{name}"), found);
    }
    // A reference inside a list or a map shows up with `[]` or `{}` in its path, which the
    // policy's expressions cannot reach: the comparison below then fails.
    secret_key_shapes(&node["items"], &format!("{path}[]"), found);
    secret_key_shapes(&node["additionalProperties"], &format!("{path}{{}}"), found);
}

#[test]
fn the_secret_access_policy_checks_every_field_that_names_a_secret() {
    let mut found = Vec::new();
    secret_key_shapes(&schema(), "", &mut found);
    found.sort();
    let mut listed: Vec<String> = secret_access::SECRET_REFERENCES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "every Secret reference in the schema must be in secret_access::SECRET_REFERENCES"
    );
}

#[test]
fn names_scale_and_columns() {
    let crd = crd();
    assert_eq!(crd.metadata.name.as_deref(), Some(names::CRD_NAME));
    assert_eq!(crd.spec.names.plural, names::PLURAL);
    assert_eq!(crd.spec.group, names::API_GROUP);
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, names::KIND);
    assert_eq!(crd.spec.names.short_names, Some(vec!["kc".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, names::API_VERSION);
    let sub = version.subresources.as_ref().expect("subresources");
    assert!(sub.status.is_some(), "status subresource");
    let scale = sub.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.tasks");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .as_ref()
        .expect("printer columns")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["State", "Tasks", "Lag", "Restarts", "Age", "Message"]
    );
    let selectable: Vec<&str> = version
        .selectable_fields
        .iter()
        .flatten()
        .map(|f| f.json_path.as_str())
        .collect();
    assert_eq!(selectable, [".spec.state", ".status.state"]);
}

/// Kubernetes rejects a CRD whose schema is not structural: every property and item has a
/// `type` (or an int-or-string / preserve-unknown-fields marker), and `oneOf`/`anyOf`/
/// `allOf`/`not` branches only restate constraints (no types, descriptions or defaults).
fn structural_violations(node: &Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: not an object"));
        return;
    };
    if in_junctor {
        for forbidden in [
            "type",
            "description",
            "default",
            "additionalProperties",
            "nullable",
            "x-kubernetes-validations",
        ] {
            if obj.contains_key(forbidden) {
                out.push(format!(
                    "{path}: `{forbidden}` inside oneOf/anyOf/allOf/not"
                ));
            }
        }
    } else if !obj.contains_key("type")
        && obj.get("x-kubernetes-int-or-string") != Some(&Value::Bool(true))
        && obj.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
    {
        out.push(format!("{path}: no type"));
    }
    for forbidden in ["$ref", "definitions", "$defs", "uniqueItems"] {
        if obj.contains_key(forbidden) {
            out.push(format!("{path}: `{forbidden}` is not allowed"));
        }
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (name, prop) in props {
            structural_violations(prop, &format!("{path}.{name}"), in_junctor, out);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_violations(items, &format!("{path}[]"), in_junctor, out);
    }
    if let Some(additional @ Value::Object(_)) = obj.get("additionalProperties") {
        structural_violations(additional, &format!("{path}{{}}"), in_junctor, out);
    }
    for junctor in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(branches)) = obj.get(junctor) {
            for (i, branch) in branches.iter().enumerate() {
                structural_violations(branch, &format!("{path}.{junctor}[{i}]"), true, out);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        structural_violations(not, &format!("{path}.not"), true, out);
    }
}

#[test]
fn schema_is_structural() {
    let mut violations = Vec::new();
    structural_violations(&schema(), "", false, &mut violations);
    assert!(
        violations.is_empty(),
        "non-structural schema:\n{}",
        violations.join("\n")
    );
}

#[test]
fn plugin_rules_follow_the_plugin_modules_names() {
    let schema = schema();
    for (block, plugins) in [("source", SOURCE_PLUGINS), ("sink", SINK_PLUGINS)] {
        let rules = rules_at(&schema, &["spec", block]);
        let (rule, message) = rules
            .iter()
            .find(|(_, m)| m.contains("exactly one plugin block"))
            .unwrap_or_else(|| panic!("no plugin rule on spec.{block}: {rules:?}"));
        assert!(message.starts_with(&format!("spec.{block} ")), "{message}");
        for plugin in plugins.iter() {
            assert!(
                rule.contains(&format!("has(self.{})", cel_field(plugin))),
                "{rule}"
            );
            assert!(message.contains(plugin), "{message}");
            assert!(
                schema["properties"]["spec"]["properties"][block]["properties"][plugin].is_object(),
                "spec.{block}.{plugin} is named in the plugins module but missing from the schema"
            );
        }
    }
}

#[test]
fn transform_blocks_are_in_the_schema() {
    let schema = schema();
    let item = &schema["properties"]["spec"]["properties"]["transforms"]["items"];
    for kind in TRANSFORM_KINDS {
        assert!(
            item["properties"][kind].is_object(),
            "spec.transforms[].{kind} missing"
        );
    }
    assert_eq!(item["properties"]["name"]["maxLength"], 128);
    let rules = rules_at(&schema, &["spec", "transforms"]);
    assert!(
        rules.iter().any(|(_, m)| m.contains("unique name")),
        "{rules:?}"
    );
}

#[test]
fn every_rule_message_names_its_field() {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(Value::Array(rules)) = node.get("x-kubernetes-validations") {
            for rule in rules {
                match rule["message"].as_str() {
                    None => out.push(format!("{path}: rule without a message")),
                    Some(m) if m.len() < 10 => out.push(format!("{path}: terse message {m:?}")),
                    Some(_) => {}
                }
            }
        }
        if let Some(Value::Object(props)) = node.get("properties") {
            for (name, prop) in props {
                walk(prop, &format!("{path}.{name}"), out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), out);
        }
    }
    let mut problems = Vec::new();
    walk(&schema(), "", &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The rules this crate owns start with the field they are about.
    let schema = schema();
    for path in [
        &["spec"][..],
        &["spec", "kafka", "config"],
        &["spec", "kafka", "tls"],
        &["spec", "autoscaling"],
        &["spec", "restartPolicy"],
        &["spec", "offsets", "reset"],
        &["spec", "sink"],
        &["spec", "source"],
    ] {
        let rules = rules_at(&schema, path);
        assert!(!rules.is_empty(), "no rules at {}", path.join("."));
        for (rule, message) in rules {
            assert!(message.starts_with("spec"), "{rule}: {message}");
        }
    }
}

#[test]
fn every_field_is_documented() {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(Value::Object(props)) = node.get("properties") {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if prop
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    out.push(here.clone());
                }
                walk(prop, &here, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), out);
        }
    }
    let schema = schema();
    let mut undocumented = Vec::new();
    walk(&schema["properties"]["spec"], "spec", &mut undocumented);
    walk(&schema["properties"]["status"], "status", &mut undocumented);
    assert!(
        undocumented.is_empty(),
        "fields without a description (kubectl explain shows nothing):\n{}",
        undocumented.join("\n")
    );
}
