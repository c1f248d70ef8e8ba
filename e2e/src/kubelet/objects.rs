//! ConfigMaps and Secrets the pods reference: a cluster-wide watch cache that tells pod
//! workers when anything changed, and per-pod snapshots for env and volume resolution.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;

use super::env::ObjectLookup;

/// Name of the ConfigMap the controller-manager publishes with the cluster CA in every
/// namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// A watch cache of all ConfigMaps and Secrets.
#[derive(Clone)]
pub struct ObjectCache {
    client: Client,
    config_maps: Store<ConfigMap>,
    secrets: Store<Secret>,
    changes: watch::Receiver<u64>,
    cluster_ca: PathBuf,
}

impl ObjectCache {
    /// Starts watching ConfigMaps and Secrets in all namespaces. `cluster_ca` stands in for
    /// `kube-root-ca.crt` until the controller-manager has published it in a new namespace.
    pub fn start(client: Client, cluster_ca: PathBuf) -> Self {
        let (changes_tx, changes) = watch::channel(0u64);
        let (config_maps, cm_writer) = reflector::store::<ConfigMap>();
        let (secrets, secret_writer) = reflector::store::<Secret>();
        let cm_stream = reflector::reflector(
            cm_writer,
            watcher(
                Api::<ConfigMap>::all(client.clone()),
                watcher::Config::default(),
            ),
        )
        .default_backoff()
        .boxed();
        let secret_stream = reflector::reflector(
            secret_writer,
            watcher(
                Api::<Secret>::all(client.clone()),
                watcher::Config::default(),
            ),
        )
        .default_backoff()
        .boxed();
        let tx = changes_tx.clone();
        tokio::spawn(async move {
            let mut merged = futures::stream::select(
                cm_stream.map(|e| e.map(|_| ()).map_err(|e| e.to_string())),
                secret_stream.map(|e| e.map(|_| ()).map_err(|e| e.to_string())),
            );
            while let Some(event) = merged.next().await {
                match event {
                    Ok(()) => {
                        tx.send_modify(|generation| *generation = generation.wrapping_add(1));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "watching configmaps/secrets failed; retrying")
                    }
                }
            }
        });
        ObjectCache {
            client,
            config_maps,
            secrets,
            changes,
            cluster_ca,
        }
    }

    /// A receiver that changes whenever any ConfigMap or Secret changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The ConfigMaps and Secrets `pod` references, read from the cache (or the API when the
    /// cache has not seen them yet).
    pub async fn snapshot(&self, pod: &Pod) -> ObjectSnapshot {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let (cm_names, secret_names) = referenced_objects(pod);
        let mut snapshot = ObjectSnapshot::default();
        for name in cm_names {
            let cached = self
                .config_maps
                .get(&ObjectRef::new(&name).within(&namespace))
                .map(|cm| (*cm).clone());
            let found = match cached {
                Some(cm) => Some(cm),
                None => Api::<ConfigMap>::namespaced(self.client.clone(), &namespace)
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten(),
            };
            let found = match found {
                None if name == ROOT_CA_CONFIG_MAP => self.root_ca_fallback().await,
                other => other,
            };
            if let Some(cm) = found {
                snapshot.config_maps.insert(name, cm);
            }
        }
        for name in secret_names {
            let cached = self
                .secrets
                .get(&ObjectRef::new(&name).within(&namespace))
                .map(|s| (*s).clone());
            let found = match cached {
                Some(secret) => Some(secret),
                None => Api::<Secret>::namespaced(self.client.clone(), &namespace)
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten(),
            };
            if let Some(secret) = found {
                snapshot.secrets.insert(name, secret);
            }
        }
        snapshot
    }

    async fn root_ca_fallback(&self) -> Option<ConfigMap> {
        let ca = tokio::fs::read_to_string(&self.cluster_ca).await.ok()?;
        Some(ConfigMap {
            data: Some([("ca.crt".to_string(), ca)].into()),
            ..ConfigMap::default()
        })
    }
}

/// ConfigMaps and Secrets of one namespace, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectSnapshot {
    /// ConfigMaps by name.
    pub config_maps: HashMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: HashMap<String, Secret>,
}

impl ObjectLookup for ObjectSnapshot {
    fn config_map(&self, name: &str) -> Option<ConfigMap> {
        self.config_maps.get(name).cloned()
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.secrets.get(name).cloned()
    }
}

/// Names of the ConfigMaps and Secrets a pod references (env, envFrom, volumes).
pub fn referenced_objects(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let Some(spec) = pod.spec.as_ref() else {
        return (config_maps, secrets);
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for container in containers {
        for source in container.env_from.iter().flatten() {
            if let Some(r) = &source.config_map_ref {
                config_maps.insert(r.name.clone());
            }
            if let Some(r) = &source.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    config_maps.insert(r.name.clone());
                }
                if let Some(r) = &from.secret_key_ref {
                    secrets.insert(r.name.clone());
                }
            }
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            config_maps.insert(cm.name.clone());
        }
        if let Some(secret) = &volume.secret {
            if let Some(name) = &secret.secret_name {
                secrets.insert(name.clone());
            }
        }
        if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    config_maps.insert(cm.name.clone());
                }
                if let Some(secret) = &source.secret {
                    secrets.insert(secret.name.clone());
                }
            }
        }
    }
    (config_maps, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_references_from_env_and_volumes() {
        let pod: Pod = serde_yaml::from_str(
            r#"
metadata: {name: p, namespace: n}
spec:
  initContainers:
  - name: init
    envFrom: [{secretRef: {name: init-secret}}]
  containers:
  - name: main
    envFrom: [{configMapRef: {name: env-cm}}]
    env:
    - {name: A, valueFrom: {secretKeyRef: {name: s1, key: k}}}
    - {name: B, valueFrom: {configMapKeyRef: {name: cm1, key: k}}}
    - {name: C, value: plain}
  volumes:
  - {name: v1, configMap: {name: vol-cm}}
  - {name: v2, secret: {secretName: vol-secret}}
  - name: v3
    projected:
      sources:
      - serviceAccountToken: {path: token}
      - configMap: {name: kube-root-ca.crt}
      - secret: {name: proj-secret}
"#,
        )
        .expect("pod");
        let (cms, secrets) = referenced_objects(&pod);
        assert_eq!(
            cms.into_iter().collect::<Vec<_>>(),
            vec!["cm1", "env-cm", "kube-root-ca.crt", "vol-cm"]
        );
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            vec!["init-secret", "proj-secret", "s1", "vol-secret"]
        );
    }
}
