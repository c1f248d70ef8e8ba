//! The objects a connector needs (pure): the task ConfigMap and one pod per task.

use std::collections::BTreeMap;

use ferry_crds::connector::PodTemplateSpec;
use ferry_crds::contract;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, Pod, PodSecurityContext,
    PodSpec, Probe, ProjectedVolumeSource, SeccompProfile, SecretKeySelector, SecretProjection,
    SecurityContext, Volume, VolumeMount, VolumeProjection,
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
    /// Restart backoff.
    pub backoff: Backoff,
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
            tolerations: (!inputs.pod.tolerations.is_empty())
                .then(|| inputs.pod.tolerations.clone()),
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
        readiness_probe: Some(probe("/readyz", 5, 3)),
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
    env
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
