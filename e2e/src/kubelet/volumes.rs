//! Pod volumes: what each volume contains (pure), and writing it under
//! `<root-dir>/pods/<uid>/volumes/<name>/` with the kubelet's atomic `..data` swap, so a
//! process reading a mounted file never sees half an update.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, Pod, ServiceAccountTokenProjection, Volume,
};

use super::env::{field_value, resource_value, ObjectLookup, PodRuntimeInfo};

/// Default file mode of configMap, secret, downwardAPI and projected volumes (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// The name of the symlink that points at the current generation of a volume's files.
const DATA_DIR: &str = "..data";

/// One file of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileData {
    /// Contents.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// What a volume is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumePlan {
    /// Generated files (configMap, secret, downwardAPI, projected), by relative path.
    Files(BTreeMap<String, FileData>),
    /// An empty directory that lives as long as the pod.
    EmptyDir,
    /// A directory or file of the host.
    HostPath {
        /// The host path.
        path: PathBuf,
        /// `spec.volumes[].hostPath.type`.
        kind: Option<String>,
    },
}

/// Why a volume cannot be set up (the pod waits in `ContainerCreating`, like with a
/// `FailedMount` event).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VolumeError {
    /// The referenced ConfigMap or Secret does not exist and is not optional.
    #[error("volume {volume}: {kind} \"{name}\" not found")]
    ObjectNotFound {
        /// The volume.
        volume: String,
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The object.
        name: String,
    },
    /// An item names a key the object does not have.
    #[error("volume {volume}: key {key:?} not found in {kind} \"{name}\"")]
    KeyNotFound {
        /// The volume.
        volume: String,
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The object.
        name: String,
        /// The key.
        key: String,
    },
    /// An item path that is absolute or leaves the volume.
    #[error("volume {volume}: invalid item path {path:?} (must be relative without '..')")]
    InvalidPath {
        /// The volume.
        volume: String,
        /// The path.
        path: String,
    },
    /// A downward API item failed.
    #[error("volume {volume}: {message}")]
    DownwardApi {
        /// The volume.
        volume: String,
        /// What failed.
        message: String,
    },
    /// The service-account token is not available yet.
    #[error("volume {volume}: waiting for a service-account token: {message}")]
    Token {
        /// The volume.
        volume: String,
        /// What failed.
        message: String,
    },
    /// A volume type this kubelet does not run.
    #[error("volume {0}: unsupported volume type (the local kubelet supports configMap, secret, emptyDir, hostPath, downwardAPI and projected)")]
    Unsupported(String),
}

/// Resolves a service-account token projection to a token.
pub trait TokenLookup {
    /// The token for `projection`, or why there is none.
    fn token(&self, projection: &ServiceAccountTokenProjection) -> Result<String, String>;
}

/// Computes the contents of `volume`.
pub fn plan_volume(
    volume: &Volume,
    pod: &Pod,
    info: &PodRuntimeInfo,
    objects: &dyn ObjectLookup,
    tokens: &dyn TokenLookup,
) -> Result<VolumePlan, VolumeError> {
    let name = volume.name.as_str();
    let mut files = BTreeMap::new();
    if volume.empty_dir.is_some() {
        return Ok(VolumePlan::EmptyDir);
    }
    if let Some(host) = &volume.host_path {
        return Ok(VolumePlan::HostPath {
            path: PathBuf::from(&host.path),
            kind: host.type_.clone().filter(|t| !t.is_empty()),
        });
    }
    if let Some(source) = &volume.config_map {
        let mode = mode_or(source.default_mode, DEFAULT_MODE);
        add_config_map(
            &mut files,
            name,
            &source.name,
            source.items.as_deref(),
            source.optional,
            mode,
            objects,
        )?;
    } else if let Some(source) = &volume.secret {
        let mode = mode_or(source.default_mode, DEFAULT_MODE);
        let secret_name = source.secret_name.clone().unwrap_or_default();
        add_secret(
            &mut files,
            name,
            &secret_name,
            source.items.as_deref(),
            source.optional,
            mode,
            objects,
        )?;
    } else if let Some(source) = &volume.downward_api {
        let mode = mode_or(source.default_mode, DEFAULT_MODE);
        add_downward(
            &mut files,
            name,
            source.items.as_deref().unwrap_or_default(),
            mode,
            pod,
            info,
        )?;
    } else if let Some(projected) = &volume.projected {
        let mode = mode_or(projected.default_mode, DEFAULT_MODE);
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                add_config_map(
                    &mut files,
                    name,
                    &cm.name,
                    cm.items.as_deref(),
                    cm.optional,
                    mode,
                    objects,
                )?;
            }
            if let Some(secret) = &source.secret {
                add_secret(
                    &mut files,
                    name,
                    &secret.name,
                    secret.items.as_deref(),
                    secret.optional,
                    mode,
                    objects,
                )?;
            }
            if let Some(downward) = &source.downward_api {
                add_downward(
                    &mut files,
                    name,
                    downward.items.as_deref().unwrap_or_default(),
                    mode,
                    pod,
                    info,
                )?;
            }
            if let Some(token) = &source.service_account_token {
                let value = tokens.token(token).map_err(|message| VolumeError::Token {
                    volume: name.to_string(),
                    message,
                })?;
                insert(&mut files, name, &token.path, value.into_bytes(), mode)?;
            }
        }
    } else {
        return Err(VolumeError::Unsupported(name.to_string()));
    }
    Ok(VolumePlan::Files(files))
}

fn mode_or(mode: Option<i32>, default: u32) -> u32 {
    mode.map_or(default, |m| (m as u32) & 0o7777)
}

fn insert(
    files: &mut BTreeMap<String, FileData>,
    volume: &str,
    path: &str,
    data: Vec<u8>,
    mode: u32,
) -> Result<(), VolumeError> {
    let clean = Path::new(path);
    let valid = !path.is_empty()
        && clean.is_relative()
        && clean
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        && !path.starts_with("..");
    if !valid {
        return Err(VolumeError::InvalidPath {
            volume: volume.to_string(),
            path: path.to_string(),
        });
    }
    files.insert(path.to_string(), FileData { data, mode });
    Ok(())
}

/// Adds `entries` (key → bytes) honouring `items` (key → path, mode).
fn add_items(
    files: &mut BTreeMap<String, FileData>,
    volume: &str,
    kind: &'static str,
    object: &str,
    entries: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
) -> Result<(), VolumeError> {
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let data =
                    entries
                        .get(&item.key)
                        .cloned()
                        .ok_or_else(|| VolumeError::KeyNotFound {
                            volume: volume.to_string(),
                            kind,
                            name: object.to_string(),
                            key: item.key.clone(),
                        })?;
                insert(files, volume, &item.path, data, mode_or(item.mode, mode))?;
            }
        }
        _ => {
            for (key, data) in entries {
                insert(files, volume, &key, data, mode)?;
            }
        }
    }
    Ok(())
}

fn add_config_map(
    files: &mut BTreeMap<String, FileData>,
    volume: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: u32,
    objects: &dyn ObjectLookup,
) -> Result<(), VolumeError> {
    let Some(cm) = objects.config_map(name) else {
        if optional == Some(true) {
            return Ok(());
        }
        return Err(VolumeError::ObjectNotFound {
            volume: volume.to_string(),
            kind: "configmap",
            name: name.to_string(),
        });
    };
    let mut entries: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    entries.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    add_items(files, volume, "configmap", name, entries, items, mode)
}

fn add_secret(
    files: &mut BTreeMap<String, FileData>,
    volume: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: u32,
    objects: &dyn ObjectLookup,
) -> Result<(), VolumeError> {
    let Some(secret) = objects.secret(name) else {
        if optional == Some(true) {
            return Ok(());
        }
        return Err(VolumeError::ObjectNotFound {
            volume: volume.to_string(),
            kind: "secret",
            name: name.to_string(),
        });
    };
    let mut entries: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    entries.extend(
        secret
            .string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    add_items(files, volume, "secret", name, entries, items, mode)
}

fn add_downward(
    files: &mut BTreeMap<String, FileData>,
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    pod: &Pod,
    info: &PodRuntimeInfo,
) -> Result<(), VolumeError> {
    for item in items {
        let field = format!("downwardAPI item {}", item.path);
        let error = |e: super::env::EnvError| VolumeError::DownwardApi {
            volume: volume.to_string(),
            message: e.to_string(),
        };
        let value = if let Some(selector) = &item.field_ref {
            field_value(pod, info, selector, &field).map_err(error)?
        } else if let Some(selector) = &item.resource_field_ref {
            let container_name = selector.container_name.clone().unwrap_or_default();
            let container = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == container_name))
                .ok_or_else(|| VolumeError::DownwardApi {
                    volume: volume.to_string(),
                    message: format!(
                        "{field}: resourceFieldRef names unknown container {container_name:?}"
                    ),
                })?;
            resource_value(pod, container, info, selector, &field).map_err(error)?
        } else {
            String::new()
        };
        insert(
            files,
            volume,
            &item.path,
            value.into_bytes(),
            mode_or(item.mode, mode),
        )?;
    }
    Ok(())
}

/// Writes `files` into `dir` atomically: a new hidden generation directory is filled, the
/// `..data` symlink is swapped to it with one `rename`, and each top-level entry is a
/// symlink through `..data`. Files readable by `owner` when given (for `runAsUser`).
pub fn write_files(
    dir: &Path,
    files: &BTreeMap<String, FileData>,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let generation = dir.join(&stamp);
    std::fs::create_dir(&generation)?;
    std::fs::set_permissions(&generation, std::fs::Permissions::from_mode(0o755))?;
    for (path, file) in files {
        let target = generation.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&target)?;
        out.write_all(&file.data)?;
        out.sync_all()?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&target, Some(uid), Some(gid))?;
        }
    }
    let previous = std::fs::read_link(dir.join(DATA_DIR)).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link)?;
    std::fs::rename(&tmp_link, dir.join(DATA_DIR))?;

    let top_level: BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top_level {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_DIR).join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            continue;
        }
        if !top_level.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(previous) = previous {
        if previous != Path::new(&stamp) {
            let _ = std::fs::remove_dir_all(dir.join(previous));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};

    struct Objects;

    impl ObjectLookup for Objects {
        fn config_map(&self, name: &str) -> Option<ConfigMap> {
            (name == "task").then(|| {
                serde_yaml::from_str("metadata: {name: task}\ndata: {connector.yaml: 'a: 1', state: Running}\nbinaryData: {blob: AAE=}\n")
                    .expect("configmap")
            })
        }
        fn secret(&self, name: &str) -> Option<Secret> {
            (name == "creds").then(|| {
                serde_yaml::from_str("metadata: {name: creds}\ndata: {password: aHVudGVyMg==}\n")
                    .expect("secret")
            })
        }
    }

    struct Tokens;

    impl TokenLookup for Tokens {
        fn token(&self, projection: &ServiceAccountTokenProjection) -> Result<String, String> {
            Ok(format!(
                "token-for-{}",
                projection.expiration_seconds.unwrap_or(3600)
            ))
        }
    }

    fn pod() -> Pod {
        serde_yaml::from_str(
            "metadata: {name: p, namespace: shop, labels: {app: web}}\nspec:\n  containers: [{name: main, image: x}]\n",
        )
        .expect("pod")
    }

    fn plan(yaml: &str) -> Result<VolumePlan, VolumeError> {
        let volume: Volume = serde_yaml::from_str(yaml).expect("volume");
        plan_volume(
            &volume,
            &pod(),
            &PodRuntimeInfo::default(),
            &Objects,
            &Tokens,
        )
    }

    fn files(plan: Result<VolumePlan, VolumeError>) -> BTreeMap<String, FileData> {
        match plan {
            Ok(VolumePlan::Files(files)) => files,
            other => panic!("expected files, got {other:?}"),
        }
    }

    #[test]
    fn config_map_with_all_keys_and_binary_data() {
        let f = files(plan("name: cfg\nconfigMap: {name: task}\n"));
        assert_eq!(
            f.keys().collect::<Vec<_>>(),
            vec!["blob", "connector.yaml", "state"]
        );
        assert_eq!(f["connector.yaml"].data, b"a: 1");
        assert_eq!(f["blob"].data, vec![0u8, 1]);
        assert_eq!(f["state"].mode, 0o644);
    }

    #[test]
    fn secret_items_and_modes() {
        let f = files(plan(
            "name: s\nsecret: {secretName: creds, defaultMode: 256, items: [{key: password, path: db/pass}]}\n",
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f["db/pass"].data, b"hunter2");
        assert_eq!(f["db/pass"].mode, 0o400);
        assert_eq!(
            plan("name: s\nsecret: {secretName: creds, items: [{key: nope, path: x}]}\n"),
            Err(VolumeError::KeyNotFound {
                volume: "s".into(),
                kind: "secret",
                name: "creds".into(),
                key: "nope".into()
            })
        );
    }

    #[test]
    fn optional_and_missing_objects() {
        assert_eq!(
            files(plan(
                "name: o\nsecret: {secretName: gone, optional: true}\n"
            ))
            .len(),
            0
        );
        assert_eq!(
            plan("name: m\nconfigMap: {name: gone}\n").map_err(|e| e.to_string()),
            Err("volume m: configmap \"gone\" not found".to_string())
        );
    }

    #[test]
    fn projected_service_account_volume() {
        let f = files(plan(
            r#"
name: kube-api-access-x
projected:
  defaultMode: 420
  sources:
  - serviceAccountToken: {expirationSeconds: 3607, path: token}
  - configMap: {name: task, items: [{key: state, path: ca.crt}]}
  - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}, {path: labels, fieldRef: {fieldPath: metadata.labels}}]}
"#,
        ));
        assert_eq!(f["token"].data, b"token-for-3607");
        assert_eq!(f["ca.crt"].data, b"Running");
        assert_eq!(f["namespace"].data, b"shop");
        assert_eq!(f["labels"].data, b"app=\"web\"");
        assert_eq!(f["namespace"].mode, 0o644);
    }

    #[test]
    fn rejects_escaping_paths_and_unsupported_types() {
        assert!(matches!(
            plan("name: e\nconfigMap: {name: task, items: [{key: state, path: ../x}]}\n"),
            Err(VolumeError::InvalidPath { .. })
        ));
        assert_eq!(
            plan("name: pvc\npersistentVolumeClaim: {claimName: data}\n"),
            Err(VolumeError::Unsupported("pvc".into()))
        );
        assert_eq!(plan("name: tmp\nemptyDir: {}\n"), Ok(VolumePlan::EmptyDir));
    }

    #[test]
    fn atomic_writes_swap_generations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = dir.path().join("cfg");
        let gen1 = files(plan("name: cfg\nconfigMap: {name: task}\n"));
        write_files(&vol, &gen1, None).expect("first write");
        assert_eq!(
            std::fs::read_to_string(vol.join("state")).expect("read"),
            "Running"
        );
        let mut gen2 = BTreeMap::new();
        gen2.insert(
            "state".to_string(),
            FileData {
                data: b"Paused".to_vec(),
                mode: 0o644,
            },
        );
        write_files(&vol, &gen2, None).expect("second write");
        assert_eq!(
            std::fs::read_to_string(vol.join("state")).expect("read"),
            "Paused"
        );
        assert!(
            std::fs::symlink_metadata(vol.join("connector.yaml")).is_err(),
            "removed key disappears"
        );
        let generations = std::fs::read_dir(&vol)
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(generations, 1, "the old generation is removed");
    }
}
