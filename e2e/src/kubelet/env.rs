//! Container environment and command line, resolved as the kubelet does: a clean base
//! environment, `envFrom`, `env` with `valueFrom`, `$(VAR)` expansion, and the argv built
//! from the image entrypoint, `command` and `args`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ObjectFieldSelector, Pod, ResourceFieldSelector, Secret,
};

/// `PATH` of every container (the images are local executables of this host).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container's environment could not be built (reported as
/// `CreateContainerConfigError`, like the kubelet).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    /// A referenced ConfigMap or Secret does not exist and the reference is not optional.
    #[error("{kind} \"{name}\" not found (referenced by {field})")]
    ObjectNotFound {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The referencing field, e.g. `env[DB_URL].valueFrom.secretKeyRef`.
        field: String,
    },
    /// A referenced key is missing and the reference is not optional.
    #[error("couldn't find key {key} in {kind} {namespace}/{name} (referenced by {field})")]
    KeyNotFound {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// The object's namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// The missing key.
        key: String,
        /// The referencing field.
        field: String,
    },
    /// A `fieldRef` or `resourceFieldRef` this kubelet does not support.
    #[error("unsupported {field}: {path:?}")]
    Unsupported {
        /// The referencing field.
        field: String,
        /// The unsupported path or resource.
        path: String,
    },
    /// A quantity that cannot be parsed.
    #[error("invalid quantity {value:?} in {field}")]
    InvalidQuantity {
        /// The referencing field.
        field: String,
        /// The quantity.
        value: String,
    },
}

/// ConfigMaps and Secrets of the pod's namespace, by name.
pub trait ObjectLookup {
    /// The ConfigMap `name`, if it exists.
    fn config_map(&self, name: &str) -> Option<ConfigMap>;
    /// The Secret `name`, if it exists.
    fn secret(&self, name: &str) -> Option<Secret>;
}

/// What the downward API exposes about the pod besides its spec and metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRuntimeInfo {
    /// The pod's address.
    pub pod_ip: String,
    /// The node's address.
    pub host_ip: String,
    /// Node allocatable CPU in cores (the default for unset CPU limits).
    pub node_cpu_cores: u64,
    /// Node allocatable memory in bytes (the default for unset memory limits).
    pub node_memory_bytes: u64,
}

/// The API server as seen from containers (`KUBERNETES_SERVICE_HOST`/`PORT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiServerAddress {
    /// Host or IP.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// The base environment of every container, before `envFrom` and `env`.
pub fn base_env(pod_name: &str, api: &ApiServerAddress) -> Vec<(String, String)> {
    let port = api.port.to_string();
    vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), "/".into()),
        ("HOSTNAME".into(), pod_name.into()),
        ("KUBERNETES_SERVICE_HOST".into(), api.host.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()),
        (
            "KUBERNETES_PORT".into(),
            format!("tcp://{}:{port}", api.host),
        ),
    ]
}

/// Builds the container's full environment, in the order the kubelet defines: `base`, then
/// `envFrom` sources, then `env` entries (each may use `$(VAR)` of what precedes it).
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    info: &PodRuntimeInfo,
    base: Vec<(String, String)>,
    objects: &dyn ObjectLookup,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = EnvMap::from(base);
    for (i, source) in container.env_from.iter().flatten().enumerate() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(cm_ref) = &source.config_map_ref {
            let field = format!("envFrom[{i}].configMapRef");
            match objects.config_map(&cm_ref.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        if is_env_name(&format!("{prefix}{k}")) {
                            env.set(format!("{prefix}{k}"), v.clone());
                        }
                    }
                }
                None if cm_ref.optional == Some(true) => {}
                None => {
                    return Err(EnvError::ObjectNotFound {
                        kind: "configmap",
                        name: cm_ref.name.clone(),
                        field,
                    })
                }
            }
        }
        if let Some(secret_ref) = &source.secret_ref {
            let field = format!("envFrom[{i}].secretRef");
            match objects.secret(&secret_ref.name) {
                Some(secret) => {
                    for (k, v) in secret.data.iter().flatten() {
                        if is_env_name(&format!("{prefix}{k}")) {
                            env.set(
                                format!("{prefix}{k}"),
                                String::from_utf8_lossy(&v.0).into_owned(),
                            );
                        }
                    }
                }
                None if secret_ref.optional == Some(true) => {}
                None => {
                    return Err(EnvError::ObjectNotFound {
                        kind: "secret",
                        name: secret_ref.name.clone(),
                        field,
                    })
                }
            }
        }
    }
    for var in container.env.iter().flatten() {
        let field = format!("env[{}].valueFrom", var.name);
        if let Some(value) = &var.value {
            let expanded = expand(value, |name| env.get(name).map(str::to_string));
            env.set(var.name.clone(), expanded);
            continue;
        }
        let Some(from) = &var.value_from else {
            env.set(var.name.clone(), String::new());
            continue;
        };
        let value = if let Some(key_ref) = &from.config_map_key_ref {
            let optional = key_ref.optional == Some(true);
            match objects.config_map(&key_ref.name) {
                Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&key_ref.key)) {
                    Some(v) => Some(v.clone()),
                    None if optional => None,
                    None => {
                        return Err(EnvError::KeyNotFound {
                            kind: "ConfigMap",
                            namespace,
                            name: key_ref.name.clone(),
                            key: key_ref.key.clone(),
                            field: format!("{field}.configMapKeyRef"),
                        })
                    }
                },
                None if optional => None,
                None => {
                    return Err(EnvError::ObjectNotFound {
                        kind: "configmap",
                        name: key_ref.name.clone(),
                        field: format!("{field}.configMapKeyRef"),
                    })
                }
            }
        } else if let Some(key_ref) = &from.secret_key_ref {
            let optional = key_ref.optional == Some(true);
            match objects.secret(&key_ref.name) {
                Some(secret) => match secret.data.as_ref().and_then(|d| d.get(&key_ref.key)) {
                    Some(v) => Some(String::from_utf8_lossy(&v.0).into_owned()),
                    None if optional => None,
                    None => {
                        return Err(EnvError::KeyNotFound {
                            kind: "Secret",
                            namespace,
                            name: key_ref.name.clone(),
                            key: key_ref.key.clone(),
                            field: format!("{field}.secretKeyRef"),
                        })
                    }
                },
                None if optional => None,
                None => {
                    return Err(EnvError::ObjectNotFound {
                        kind: "secret",
                        name: key_ref.name.clone(),
                        field: format!("{field}.secretKeyRef"),
                    })
                }
            }
        } else if let Some(field_ref) = &from.field_ref {
            Some(field_value(
                pod,
                info,
                field_ref,
                &format!("{field}.fieldRef"),
            )?)
        } else if let Some(resource_ref) = &from.resource_field_ref {
            Some(resource_value(
                pod,
                container,
                info,
                resource_ref,
                &format!("{field}.resourceFieldRef"),
            )?)
        } else {
            Some(String::new())
        };
        // An optional reference to a missing key leaves the variable unset, as in Kubernetes.
        if let Some(value) = value {
            env.set(var.name.clone(), value);
        }
    }
    Ok(env.into_vec())
}

/// The value of a downward-API `fieldRef`.
pub fn field_value(
    pod: &Pod,
    info: &PodRuntimeInfo,
    selector: &ObjectFieldSelector,
    field: &str,
) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let path = selector.field_path.as_str();
    let map_entry = |map: &Option<BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" => info.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => info.host_ip.clone(),
        _ => {
            if let Some(v) = map_entry(&meta.labels, "metadata.labels['") {
                v
            } else if let Some(v) = map_entry(&meta.annotations, "metadata.annotations['") {
                v
            } else {
                return Err(EnvError::Unsupported {
                    field: field.to_string(),
                    path: path.to_string(),
                });
            }
        }
    };
    Ok(value)
}

/// `k="v"` lines, sorted, as the downward API renders labels and annotations.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a `resourceFieldRef` (limits fall back to node allocatable, as in Kubernetes).
pub fn resource_value(
    pod: &Pod,
    container: &Container,
    info: &PodRuntimeInfo,
    selector: &ResourceFieldSelector,
    field: &str,
) -> Result<String, EnvError> {
    let target = match &selector.container_name {
        Some(name) if !name.is_empty() => pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| &c.name == name))
            .unwrap_or(container),
        _ => container,
    };
    let resources = target.resources.as_ref();
    let (kind, resource) =
        selector
            .resource
            .split_once('.')
            .ok_or_else(|| EnvError::Unsupported {
                field: field.to_string(),
                path: selector.resource.clone(),
            })?;
    let quantity = |q: &str| {
        parse_quantity(q).ok_or_else(|| EnvError::InvalidQuantity {
            field: field.to_string(),
            value: q.to_string(),
        })
    };
    let limit = resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get(resource));
    let request = resources
        .and_then(|r| r.requests.as_ref())
        .and_then(|l| l.get(resource));
    let node_default = match resource {
        "cpu" => info.node_cpu_cores as f64,
        "memory" | "ephemeral-storage" => info.node_memory_bytes as f64,
        _ => {
            return Err(EnvError::Unsupported {
                field: field.to_string(),
                path: selector.resource.clone(),
            })
        }
    };
    let value = match kind {
        "limits" => match limit {
            Some(q) => quantity(&q.0)?,
            None => node_default,
        },
        "requests" => match request.or(limit) {
            Some(q) => quantity(&q.0)?,
            None if resource == "cpu" => 0.0,
            None => 0.0,
        },
        _ => {
            return Err(EnvError::Unsupported {
                field: field.to_string(),
                path: selector.resource.clone(),
            })
        }
    };
    let divisor = match &selector.divisor {
        Some(d) => quantity(&d.0)?,
        None => 1.0,
    };
    let divisor = if divisor <= 0.0 { 1.0 } else { divisor };
    let result = (value / divisor).ceil();
    // CPU requests of 0 still report at least 1 unit of the divisor, like Kubernetes.
    let result = if resource == "cpu" && kind == "requests" && result < 1.0 {
        1.0
    } else {
        result
    };
    Ok(format!("{}", result as u64))
}

/// Parses a Kubernetes quantity (`500m`, `2`, `1.5`, `128Mi`, `1G`, `1e3`) into base units.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    for (suffix, factor) in [("P", 1e15), ("E", 1e18)] {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// True for names Kubernetes accepts as environment variable names.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_graphic() && c != '=')
}

/// Expands `$(VAR)` references with `lookup`, exactly like Kubernetes: `$$` is a literal `$`,
/// unknown references and unterminated `$(` are kept as written.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut checkpoint = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            out.push_str(&input[checkpoint..i]);
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                }
                b'(' => match input[i + 2..].find(')') {
                    Some(close) => {
                        let name = &input[i + 2..i + 2 + close];
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                    }
                    None => {
                        out.push_str(&input[i..]);
                        i = bytes.len();
                    }
                },
                _ => {
                    // `$x`: kept as written.
                    out.push('$');
                    i += 1;
                }
            }
            checkpoint = i;
        } else {
            i += 1;
        }
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
}

/// The process to start for a container: the expanded argv (`argv[0]` as the user wrote it)
/// and the executable actually run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// The executable: absolute, resolved on the container's `PATH` when needed.
    pub program: PathBuf,
    /// All arguments including `argv[0]`.
    pub argv: Vec<String>,
}

/// Why a command line cannot be built (`StartError`, exit code 128 in Kubernetes).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// Neither a `command` nor an image entrypoint.
    #[error("no command specified and the image has no entrypoint")]
    NoCommand,
    /// `command[0]` was not found on the container's `PATH`.
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
}

/// Builds the argv from the image entrypoint (the mapped executable), `command` and `args`,
/// with `$(VAR)` expanded from the container's environment; `command` replaces the
/// entrypoint and `args` are appended.
pub fn command_line(
    entrypoint: &Path,
    container: &Container,
    env: &[(String, String)],
    is_executable: impl Fn(&Path) -> bool,
) -> Result<CommandLine, CommandError> {
    let env_map: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| env_map.get(name).map(|v| v.to_string());
    let command: Vec<String> = container
        .command
        .iter()
        .flatten()
        .map(|c| expand(c, lookup))
        .collect();
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|a| expand(a, lookup))
        .collect();
    let mut argv = if command.is_empty() {
        vec![entrypoint.to_string_lossy().into_owned()]
    } else {
        command
    };
    argv.extend(args);
    let first = argv.first().cloned().ok_or(CommandError::NoCommand)?;
    if first.is_empty() {
        return Err(CommandError::NoCommand);
    }
    let program = if first.contains('/') {
        PathBuf::from(&first)
    } else {
        let path = env_map.get("PATH").copied().unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| Path::new(dir).join(&first))
            .find(|candidate| is_executable(candidate))
            .ok_or(CommandError::NotFound(first))?
    };
    Ok(CommandLine { program, argv })
}

/// An ordered environment where a later `set` of the same name replaces the value in place.
struct EnvMap {
    vars: Vec<(String, String)>,
}

impl From<Vec<(String, String)>> for EnvMap {
    fn from(vars: Vec<(String, String)>) -> Self {
        let mut map = EnvMap { vars: Vec::new() };
        for (k, v) in vars {
            map.set(k, v);
        }
        map
    }
}

impl EnvMap {
    fn set(&mut self, name: String, value: String) {
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(entry) => entry.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn into_vec(self) -> Vec<(String, String)> {
        self.vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Objects {
        config_maps: HashMap<String, ConfigMap>,
        secrets: HashMap<String, Secret>,
    }

    impl ObjectLookup for Objects {
        fn config_map(&self, name: &str) -> Option<ConfigMap> {
            self.config_maps.get(name).cloned()
        }
        fn secret(&self, name: &str) -> Option<Secret> {
            self.secrets.get(name).cloned()
        }
    }

    fn objects() -> Objects {
        let cm: ConfigMap = serde_yaml::from_str(
            "metadata: {name: settings}\ndata: {LEVEL: debug, mode: fast, 'bad-key!': x, '1ST': y}\n",
        )
        .expect("configmap");
        let secret: Secret = serde_yaml::from_str(
            "metadata: {name: creds}\ndata: {password: aHVudGVyMg==}\n", // "hunter2"
        )
        .expect("secret");
        Objects {
            config_maps: [("settings".to_string(), cm)].into(),
            secrets: [("creds".to_string(), secret)].into(),
        }
    }

    fn pod() -> Pod {
        serde_yaml::from_str(
            r#"
metadata:
  name: web-0
  namespace: shop
  uid: 1234-abcd
  labels: {app: web, tier: front}
  annotations: {note: hello}
spec:
  nodeName: ferry-local
  serviceAccountName: robot
  containers:
  - name: main
    image: ferry/test-shell
    resources: {limits: {memory: 64Mi}, requests: {cpu: 250m}}
"#,
        )
        .expect("pod")
    }

    fn info() -> PodRuntimeInfo {
        PodRuntimeInfo {
            pod_ip: "127.0.1.7".into(),
            host_ip: "127.0.0.1".into(),
            node_cpu_cores: 2,
            node_memory_bytes: 8 << 30,
        }
    }

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).expect("container")
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let lookup = |name: &str| match name {
            "A" => Some("1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand("x$(A)y", lookup), "x1y");
        assert_eq!(expand("$(A)$(A)", lookup), "11");
        assert_eq!(expand("$$(A)", lookup), "$(A)");
        assert_eq!(expand("$(MISSING)", lookup), "$(MISSING)");
        assert_eq!(expand("[$(EMPTY)]", lookup), "[]");
        assert_eq!(expand("$(A", lookup), "$(A");
        assert_eq!(expand("$A $", lookup), "$A $");
        assert_eq!(expand("café $(A)", lookup), "café 1");
    }

    #[test]
    fn env_sources_in_kubernetes_order() {
        let c = container(
            r#"
name: main
image: ferry/test-shell
resources: {limits: {memory: 64Mi}, requests: {cpu: 250m}}
envFrom:
- configMapRef: {name: settings}
  prefix: CFG_
- secretRef: {name: missing, optional: true}
env:
- {name: CFG_LEVEL, value: info}
- {name: GREETING, value: "level=$(CFG_LEVEL) host=$(HOSTNAME) $$(CFG_LEVEL)"}
- name: PASSWORD
  valueFrom: {secretKeyRef: {name: creds, key: password}}
- name: OPTIONAL
  valueFrom: {configMapKeyRef: {name: settings, key: nope, optional: true}}
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
- name: APP
  valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
- name: SA
  valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}
- name: MEM_MI
  valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
- name: CPU_LIMIT
  valueFrom: {resourceFieldRef: {resource: limits.cpu}}
- name: CPU_REQ_M
  valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}
"#,
        );
        let api = ApiServerAddress {
            host: "127.0.0.1".into(),
            port: 6443,
        };
        let env =
            resolve_env(&pod(), &c, &info(), base_env("web-0", &api), &objects()).expect("env");
        assert_eq!(get(&env, "CFG_LEVEL"), Some("info"));
        assert_eq!(get(&env, "CFG_mode"), Some("fast"));
        assert_eq!(
            get(&env, "CFG_bad-key!"),
            Some("x"),
            "kubelet accepts any printable name"
        );
        assert_eq!(
            get(&env, "GREETING"),
            Some("level=info host=web-0 $(CFG_LEVEL)")
        );
        assert_eq!(get(&env, "PASSWORD"), Some("hunter2"));
        assert_eq!(get(&env, "OPTIONAL"), None);
        assert_eq!(get(&env, "POD_IP"), Some("127.0.1.7"));
        assert_eq!(get(&env, "APP"), Some("web"));
        assert_eq!(get(&env, "SA"), Some("robot"));
        assert_eq!(get(&env, "MEM_MI"), Some("64"));
        assert_eq!(get(&env, "CPU_LIMIT"), Some("2"));
        assert_eq!(get(&env, "CPU_REQ_M"), Some("250"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("127.0.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT"), Some("6443"));
        assert_eq!(get(&env, "HOME"), Some("/"));
        assert_eq!(
            get(&env, "KUBECONFIG"),
            None,
            "the kubelet's own env never leaks"
        );
        // The first occurrence keeps its position when overridden.
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&names[..3], &["PATH", "HOME", "HOSTNAME"]);
    }

    #[test]
    fn missing_references_name_the_field() {
        let c = container(
            "name: main\nimage: x\nenv:\n- name: DB\n  valueFrom: {secretKeyRef: {name: creds, key: url}}\n",
        );
        let err = resolve_env(&pod(), &c, &info(), Vec::new(), &objects()).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("couldn't find key url in Secret shop/creds (referenced by env[DB].valueFrom.secretKeyRef)")
        );
        let c = container("name: main\nimage: x\nenvFrom:\n- configMapRef: {name: nope}\n");
        let err = resolve_env(&pod(), &c, &info(), Vec::new(), &objects()).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("configmap \"nope\" not found (referenced by envFrom[0].configMapRef)")
        );
    }

    #[test]
    fn command_replaces_entrypoint_and_args_append() {
        let env = vec![
            ("PATH".to_string(), "/opt/bin:/usr/bin".to_string()),
            ("WHO".to_string(), "world".to_string()),
        ];
        let exec = |p: &Path| p == Path::new("/usr/bin/sh");
        let entry = Path::new("/repo/ferry-runner");

        let c = container("name: a\nimage: x\nargs: [run, '--name=$(WHO)']\n");
        let cmd = command_line(entry, &c, &env, exec).expect("entrypoint");
        assert_eq!(cmd.program, PathBuf::from("/repo/ferry-runner"));
        assert_eq!(cmd.argv, vec!["/repo/ferry-runner", "run", "--name=world"]);

        let c = container("name: a\nimage: x\ncommand: [sh, -c]\nargs: ['echo $(WHO)']\n");
        let cmd = command_line(entry, &c, &env, exec).expect("path lookup");
        assert_eq!(cmd.program, PathBuf::from("/usr/bin/sh"));
        assert_eq!(cmd.argv, vec!["sh", "-c", "echo world"]);

        let c = container("name: a\nimage: x\ncommand: [nosuch]\n");
        assert_eq!(
            command_line(entry, &c, &env, exec).map_err(|e| e.to_string()),
            Err("exec: \"nosuch\": executable file not found in $PATH".to_string())
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("128Mi"), Some(134_217_728.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("lots"), None);
    }
}
