//! The pod watch: every pod bound to this node gets a pod worker; updates go to it, and a
//! pod that disappears from the API has its processes killed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::context::KubeletContext;
use super::pod_worker::run_pod;

struct Worker {
    pod_tx: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

/// Watches the pods bound to this node until shutdown; returns the still-running workers
/// so the caller can wait for their processes to stop.
pub async fn watch_pods(ctx: Arc<KubeletContext>, synced: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut listing: Option<HashSet<String>> = None;
    // The first listing is held back until complete, so pods that ran under a previous
    // kubelet get their old addresses back before new pods take addresses.
    let mut first_listing: Option<Vec<Pod>> = Some(Vec::new());
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            _ = shutdown.changed() => None,
        };
        let Some(event) = event else { break };
        // Forget workers whose pod is gone and whose task ended.
        workers.retain(|_, w| !(w.task.is_finished() && w.pod_tx.borrow().is_none()));
        match event {
            Ok(watcher::Event::Init) => listing = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let (Some(seen), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                match first_listing.as_mut() {
                    Some(held) => held.push(pod),
                    None => apply(&ctx, &mut workers, pod),
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(held) = first_listing.take() {
                    remove_orphaned_pod_dirs(&ctx, &held);
                    reserve_addresses(&ctx, &held);
                    for pod in held {
                        apply(&ctx, &mut workers, pod);
                    }
                }
                if let Some(seen) = listing.take() {
                    let gone: Vec<String> = workers
                        .keys()
                        .filter(|uid| !seen.contains(*uid))
                        .cloned()
                        .collect();
                    for uid in gone {
                        if let Some(worker) = workers.remove(&uid) {
                            worker.pod_tx.send_replace(None);
                        }
                    }
                }
                if !synced.swap(true, Ordering::SeqCst) {
                    info!(node = %ctx.node_name, pods = workers.len(), "watching pods bound to this node");
                }
            }
            Ok(watcher::Event::Apply(pod)) => apply(&ctx, &mut workers, pod),
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(worker) = pod
                    .metadata
                    .uid
                    .as_ref()
                    .and_then(|uid| workers.remove(uid))
                {
                    worker.pod_tx.send_replace(None);
                }
            }
            Err(error) => warn!(%error, "watching pods failed; retrying"),
        }
    }
    workers.into_values().map(|w| w.task).collect()
}

/// Removes the directories of pods that no longer exist (deleted while no kubelet ran).
fn remove_orphaned_pod_dirs(ctx: &KubeletContext, pods: &[Pod]) {
    let known: HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    let dir = ctx.root_dir.join("pods");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if known.contains(name.as_str()) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                info!(dir = %entry.path().display(), "removed the directory of a pod that no longer exists")
            }
            Err(error) => {
                warn!(dir = %entry.path().display(), %error, "cannot remove an orphaned pod directory")
            }
        }
    }
}

/// Gives pods that already report an address (from a previous kubelet) that address again.
fn reserve_addresses(ctx: &KubeletContext, pods: &[Pod]) {
    let Ok(mut pool) = ctx.ip_pool.lock() else {
        return;
    };
    for pod in pods {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let previous = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
        if let (false, Some(uid), Some(ip)) = (host_network, pod.metadata.uid.as_deref(), previous)
        {
            if let Err(error) = pool.allocate(uid, Some(ip)) {
                warn!(%error, "cannot reserve the previous address of a pod");
            }
        }
    }
}

fn apply(ctx: &Arc<KubeletContext>, workers: &mut HashMap<String, Worker>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    if let Some(worker) = workers.get(&uid) {
        if !worker.task.is_finished() {
            worker.pod_tx.send_replace(Some(pod));
            return;
        }
        // The worker ended but the pod is still there (e.g. finishing its deletion failed):
        // a new worker picks it up again.
    }
    let (pod_tx, pod_rx) = watch::channel(Some(pod));
    let task = tokio::spawn(run_pod(ctx.clone(), pod_rx));
    workers.insert(uid, Worker { pod_tx, task });
}
