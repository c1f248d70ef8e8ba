//! The objects a connector needs (pure): the task ConfigMap and one pod per task.

use std::collections::BTreeMap;

use ferry_crds::connector::PodTemplateSpec;
use ferry_crds::contract;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, Pod, PodSecurityContext,
    PodSpec, Probe, ProjectedVolumeSource, SeccompProfile, SecretKeySelector, SecretProjection,
    SecurityContext, Toleration, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::names::{self, *};
use crate::restart::Backoff;

/// Bumped whenever the shape of the task pods the operator builds changes, so that an
/// operator upgrade replaces the pods of every connector (one at a time).
pub const POD_TEMPLATE_REVISION: &str = "1";

/// Name of the volume holding the task ConfigMap.
const CONFIG_VOLUME: &str = "task-config";
/// Name of the scratch volume mounted at `/tmp`.
const TMP_VOLUME: &str = "tmp";
/// Name of the volume holding the Kafka TLS Secret keys.
const KAFKA_TLS_VOLUME: &str = "kafka-tls";

/// The run state the connector asks for (`spec.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Tasks run and move records.
    Running,
    /// Task pods are kept but move no records.
    Paused,
    /// No task pods run.
    Stopped,
}

impl RunState {
    /// Content of the task ConfigMap's `state` file. A stopped connector has no pods; its file
    /// says `Paused` so that a pod still shutting down moves nothing more.
    pub fn state_file(self) -> &'static str {
        match self {
            RunState::Running => "Running",
            RunState::Paused | RunState::Stopped => "Paused",
        }
    }
}

/// A reference to one key of a Secret in the connector's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretKey {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
}

/// The Kafka credentials a connector references.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KafkaSecrets {
    /// `spec.kafka.tls.ca`.
    pub tls_ca: Option<SecretKey>,
    /// `spec.kafka.tls.cert`.
    pub tls_cert: Option<SecretKey>,
    /// `spec.kafka.tls.key`.
    pub tls_key: Option<SecretKey>,
    /// `spec.kafka.sasl.username`.
    pub sasl_username: Option<SecretKey>,
    /// `spec.kafka.sasl.password`.
    pub sasl_password: Option<SecretKey>,
}

/// Everything the pure build steps need to know about a connector.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInputs {
    /// Connector name.
    pub name: String,
    /// Connector namespace.
    pub namespace: String,
    /// `metadata.generation` of the connector.
    pub generation: i64,
    /// Owner reference to the connector (controller, blocks owner deletion).
    pub owner: OwnerReference,
    /// The `connector.yaml` file of the task ConfigMap.
    pub connector_yaml: String,
    /// Runner image.
    pub image: String,
    /// Whether the connector is a source (its task count is part of the task configuration).
    pub is_source: bool,
    /// Tasks the connector should run while not stopped.
    pub tasks: i32,
    /// Requested run state.
    pub state: RunState,
    /// `spec.template.pod`.
    pub pod: PodTemplateSpec,
    /// Kafka credentials, by reference.
    pub kafka_secrets: KafkaSecrets,
    /// Env vars the plugin reads from Secrets (e.g. a database password): the variable's
    /// name ([`contract`]) and the Secret key.
    pub plugin_secrets: Vec<(String, SecretKey)>,
    /// Restart backoff.
    pub backoff: Backoff,
    /// `postgresCdc` sources: the replication slot the tasks read.
    pub replication_slot: Option<SlotIdentity>,
}

/// A replication slot, as the status names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotIdentity {
    /// The slot's name.
    pub name: String,
    /// Where it is: `host:port/database`.
    pub server: String,
}

impl TaskInputs {
    /// Tasks that should have a pod now: 0 when stopped.
    pub fn desired_tasks(&self) -> i32 {
        match self.state {
            RunState::Stopped => 0,
            RunState::Running | RunState::Paused => self.tasks.max(0),
        }
    }
}

/// Labels every object of a connector carries.
pub fn connector_labels(connector: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), RUNNER_APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), connector.to_string()),
        (LABEL_CONNECTOR.to_string(), connector.to_string()),
        (LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
    ])
}

/// Hash of a task's configuration: the connector YAML, the image, the pod template, the pod
/// shape revision, and — for sources, whose tasks split the input by index and count — the
/// task count. Not the run state (pausing never replaces a pod) and not a sink's task count
/// (its tasks share a consumer group, which rebalances cooperatively).
pub fn config_hash(inputs: &TaskInputs) -> String {
    let mut hasher = Sha256::new();
    let mut field = |name: &str, value: &str| {
        hasher.update(name.as_bytes());
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    };
    field("revision", POD_TEMPLATE_REVISION);
    field("connector.yaml", &inputs.connector_yaml);
    field("image", &inputs.image);
    field(
        "template",
        &serde_json::to_string(&inputs.pod).unwrap_or_default(),
    );
    field(
        "secrets",
        &serde_json::to_string(&inputs.kafka_secrets).unwrap_or_default(),
    );
    if inputs.is_source {
        field("tasks", &inputs.tasks.to_string());
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..8])
}

/// The task ConfigMap `<connector>-task-config`: `connector.yaml` and `state`.
pub fn config_map(inputs: &TaskInputs) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(task_config_map_name(&inputs.name)),
            namespace: Some(inputs.namespace.clone()),
            labels: Some(connector_labels(&inputs.name)),
            owner_references: Some(vec![inputs.owner.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (
                contract::CONFIG_FILE.to_string(),
                inputs.connector_yaml.clone(),
            ),
            (
                contract::STATE_FILE.to_string(),
                inputs.state.state_file().to_string(),
            ),
        ])),
        ..ConfigMap::default()
    }
}

/// The pod of task `index`. `restarts` is the task's consecutive restart count, recorded on
/// the pod so that the next failure continues the backoff.
pub fn task_pod(inputs: &TaskInputs, index: i32, hash: &str, restarts: i32) -> Pod {
    let mut labels = inputs.pod.labels.clone();
    labels.extend(connector_labels(&inputs.name));
    labels.insert(LABEL_TASK.to_string(), index.to_string());

    let mut annotations = inputs.pod.annotations.clone();
    annotations.insert(ANNOTATION_CONFIG_HASH.to_string(), hash.to_string());
    annotations.insert(
        ANNOTATION_GENERATION.to_string(),
        inputs.generation.to_string(),
    );
    annotations.insert(ANNOTATION_RESTARTS.to_string(), restarts.to_string());

    let service_account = inputs.pod.service_account_name.clone();
    Pod {
        metadata: ObjectMeta {
            name: Some(task_pod_name(&inputs.name, index)),
            namespace: Some(inputs.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![inputs.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_string()),
            automount_service_account_token: Some(service_account.is_some()),
            service_account_name: service_account,
            node_selector: non_empty(inputs.pod.node_selector.clone()),
            tolerations: Some(tolerations(&inputs.pod.tolerations)),
            affinity: inputs.pod.affinity.clone(),
            priority_class_name: inputs.pod.priority_class_name.clone(),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUNNER_UID),
                run_as_group: Some(RUNNER_UID),
                fs_group: Some(RUNNER_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![runner_container(inputs, index)],
            volumes: Some(volumes(inputs)),
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

fn runner_container(inputs: &TaskInputs, index: i32) -> Container {
    let mut mounts = vec![
        VolumeMount {
            name: CONFIG_VOLUME.to_string(),
            mount_path: contract::CONFIG_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: TMP_VOLUME.to_string(),
            mount_path: "/tmp".to_string(),
            ..VolumeMount::default()
        },
    ];
    if has_tls(&inputs.kafka_secrets) {
        mounts.push(VolumeMount {
            name: KAFKA_TLS_VOLUME.to_string(),
            mount_path: contract::KAFKA_TLS_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(names::ADMIN_PORT_NAME.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    Container {
        name: RUNNER_CONTAINER.to_string(),
        image: Some(inputs.image.clone()),
        args: Some(vec![
            "run".to_string(),
            "-f".to_string(),
            format!("{}/{}", contract::CONFIG_DIR, contract::CONFIG_FILE),
        ]),
        env: Some(env(inputs, index)),
        ports: Some(vec![ContainerPort {
            name: Some(names::ADMIN_PORT_NAME.to_string()),
            container_port: i32::from(contract::ADMIN_PORT),
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe("/readyz", 2, 3)),
        liveness_probe: Some(probe("/healthz", 10, 6)),
        resources: inputs.pod.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUNNER_UID),
            run_as_group: Some(RUNNER_UID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

fn env(inputs: &TaskInputs, index: i32) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar {
        name: name.to_string(),
        value: Some(value),
        value_from: None,
    };
    let field = |name: &str, path: &str| EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
    };
    let secret = |name: &str, key: &SecretKey| EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key.name.clone(),
                key: key.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    };
    // POD_IP comes first: FERRY_ADMIN_ADDR refers to it with $(POD_IP).
    let mut env = vec![
        field(contract::ENV_POD_IP, "status.podIP"),
        field(contract::ENV_POD_NAME, "metadata.name"),
        value(contract::ENV_TASK_INDEX, index.to_string()),
        value(contract::ENV_TASK_COUNT, inputs.tasks.to_string()),
        value(
            contract::ENV_ADMIN_ADDR,
            format!("$({}):{}", contract::ENV_POD_IP, contract::ADMIN_PORT),
        ),
    ];
    if let Some(key) = &inputs.kafka_secrets.sasl_username {
        env.push(secret(contract::ENV_KAFKA_SASL_USERNAME, key));
    }
    if let Some(key) = &inputs.kafka_secrets.sasl_password {
        env.push(secret(contract::ENV_KAFKA_SASL_PASSWORD, key));
    }
    for (name, key) in &inputs.plugin_secrets {
        env.push(secret(name, key));
    }
    env
}

/// Taints of a node that stopped answering (or is not ready), which evict a task pod after
/// [`NODE_LOST_TOLERATION_SECONDS`] unless the template tolerates them itself.
const NODE_LOST_TAINTS: [&str; 2] = [
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/not-ready",
];

/// How long a task pod stays bound to a node that stopped answering (Kubernetes' default is
/// 300 s): a task is replaced about this long after the node is marked unreachable.
pub const NODE_LOST_TOLERATION_SECONDS: i64 = 30;

/// The template's tolerations, plus [`NODE_LOST_TAINTS`] for
/// [`NODE_LOST_TOLERATION_SECONDS`] where the template says nothing of them.
fn tolerations(template: &[Toleration]) -> Vec<Toleration> {
    let mut tolerations = template.to_vec();
    for taint in NODE_LOST_TAINTS {
        let mentioned = template
            .iter()
            .any(|t| t.key.as_deref() == Some(taint) || t.key.is_none());
        if !mentioned {
            tolerations.push(Toleration {
                key: Some(taint.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some("NoExecute".to_owned()),
                toleration_seconds: Some(NODE_LOST_TOLERATION_SECONDS),
                ..Toleration::default()
            });
        }
    }
    tolerations
}

fn has_tls(secrets: &KafkaSecrets) -> bool {
    secrets.tls_ca.is_some() || secrets.tls_cert.is_some() || secrets.tls_key.is_some()
}

fn volumes(inputs: &TaskInputs) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: CONFIG_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: task_config_map_name(&inputs.name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: TMP_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let secrets = &inputs.kafka_secrets;
    if has_tls(secrets) {
        let sources = [
            (&secrets.tls_ca, contract::KAFKA_TLS_CA_FILE),
            (&secrets.tls_cert, contract::KAFKA_TLS_CERT_FILE),
            (&secrets.tls_key, contract::KAFKA_TLS_KEY_FILE),
        ]
        .into_iter()
        .filter_map(|(key, file)| {
            key.as_ref().map(|key| VolumeProjection {
                secret: Some(SecretProjection {
                    name: key.name.clone(),
                    items: Some(vec![KeyToPath {
                        key: key.key.clone(),
                        path: file.to_string(),
                        mode: Some(0o400),
                        ..KeyToPath::default()
                    }]),
                    optional: Some(false),
                }),
                ..VolumeProjection::default()
            })
        })
        .collect();
        volumes.push(Volume {
            name: KAFKA_TLS_VOLUME.to_string(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                default_mode: Some(0o400),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn task_pod_follows_the_contract() {
        let c = fixtures::sink("  tasks: 3\n  kafka: {bootstrapServers: 'kafka:9092', sasl: {mechanism: SCRAM-SHA-512, username: {secretKeyRef: {name: kafka-user, key: user}}, password: {secretKeyRef: {name: kafka-user, key: password}}}}");
        let inputs = fixtures::inputs(&c);
        let pod = task_pod(&inputs, 2, "h1", 4);
        let yaml = serde_yaml::to_string(&pod).unwrap();
        let v: serde_json::Value = serde_json::to_value(&pod).unwrap();
        let meta = &v["metadata"];
        assert_eq!(meta["name"], "orders-task-2");
        assert_eq!(meta["namespace"], "shop");
        assert_eq!(meta["labels"]["app.kubernetes.io/name"], "ferry-runner");
        assert_eq!(meta["labels"]["app.kubernetes.io/instance"], "orders");
        assert_eq!(meta["labels"]["ferry.rs/connector"], "orders");
        assert_eq!(meta["labels"]["ferry.rs/task"], "2");
        assert_eq!(meta["annotations"]["ferry.rs/config-hash"], "h1");
        assert_eq!(meta["annotations"]["ferry.rs/restarts"], "4");
        assert_eq!(meta["annotations"]["ferry.rs/generation"], "1");
        assert_eq!(meta["ownerReferences"][0]["kind"], "KafkaConnector");
        assert_eq!(meta["ownerReferences"][0]["controller"], true);
        let spec = &v["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        assert_eq!(spec["securityContext"]["runAsUser"], 65532);
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c0 = &spec["containers"][0];
        assert_eq!(c0["image"], "ferry/runner:test");
        assert_eq!(
            c0["args"],
            serde_json::json!(["run", "-f", "/etc/ferry/task/connector.yaml"])
        );
        assert_eq!(c0["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c0["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(
            c0["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"])
        );
        assert_eq!(c0["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert_eq!(c0["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c0["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c0["ports"][0]["containerPort"], 8080);
        let env: BTreeMap<String, serde_json::Value> = c0["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
            .collect();
        assert_eq!(env["FERRY_TASK_INDEX"]["value"], "2");
        assert_eq!(env["FERRY_TASK_COUNT"]["value"], "3");
        assert_eq!(env["FERRY_ADMIN_ADDR"]["value"], "$(POD_IP):8080");
        assert_eq!(
            env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"],
            "status.podIP"
        );
        assert_eq!(
            env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
        assert_eq!(
            env["FERRY_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"],
            serde_json::json!({"name": "kafka-user", "key": "password", "optional": false})
        );
        // POD_IP must be defined before FERRY_ADMIN_ADDR refers to it.
        let names: Vec<&str> = c0["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(
            names.iter().position(|n| *n == "POD_IP")
                < names.iter().position(|n| *n == "FERRY_ADMIN_ADDR")
        );
        let mounts: Vec<&str> = c0["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert_eq!(mounts, vec!["/etc/ferry/task", "/tmp"]);
        assert_eq!(
            spec["volumes"][0]["configMap"]["name"],
            "orders-task-config"
        );
        assert!(spec["volumes"][1]["emptyDir"].is_object());
        assert!(!yaml.contains("kafka-tls"));
    }

    #[test]
    fn template_and_tls_reach_the_pod_but_secrets_stay_references() {
        let c = fixtures::sink(
            "  image: ferry/runner:pinned\n  kafka: {bootstrapServers: 'k:9093', tls: {ca: {name: kafka-ca, key: ca.crt}, cert: {name: me, key: tls.crt}, key: {name: me, key: tls.key}}}\n  template:\n    pod:\n      serviceAccountName: reader\n      nodeSelector: {disk: ssd}\n      labels: {team: shop, ferry.rs/connector: hijack}\n      annotations: {owner: alice}\n      resources: {limits: {memory: 256Mi}}\n      tolerations: [{key: dedicated, operator: Exists}]",
        );
        let inputs = fixtures::inputs(&c);
        let v = serde_json::to_value(task_pod(&inputs, 0, "h", 0)).unwrap();
        assert_eq!(v["metadata"]["labels"]["team"], "shop");
        assert_eq!(v["metadata"]["labels"]["ferry.rs/connector"], "orders");
        assert_eq!(v["metadata"]["annotations"]["owner"], "alice");
        assert_eq!(v["spec"]["serviceAccountName"], "reader");
        assert_eq!(v["spec"]["automountServiceAccountToken"], true);
        assert_eq!(v["spec"]["nodeSelector"]["disk"], "ssd");
        assert_eq!(v["spec"]["tolerations"][0]["key"], "dedicated");
        // A node that stops answering evicts the task after 30 s, not Kubernetes' 300 s.
        for (i, taint) in NODE_LOST_TAINTS.iter().enumerate() {
            let toleration = &v["spec"]["tolerations"][i + 1];
            assert_eq!(toleration["key"], *taint);
            assert_eq!(toleration["effect"], "NoExecute");
            assert_eq!(
                toleration["tolerationSeconds"],
                NODE_LOST_TOLERATION_SECONDS
            );
        }
        let c0 = &v["spec"]["containers"][0];
        assert_eq!(c0["image"], "ferry/runner:pinned");
        assert_eq!(c0["resources"]["limits"]["memory"], "256Mi");
        assert_eq!(c0["volumeMounts"][2]["mountPath"], "/etc/ferry/kafka-tls");
        let sources = &v["spec"]["volumes"][2]["projected"]["sources"];
        assert_eq!(sources[0]["secret"]["name"], "kafka-ca");
        assert_eq!(sources[0]["secret"]["items"][0]["path"], "ca.crt");
        assert_eq!(
            sources[2]["secret"]["items"][0],
            serde_json::json!({"key": "tls.key", "path": "tls.key", "mode": 256})
        );
        let cm = config_map(&inputs);
        let yaml = &cm.data.as_ref().unwrap()["connector.yaml"];
        assert!(yaml.contains("name: kafka-ca"));
        assert!(!yaml.contains("BEGIN"));
    }

    #[test]
    fn database_sink_secrets_become_secret_key_ref_env_vars() {
        let mut c = fixtures::sink("");
        c.spec.sink = Some(
            serde_yaml::from_str(
                "{topics: [t], mysql: {url: {secretKeyRef: {name: db, key: url}}}}",
            )
            .unwrap(),
        );
        let pod = task_pod(&fixtures::inputs(&c), 0, "h1", 1);
        let v: serde_json::Value = serde_json::to_value(&pod).unwrap();
        let env = v["spec"]["containers"][0]["env"].as_array().unwrap();
        let url = env
            .iter()
            .find(|e| e["name"] == "FERRY_SINK_DATABASE_URL")
            .expect("the URL variable");
        assert_eq!(
            url["valueFrom"]["secretKeyRef"],
            serde_json::json!({"name": "db", "key": "url", "optional": false})
        );
        assert!(url.get("value").is_none(), "a reference, never the value");
        assert!(!env
            .iter()
            .any(|e| e["name"] == "FERRY_SINK_DATABASE_PASSWORD"));
    }

    #[test]
    fn config_map_holds_the_spec_without_tasks_autoscaling_and_state() {
        let c = fixtures::sink("  tasks: 2\n  state: Paused\n  autoscaling: {minTasks: 1, maxTasks: 4, lagPerTask: 100}");
        let inputs = fixtures::inputs(&c);
        let cm = config_map(&inputs);
        assert_eq!(cm.metadata.name.as_deref(), Some("orders-task-config"));
        let data = cm.data.unwrap();
        assert_eq!(data["state"], "Paused");
        let doc: serde_yaml::Value = serde_yaml::from_str(&data["connector.yaml"]).unwrap();
        assert_eq!(doc["apiVersion"], "ferry.rs/v1alpha1");
        assert_eq!(doc["kind"], "KafkaConnector");
        assert_eq!(doc["metadata"]["name"], "orders");
        assert_eq!(doc["metadata"]["namespace"], "shop");
        assert_eq!(doc["spec"]["sink"]["topics"][0], "orders");
        for absent in ["tasks", "state", "autoscaling"] {
            assert!(
                doc["spec"].get(absent).is_none(),
                "{absent} must not be in connector.yaml"
            );
        }
        // The runner reads it back as a connector.
        let back: ferry_crds::KafkaConnector =
            serde_yaml::from_str(&data["connector.yaml"]).unwrap();
        assert!(back.spec.is_sink());
        assert_eq!(
            config_map(&fixtures::inputs(&fixtures::sink("  state: Stopped")))
                .data
                .unwrap()["state"],
            "Paused"
        );
    }

    #[test]
    fn hash_ignores_state_and_sink_task_count_but_not_source_task_count() {
        let h = |c: &ferry_crds::KafkaConnector| config_hash(&fixtures::inputs(c));
        let base = h(&fixtures::sink("  tasks: 1"));
        assert_eq!(base, h(&fixtures::sink("  tasks: 5")));
        assert_eq!(base, h(&fixtures::sink("  tasks: 1\n  state: Paused")));
        assert_ne!(
            base,
            h(&fixtures::sink("  tasks: 1\n  image: ferry/runner:other"))
        );
        assert_ne!(
            base,
            h(&fixtures::sink(
                "  tasks: 1\n  template: {pod: {labels: {a: b}}}"
            ))
        );
        assert_ne!(
            base,
            h(&fixtures::sink("  tasks: 1\n  errors: {tolerance: All}"))
        );
        assert_ne!(
            h(&fixtures::source("  tasks: 1")),
            h(&fixtures::source("  tasks: 2"))
        );
        assert_eq!(
            h(&fixtures::source("  tasks: 2")),
            h(&fixtures::source("  tasks: 2\n  state: Paused"))
        );
        assert_eq!(base.len(), 16);
    }

    #[test]
    fn plugin_parallelism_caps_the_task_count() {
        let c = fixtures::connector(
            "metadata: {name: f, namespace: n}\nspec: {kafka: {bootstrapServers: k}, tasks: 4, source: {file: {path: /in, topic: t}}}",
        );
        assert_eq!(fixtures::inputs(&c).desired_tasks(), 1);
        assert_eq!(
            fixtures::inputs(&fixtures::sink("  tasks: 4\n  state: Stopped")).desired_tasks(),
            0
        );
    }

    #[test]
    fn a_template_that_tolerates_the_node_lost_taints_keeps_its_own_seconds() {
        let own: Vec<Toleration> = serde_yaml::from_str(
            "[{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 600}]",
        )
        .unwrap();
        let all = tolerations(&own);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].toleration_seconds, Some(600));
        assert_eq!(all[1].key.as_deref(), Some("node.kubernetes.io/not-ready"));
        let everything: Vec<Toleration> = serde_yaml::from_str("[{operator: Exists}]").unwrap();
        assert_eq!(tolerations(&everything).len(), 1);
    }
}
