//! The operator-wide default pod template of task pods (`--task-pod-template`, the chart's
//! `taskPodTemplate`): node placement, tolerations, resources, labels and annotations every
//! connector gets unless its own `spec.template.pod` says otherwise.
//!
//! Merging is field by field: a field the connector sets wins; labels, annotations and the
//! node selector are merged key by key (the connector's keys win); tolerations are the
//! connector's when it lists any, the default's otherwise.

use std::path::Path;

use ferry_crds::connector::PodTemplateSpec;

use crate::error::Error;

/// Reads the default template from a YAML file (the `spec.template.pod` format).
pub fn load(path: &Path) -> Result<PodTemplateSpec, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::InvalidSettings(format!(
            "cannot read the task pod template {}: {e}",
            path.display()
        ))
    })?;
    parse(&text).map_err(|e| {
        Error::InvalidSettings(format!(
            "the task pod template {} is not a pod template (the format of spec.template.pod): {e}",
            path.display()
        ))
    })
}

/// Parses a template; an empty document is the empty template.
pub fn parse(text: &str) -> Result<PodTemplateSpec, serde_yaml::Error> {
    if text.trim().is_empty() {
        return Ok(PodTemplateSpec::default());
    }
    serde_yaml::from_str(text)
}

/// The template of a connector's task pods: its own, completed by the default.
pub fn merged(default: &PodTemplateSpec, own: &PodTemplateSpec) -> PodTemplateSpec {
    let mut out = default.clone();
    let merge = |base: &mut std::collections::BTreeMap<String, String>,
                 own: &std::collections::BTreeMap<String, String>| {
        base.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    };
    merge(&mut out.labels, &own.labels);
    merge(&mut out.annotations, &own.annotations);
    merge(&mut out.node_selector, &own.node_selector);
    if !own.tolerations.is_empty() {
        out.tolerations = own.tolerations.clone();
    }
    if own.resources.is_some() {
        out.resources = own.resources.clone();
    }
    if own.affinity.is_some() {
        out.affinity = own.affinity.clone();
    }
    if own.service_account_name.is_some() {
        out.service_account_name = own.service_account_name.clone();
    }
    if own.priority_class_name.is_some() {
        out.priority_class_name = own.priority_class_name.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(yaml: &str) -> PodTemplateSpec {
        parse(yaml).expect("template parses")
    }

    #[test]
    fn the_connector_wins_field_by_field_and_key_by_key() {
        let default = template(
            r#"
nodeSelector: {pool: connectors, disk: hdd}
tolerations: [{key: dedicated, operator: Equal, value: connectors, effect: NoSchedule}]
resources: {requests: {cpu: 100m, memory: 128Mi}}
labels: {team: platform, cost-center: "42"}
annotations: {prometheus.io/scrape: "true"}
priorityClassName: connectors
"#,
        );
        let own = template(
            r#"
nodeSelector: {disk: ssd}
labels: {team: shop}
serviceAccountName: orders-reader
"#,
        );
        let m = merged(&default, &own);
        assert_eq!(m.node_selector["pool"], "connectors", "default key kept");
        assert_eq!(m.node_selector["disk"], "ssd", "connector's key wins");
        assert_eq!(m.labels["team"], "shop");
        assert_eq!(m.labels["cost-center"], "42");
        assert_eq!(m.annotations["prometheus.io/scrape"], "true");
        assert_eq!(
            m.tolerations, default.tolerations,
            "none of its own: the default's"
        );
        assert_eq!(m.resources, default.resources);
        assert_eq!(m.priority_class_name.as_deref(), Some("connectors"));
        assert_eq!(m.service_account_name.as_deref(), Some("orders-reader"));
    }

    #[test]
    fn a_connector_template_replaces_lists_and_objects_whole() {
        let default = template(
            "tolerations: [{key: a, operator: Exists}]\nresources: {limits: {memory: 1Gi}}",
        );
        let own = template(
            "tolerations: [{key: b, operator: Exists}]\nresources: {requests: {cpu: '1'}}",
        );
        let m = merged(&default, &own);
        assert_eq!(m.tolerations, own.tolerations);
        assert_eq!(
            m.resources, own.resources,
            "no mix of the two resource blocks"
        );
    }

    #[test]
    fn no_default_changes_nothing() {
        let own = template("labels: {team: shop}\naffinity: {}");
        assert_eq!(merged(&PodTemplateSpec::default(), &own), own);
        assert_eq!(parse("  \n").expect("empty"), PodTemplateSpec::default());
    }

    #[test]
    fn a_bad_template_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("ferry-template-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("template.yaml");
        std::fs::write(&file, "nodeSelectr: {a: b}\n").expect("write");
        let err = load(&file).expect_err("unknown field");
        let text = err.to_string();
        assert!(text.contains("template.yaml"), "{text}");
        assert!(text.contains("nodeSelectr"), "{text}");
        let missing = load(&dir.join("missing.yaml")).expect_err("missing file");
        assert!(missing.to_string().contains("cannot read"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
