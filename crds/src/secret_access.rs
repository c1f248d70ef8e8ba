//! Who may make Ferry use a Secret: only someone who may read it.
//!
//! A connector names Secrets (Kafka SASL and TLS keys, database passwords and URLs) and the
//! hosts they are sent to. The operator reads the named Secrets (with `rbac.readSecrets`) and
//! its task pods receive them through `secretKeyRef`, both with Ferry's own rights, not the
//! rights of the person who wrote the connector. Without a check, anyone allowed to create a
//! `KafkaConnector` could name a Secret they may not read and a server of their own, and
//! receive its value there.
//!
//! The check is the API server's own: a `ValidatingAdmissionPolicy` asks the authorizer, for
//! the user making the request, whether they may `get` each Secret the connector names, and
//! refuses the create or the change of `spec` otherwise, naming the field and the Secret.
//! Changes that leave `spec` alone (labels, finalizers, status) are not checked: they cannot
//! send a credential anywhere new.
//!
//! Every field that names a Secret is listed once, in [`SECRET_REFERENCES`]; a test walks the
//! generated CRD schema and fails when a Secret reference is missing from the list.

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::schema::cel_field;

/// Every field of a `KafkaConnector` that names a Secret, as a path from the resource's root
/// to the `{name, key}` object.
pub const SECRET_REFERENCES: &[&str] = &[
    "spec.kafka.tls.ca",
    "spec.kafka.tls.cert",
    "spec.kafka.tls.key",
    "spec.kafka.sasl.username.secretKeyRef",
    "spec.kafka.sasl.password.secretKeyRef",
    "spec.source.postgresCdc.password.secretKeyRef",
    "spec.sink.postgres.url.secretKeyRef",
    "spec.sink.postgres.password.secretKeyRef",
    "spec.sink.mysql.url.secretKeyRef",
    "spec.sink.mysql.password.secretKeyRef",
];

/// Name of the Helm template (and of the objects' suffix) that holds the policy.
pub const HELM_TEMPLATE: &str = "helm/ferry/templates/secret-access-policy.yaml";

/// Suffix of the policy's and the binding's names, after the release's full name.
pub const NAME_SUFFIX: &str = "secret-access";

/// The check of one reference: holds when `path` is not set or the requesting user may `get`
/// the Secret it names. One authorizer call per expression: a call is costly in CEL, and
/// the API server bounds the cost of each expression.
fn validation(path: &str) -> Validation {
    let mut access = String::from("object");
    let mut guards = Vec::new();
    for segment in path.split('.') {
        access = format!("{access}.{}", cel_field(segment));
        guards.push(format!("has({access})"));
    }
    let secret = format!("string({access}.name)");
    Validation {
        expression: format!(
            "!({}) ||\nauthorizer.group('').resource('secrets').namespace(request.namespace)\
             .name({secret}).check('get').allowed()",
            guards.join(" && ")
        ),
        message_expression: Some(format!(
            "'{path} names Secret \"' + {secret} + '\", which ' + request.userInfo.username + \
             ' may not read (get secrets in namespace ' + request.namespace + \
             '): Ferry uses a Secret only for someone who may read it'"
        )),
        message: Some(format!(
            "{path} names a Secret the requesting user may not read"
        )),
        reason: Some("Forbidden".to_owned()),
    }
}

/// The policy named `name`: a create of a connector, or a change of its `spec`, is refused
/// unless the requesting user may `get` every Secret the connector names.
pub fn policy(name: &str) -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".to_owned()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![crate::names::API_GROUP.to_owned()]),
                    api_versions: Some(vec!["*".to_owned()]),
                    operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                    resources: Some(vec![crate::names::PLURAL.to_owned()]),
                    ..NamedRuleWithOperations::default()
                }]),
                ..MatchResources::default()
            }),
            match_conditions: Some(vec![MatchCondition {
                name: "spec-is-new".to_owned(),
                expression: "request.operation == 'CREATE' || object.spec != oldObject.spec"
                    .to_owned(),
            }]),
            validations: Some(SECRET_REFERENCES.iter().map(|p| validation(p)).collect()),
            ..ValidatingAdmissionPolicySpec::default()
        }),
        status: None,
    }
}

/// The binding named `name` that enforces `policy`: in every namespace, or only in
/// `namespace`.
pub fn binding(
    name: &str,
    policy: &str,
    namespace: Option<&str>,
) -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: ValidatingAdmissionPolicyBindingSpec {
            policy_name: policy.to_owned(),
            validation_actions: vec!["Deny".to_owned()],
            match_resources: namespace.map(|namespace| MatchResources {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(
                        [(
                            "kubernetes.io/metadata.name".to_owned(),
                            namespace.to_owned(),
                        )]
                        .into(),
                    ),
                    ..LabelSelector::default()
                }),
                ..MatchResources::default()
            }),
            ..ValidatingAdmissionPolicyBindingSpec::default()
        },
    }
}

/// Placeholder name the template text replaces with the release's.
const PLACEHOLDER: &str = "ferry-placeholder-secret-access";

/// The Helm template: the policy and its binding for every namespace, named after the
/// release, with the chart's labels, on unless `admission.secretAccessPolicy` is false.
pub fn helm_template() -> Result<String, serde_yaml::Error> {
    let policy = serde_yaml::to_string(&policy(PLACEHOLDER))?;
    let binding = serde_yaml::to_string(&binding(PLACEHOLDER, PLACEHOLDER, None))?;
    let name = format!("{{{{ include \"ferry.fullname\" . }}}}-{NAME_SUFFIX}");
    let labels = "  labels:\n    {{- include \"ferry.labels\" . | nindent 4 }}\n";
    let with_helm = |yaml: String| {
        yaml.replacen(
            &format!("  name: {PLACEHOLDER}\n"),
            &format!("  name: {name}\n{labels}"),
            1,
        )
        .replace(
            &format!("policyName: {PLACEHOLDER}"),
            &format!("policyName: {name}"),
        )
    };
    // In namespace scope the binding checks the watched namespace only.
    let scoped = "spec:\n\
                  {{- if eq .Values.watch.scope \"namespace\" }}\n  \
                  matchResources:\n    \
                  namespaceSelector:\n      \
                  matchLabels:\n        \
                  kubernetes.io/metadata.name: {{ include \"ferry.watchNamespace\" . }}\n\
                  {{- end }}\n";
    let binding = with_helm(binding).replacen("spec:\n", scoped, 1);
    Ok(format!(
        "# Generated from ferry-crds (secret_access.rs) by `cargo run -p ferry-crds --bin crdgen -- --write`. Do not edit.\n\
         # Refuses a KafkaConnector that names a Secret its author may not read.\n\
         {{{{- if .Values.admission.secretAccessPolicy }}}}\n{}---\n{}{{{{- end }}}}\n",
        with_helm(policy),
        binding
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reference_is_guarded_segment_by_segment() {
        let check = validation("spec.kafka.tls.ca");
        assert_eq!(
            check.expression,
            "!(has(object.spec) && has(object.spec.kafka) && has(object.spec.kafka.tls) && \
             has(object.spec.kafka.tls.ca)) ||\nauthorizer.group('').resource('secrets')\
             .namespace(request.namespace).name(string(object.spec.kafka.tls.ca.name))\
             .check('get').allowed()"
        );
        assert!(check.message_expression.unwrap().starts_with(
            "'spec.kafka.tls.ca names Secret \"' + string(object.spec.kafka.tls.ca.name)"
        ));
        let policy = policy("p");
        let validations = policy.spec.unwrap().validations.unwrap();
        assert_eq!(validations.len(), SECRET_REFERENCES.len());
    }

    #[test]
    fn the_template_names_the_objects_after_the_release() {
        let template = helm_template().unwrap();
        assert!(!template.contains(PLACEHOLDER), "{template}");
        let name = "{{ include \"ferry.fullname\" . }}-secret-access";
        assert_eq!(template.matches(&format!("  name: {name}\n")).count(), 2);
        assert_eq!(
            template.matches(&format!("policyName: {name}\n")).count(),
            1
        );
        assert_eq!(template.matches("ferry.labels").count(), 2);
        assert_eq!(template.matches("ferry.watchNamespace").count(), 1);
    }
}
