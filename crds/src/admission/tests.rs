use super::*;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("test YAML")
}

const SINK: &str = "apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: orders}
spec:
  kafka: {bootstrapServers: 'kafka:9092'}
  sink: {topics: [orders], discard: {}}
";

fn violations(text: &str) -> Vec<String> {
    match admit(&yaml(text)) {
        Ok(_) => Vec::new(),
        Err(v) => v.iter().map(ToString::to_string).collect(),
    }
}

fn with(extra: &str) -> String {
    format!("{SINK}{extra}")
}

#[test]
fn every_rule_of_the_crd_compiles() {
    fn walk(node: &Node, path: &str, bad: &mut Vec<String>) {
        for rule in &node.rules {
            if let Err(e) = rule.compiled() {
                bad.push(format!("{path}: {e}"));
            }
        }
        for (name, sub) in &node.properties {
            walk(sub, &format!("{path}.{name}"), bad);
        }
        if let Some(sub) = &node.items {
            walk(sub, &format!("{path}[]"), bad);
        }
        if let Some(node::Extra::Values(sub)) = &node.extra {
            walk(sub, &format!("{path}{{}}"), bad);
        }
    }
    let mut bad = Vec::new();
    let admission = Admission::new();
    walk(&admission.root, "", &mut bad);
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(admission.root.properties["spec"].rules.len() >= 5);
}

#[test]
fn a_plain_sink_is_admitted_with_the_schema_defaults() {
    let admitted = admit(&yaml(SINK)).expect("admitted");
    assert_eq!(admitted["spec"]["tasks"], json!(1));
    assert_eq!(admitted["spec"]["delivery"], json!("AtLeastOnce"));
    assert_eq!(admitted["spec"]["state"], json!("Running"));
}

#[test]
fn defaults_inside_defaults_are_applied() {
    let admitted = admit(&yaml(&with(
        "  autoscaling: {maxTasks: 4, lagPerTask: 100}\n",
    )))
    .expect("admitted");
    let a = &admitted["spec"]["autoscaling"];
    assert_eq!(a["minTasks"], json!(1));
    assert_eq!(a["scaleUp"]["tasks"], json!(4));
    assert_eq!(a["scaleDown"]["periodSeconds"], json!(60));
}

#[test]
fn bounds_say_what_the_api_server_says() {
    assert_eq!(
        violations(&with("  tasks: 0\n")),
        ["spec.tasks: Invalid value: 0: spec.tasks in body should be greater than or equal to 1"]
    );
    assert_eq!(
        violations(&with("  progress: {stallAfterSeconds: 5}\n")),
        ["spec.progress.stallAfterSeconds: Invalid value: 5: spec.progress.stallAfterSeconds in body should be greater than or equal to 10"]
    );
}

#[test]
fn a_wrong_type_blocks_the_rules() {
    let v = violations(&with("  progress: {stallAfterSeconds: many}\n"));
    assert_eq!(
        v,
        [
            "spec.progress.stallAfterSeconds: Invalid value: \"string\": spec.progress.stallAfterSeconds in body must be of type integer: \"string\"",
            RULES_NOT_CHECKED,
        ]
    );
}

#[test]
fn enums_list_the_supported_values() {
    let v = violations(&with("  delivery: AtMostOnce\n"));
    assert!(
        v[0].starts_with(
            "spec.delivery: Unsupported value: \"AtMostOnce\": supported values: \"AtLeastOnce\""
        ),
        "{v:?}"
    );
}

#[test]
fn unknown_fields_are_refused_before_anything_else() {
    let v = violations(&with("  taks: 3\n  tasks: 0\n"));
    assert_eq!(v, ["spec.taks: unknown field \"spec.taks\""]);
    let v = violations(&SINK.replace(
        "metadata: {name: orders}",
        "metadata: {name: orders, lables: {}}",
    ));
    assert_eq!(v, ["metadata.lables: unknown field \"metadata.lables\""]);
}

#[test]
fn cel_rules_report_under_their_node_or_field_path() {
    assert_eq!(
        violations(&with("  autoscaling: {maxTasks: 2}\n")),
        ["spec.autoscaling: Invalid value: \"object\": spec.autoscaling needs exactly one target: lagPerTask or drainSeconds"]
    );
    assert_eq!(
        violations(&with("  autoscaling: {minTasks: 5, maxTasks: 2, lagPerTask: 10}\n")),
        ["spec.autoscaling.minTasks: Invalid value: \"object\": spec.autoscaling.minTasks must not be greater than spec.autoscaling.maxTasks"]
    );
}

#[test]
fn message_expressions_name_the_key() {
    let v = violations(
        &with("  kafka: {bootstrapServers: 'kafka:9092', config: {group.id: x}}\n")
            .replace("  kafka: {bootstrapServers: 'kafka:9092'}\n", ""),
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].starts_with("spec.kafka.config: Invalid value: \"object\": spec.kafka.config[\"group.id\"] is set by Ferry"),
        "{v:?}"
    );
}

#[test]
fn rules_on_list_items_report_the_index() {
    let v = violations(&with(
        "  transforms:\n  - {name: a, filter: {}, negate: true}\n",
    ));
    assert_eq!(
        v,
        ["spec.transforms[0]: Invalid value: \"object\": negate needs a predicate"],
        "{v:?}"
    );
}

#[test]
fn sets_refuse_duplicates_at_the_second_item() {
    let v = violations(&SINK.replace("topics: [orders]", "topics: [orders, orders]"));
    assert_eq!(v, ["spec.sink.topics[1]: Duplicate value: \"orders\""]);
}

#[test]
fn the_name_rules_report_on_the_object_and_metadata_name() {
    let long = "a".repeat(53);
    let v = violations(&SINK.replace("name: orders", &format!("name: {long}")));
    assert_eq!(v.len(), 1, "{v:?}");
    // On the whole object, as the API server reports it (`fieldPath` cannot name metadata).
    assert!(
        v[0].starts_with("Invalid value: \"object\": metadata.name must be at most 52"),
        "{v:?}"
    );
    let v = violations(&SINK.replace("name: orders", "name: Orders"));
    assert!(
        v[0].starts_with(
            "metadata.name: Invalid value: \"Orders\": a lowercase RFC 1123 subdomain"
        ),
        "{v:?}"
    );
}

#[test]
fn required_fields_are_named() {
    let v = violations(&SINK.replace(
        "  kafka: {bootstrapServers: 'kafka:9092'}\n",
        "  kafka: {}\n",
    ));
    assert_eq!(
        v,
        [
            "spec.kafka.bootstrapServers: Required value",
            RULES_NOT_CHECKED
        ]
    );
}

#[test]
fn field_names_are_escaped_for_cel_as_kubernetes_does() {
    assert_eq!(rules::escape("namespace").as_deref(), Some("__namespace__"));
    assert_eq!(
        rules::escape("a.b-c/d").as_deref(),
        Some("a__dot__b__dash__c__slash__d")
    );
    assert_eq!(rules::escape("a__b").as_deref(), Some("a__underscores__b"));
    assert_eq!(rules::escape("9lives"), None);
    assert_eq!(rules::escape("byteArray").as_deref(), Some("byteArray"));
}

#[test]
fn a_connector_of_the_rust_types_is_checked_the_same_way() {
    let kc: KafkaConnector = serde_yaml::from_str(&with("  tasks: 2000\n")).expect("parses");
    let v: Vec<String> = check(&kc).iter().map(ToString::to_string).collect();
    assert_eq!(
        v,
        ["spec.tasks: Invalid value: 2000: spec.tasks in body should be less than or equal to 1000"]
    );
}

#[test]
fn outside_bytes_never_panic() {
    for text in [
        "[]",
        "42",
        "null",
        "{spec: 1}",
        "{apiVersion: 1, kind: [], metadata: 3}",
    ] {
        assert!(admit(&yaml(text)).is_err(), "{text}");
    }
}

#[test]
fn the_scale_subresource_checks_its_replicas_field() {
    assert_eq!(
        violations(&with("  tasks: -1\n")),
        [
            "spec.tasks: Invalid value: -1: spec.tasks in body should be greater than or equal to 1",
            ".spec.tasks: Invalid value: -1: should be a non-negative integer",
        ]
    );
    let v = violations(&with("  tasks: two\n"));
    assert!(
        v.contains(&".spec.tasks: Invalid value: 0: .spec.tasks accessor error: two is of the type string, expected int64".to_owned()),
        "{v:?}"
    );
}
