//! Tests of the local stack itself: the local kubelet runs pods the real control plane
//! schedules (env, volumes, termination messages, graceful deletion, restarts, in-cluster
//! RBAC), the controller-manager's controllers work against it, and Kafka and PostgreSQL
//! accept what the connectors need. Each test fails when that part of the stack is wrong.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};
use ferry_e2e::harness::{self, Stack, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStateTerminated, Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;

/// Upper bound of every wait in these tests.
const WAIT: Duration = Duration::from_secs(90);

/// Creates the object described by `yaml` (with `{ns}` replaced by the namespace).
async fn create<K>(ns: &TestNamespace, yaml: &str) -> anyhow::Result<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + serde::Serialize,
    <K as kube::Resource>::DynamicType: Default,
{
    let object: K = serde_yaml::from_str(&yaml.replace("{ns}", &ns.name))
        .with_context(|| format!("parsing test manifest:\n{yaml}"))?;
    ns.api::<K>()
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating {}", K::kind(&Default::default())))
}

/// Runs `body` in a fresh namespace and always deletes the namespace afterwards, also when
/// an assertion in `body` panics.
async fn in_namespace<F, Fut>(prefix: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Stack, Client, TestNamespace) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let stack = Stack::from_env()?;
    let client = stack.client().await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    let outcome = tokio::spawn(body(stack, client, ns.clone())).await;
    let cleanup = ns.cleanup().await;
    match outcome {
        Ok(result) => result?,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => bail!("test task failed: {error}"),
    }
    cleanup?;
    Ok(())
}

/// The terminated state of container `index` of `pod`.
fn terminated(pod: &Pod, index: usize) -> Option<ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .get(index)?
        .state
        .as_ref()?
        .terminated
        .clone()
}

/// A temporary host directory pods can write to (through a hostPath volume).
fn host_dir() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("ferry-stack-test-")
        .tempdir()?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )?;
    Ok(dir)
}

async fn wait_for_file(path: &Path) -> anyhow::Result<String> {
    let content = harness::wait_for_named(&format!("file {}", path.display()), WAIT, || async {
        std::fs::read_to_string(path).ok().filter(|s| !s.is_empty())
    })
    .await?;
    Ok(content)
}

#[tokio::test]
async fn pod_sees_its_secret_env_and_configmap_volume() -> anyhow::Result<()> {
    in_namespace("stack-env", |_stack, client, ns| async move {
        let out = host_dir()?;
        create::<ConfigMap>(&ns, "metadata: {name: settings}\ndata: {greeting: hello-from-configmap}\n").await?;
        create::<k8s_openapi::api::core::v1::Secret>(&ns, "metadata: {name: creds}\nstringData: {password: s3cr3t-value}\n").await?;
        let pod_yaml = format!(
            r#"
metadata: {{name: reader}}
spec:
  containers:
  - name: main
    image: ferry/test-shell
    command: [/bin/sh, -c]
    args:
    - |
      echo "password=$PASSWORD greeting=$(cat /etc/settings/greeting) ip=$POD_IP ns=$MY_NS home=$HOME kubeconfig=${{KUBECONFIG:-unset}}" > /out/seen
      touch /data/ready
      trap 'exit 0' TERM
      while true; do sleep 1; done
    env:
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: MY_NS
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    volumeMounts:
    - {{name: settings, mountPath: /etc/settings, readOnly: true}}
    - {{name: data, mountPath: /data}}
    - {{name: out, mountPath: /out}}
    readinessProbe:
      exec: {{command: [/bin/sh, -c, 'test -f /data/ready']}}
      periodSeconds: 1
  volumes:
  - {{name: settings, configMap: {{name: settings}}}}
  - {{name: data, emptyDir: {{}}}}
  - {{name: out, hostPath: {{path: {out}}}}}
"#,
            out = out.path().display()
        );
        create::<Pod>(&ns, &pod_yaml).await?;
        let pod = harness::wait_pod_ready(&client, &ns.name, "reader", WAIT).await?;
        let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        ensure!(pod_ip.starts_with("127.0.1."), "pod IP {pod_ip:?} is not a 127.0.1.N loopback address");
        let seen = wait_for_file(&out.path().join("seen")).await?;
        assert_eq!(
            seen.trim(),
            format!(
                "password=s3cr3t-value greeting=hello-from-configmap ip={pod_ip} ns={} home=/ kubeconfig=unset",
                ns.name
            )
        );
        // The readiness probe runs inside the container's mount namespace: /data exists only there.
        ensure!(!Path::new("/data/ready").exists(), "the emptyDir leaked onto the host as /data");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn mounted_configmap_is_refreshed_in_place() -> anyhow::Result<()> {
    in_namespace("stack-refresh", |_stack, client, ns| async move {
        create::<ConfigMap>(&ns, "metadata: {name: state}\ndata: {state: Running}\n").await?;
        create::<Pod>(
            &ns,
            r#"
metadata: {name: watcher}
spec:
  containers:
  - name: main
    image: ferry/test-shell
    command: [/bin/sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: state, mountPath: /etc/ferry/task}]
    readinessProbe:
      exec: {command: [/bin/sh, -c, 'grep -qx Paused /etc/ferry/task/state']}
      periodSeconds: 1
  volumes: [{name: state, configMap: {name: state}}]
"#,
        )
        .await?;
        let pods: Api<Pod> = ns.api();
        harness::wait_pod_phase(&client, &ns.name, "watcher", "Running", WAIT).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = pods.get("watcher").await?;
        ensure!(
            !harness::is_pod_ready(&before),
            "the pod is Ready before the ConfigMap says Paused"
        );
        let cms: Api<ConfigMap> = ns.api();
        cms.patch(
            "state",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"state": "Paused"}})),
        )
        .await?;
        // Same pod (no restart), new file content.
        let after =
            harness::wait_pod_ready(&client, &ns.name, "watcher", Duration::from_secs(30)).await?;
        let restarts = after
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|cs| cs.first().map(|c| c.restart_count));
        assert_eq!(restarts, Some(0));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn non_root_pod_with_read_only_root_filesystem_like_a_task_pod() -> anyhow::Result<()> {
    in_namespace("stack-nonroot", |_stack, client, ns| async move {
        create::<ConfigMap>(&ns, "metadata: {name: task}\ndata: {connector.yaml: 'name: demo'}\n").await?;
        create::<Pod>(
            &ns,
            r#"
metadata: {name: task}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  containers:
  - name: runner
    image: ferry/test-shell
    command: [/bin/sh, -c]
    args:
    - |
      root=rw; (echo x > /var/tmp/ferry-ro-check) 2>/dev/null || root=ro
      tmp=fail; echo x > /tmp/scratch && tmp=ok
      cfg=fail; echo x > /etc/ferry/task/new 2>/dev/null || cfg=ro
      echo "uid=$(id -u) gid=$(id -g) root=$root tmp=$tmp cfg=$cfg config=$(cat /etc/ferry/task/connector.yaml)" > /dev/termination-log
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsUser: 65532, runAsGroup: 65532}
    volumeMounts:
    - {name: config, mountPath: /etc/ferry/task, readOnly: true}
    - {name: tmp, mountPath: /tmp}
  volumes:
  - {name: config, configMap: {name: task}}
  - {name: tmp, emptyDir: {}}
"#,
        )
        .await?;
        let pod = harness::wait_pod_phase(&client, &ns.name, "task", "Succeeded", WAIT).await?;
        let term = terminated(&pod, 0).ok_or_else(|| anyhow!("no terminated state"))?;
        assert_eq!(
            term.message.as_deref().map(str::trim),
            Some("uid=65532 gid=65532 root=ro tmp=ok cfg=ro config=name: demo")
        );
        ensure!(!Path::new("/var/tmp/ferry-ro-check").exists(), "the container wrote to the host's root filesystem");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn failing_liveness_probe_restarts_the_container() -> anyhow::Result<()> {
    in_namespace("stack-liveness", |_stack, _client, ns| async move {
        create::<Pod>(
            &ns,
            r#"
metadata: {name: stuck}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: ferry/test-shell
    command: [/bin/sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    livenessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
      failureThreshold: 2
"#,
        )
        .await?;
        let pods: Api<Pod> = ns.api();
        let status =
            harness::wait_for_named("a restart after failed liveness probes", WAIT, || async {
                let pod = pods.get("stuck").await.ok()?;
                let cs = pod.status?.container_statuses?.into_iter().next()?;
                (cs.restart_count >= 1).then_some(cs)
            })
            .await?;
        let last = status
            .last_state
            .and_then(|s| s.terminated)
            .ok_or_else(|| anyhow!("no lastState.terminated"))?;
        let message = last.message.unwrap_or_default();
        ensure!(
            message.contains("Liveness probe failed"),
            "lastState message does not name the liveness probe: {message}"
        );
        assert_eq!(last.exit_code, 0, "the container's SIGTERM trap exits 0");
        let events: Api<Event> = ns.api();
        harness::wait_for_named("an Unhealthy event from the kubelet", WAIT, || async {
            let list = events
                .list(&ListParams::default().fields("involvedObject.name=stuck"))
                .await
                .ok()?;
            list.items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("Unhealthy")
                        && e.reporting_component.as_deref() == Some("kubelet")
                })
                .map(|_| ())
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn init_containers_run_in_order_before_the_containers() -> anyhow::Result<()> {
    in_namespace("stack-init", |_stack, client, ns| async move {
        create::<Pod>(
            &ns,
            r#"
metadata: {name: ordered}
spec:
  restartPolicy: Never
  initContainers:
  - {name: first, image: ferry/test-shell, command: [/bin/sh, -c, 'echo first >> /work/order'], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: ferry/test-shell, command: [/bin/sh, -c, 'sleep 1; echo second >> /work/order'], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - name: main
    image: ferry/test-shell
    command: [/bin/sh, -c, 'echo main >> /work/order; tr "\n" " " < /work/order > /dev/termination-log']
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
"#,
        )
        .await?;
        let pod = harness::wait_pod_phase(&client, &ns.name, "ordered", "Succeeded", WAIT).await?;
        let term = terminated(&pod, 0).ok_or_else(|| anyhow!("no terminated state"))?;
        assert_eq!(term.message.as_deref().map(str::trim), Some("first second main"));
        let inits = pod.status.and_then(|s| s.init_container_statuses).unwrap_or_default();
        let reasons: Vec<Option<String>> = inits
            .iter()
            .map(|c| c.state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.reason.clone()))
            .collect();
        assert_eq!(reasons, vec![Some("Completed".to_string()), Some("Completed".to_string())]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unmapped_image_waits_with_a_clear_reason() -> anyhow::Result<()> {
    in_namespace("stack-image", |_stack, _client, ns| async move {
        create::<Pod>(&ns, "metadata: {name: unknown}\nspec:\n  containers: [{name: main, image: 'busybox:1.36'}]\n").await?;
        let pods: Api<Pod> = ns.api();
        let waiting = harness::wait_for_named("container waiting with ImageNotMapped", WAIT, || async {
            let pod = pods.get("unknown").await.ok()?;
            let cs = pod.status?.container_statuses?.into_iter().next()?;
            let waiting = cs.state?.waiting?;
            (waiting.reason.as_deref() == Some("ImageNotMapped")).then_some(waiting)
        })
        .await?;
        let message = waiting.message.unwrap_or_default();
        ensure!(
            message.contains("\"busybox:1.36\"") && message.contains("ferry/test-shell") && message.contains("--image busybox="),
            "the message should name the image, the table and the fix: {message}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn exit_code_and_termination_message_are_reported() -> anyhow::Result<()> {
    in_namespace("stack-exit", |_stack, client, ns| async move {
        create::<Pod>(
            &ns,
            r#"
metadata: {name: failing}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: ferry/test-shell
    command: [/bin/sh, -c, 'printf "record orders/2@17 is not JSON" > /dev/termination-log; exit 3']
"#,
        )
        .await?;
        let pod = harness::wait_pod_phase(&client, &ns.name, "failing", "Failed", WAIT).await?;
        let term = terminated(&pod, 0)
            .ok_or_else(|| anyhow!("no terminated state in {:?}", pod.status))?;
        assert_eq!(term.exit_code, 3);
        assert_eq!(term.reason.as_deref(), Some("Error"));
        assert_eq!(
            term.message.as_deref(),
            Some("record orders/2@17 is not JSON")
        );
        ensure!(
            term.started_at.is_some() && term.finished_at.is_some(),
            "start/finish times missing: {term:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn deleting_a_pod_sends_sigterm_first() -> anyhow::Result<()> {
    in_namespace("stack-sigterm", |_stack, client, ns| async move {
        let out = host_dir()?;
        create::<Pod>(
            &ns,
            &format!(
                r#"
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: main
    image: ferry/test-shell
    command: [/bin/sh, -c, "trap 'echo got-sigterm > /out/marker; exit 0' TERM; touch /out/started; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes: [{{name: out, hostPath: {{path: {}}}}}]
"#,
                out.path().display()
            ),
        )
        .await?;
        harness::wait_pod_phase(&client, &ns.name, "graceful", "Running", WAIT).await?;
        harness::wait_for_named("the container to start", WAIT, || async {
            out.path().join("started").exists().then_some(())
        })
        .await?;
        let pods: Api<Pod> = ns.api();
        pods.delete("graceful", &DeleteParams::default()).await?;
        harness::wait_pod_gone(&client, &ns.name, "graceful", WAIT).await?;
        let marker = std::fs::read_to_string(out.path().join("marker")).context("the SIGTERM trap did not run")?;
        assert_eq!(marker.trim(), "got-sigterm");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn deployment_pods_are_created_scheduled_and_scaled_by_the_control_plane(
) -> anyhow::Result<()> {
    in_namespace("stack-deploy", |_stack, _client, ns| async move {
        create::<Deployment>(
            &ns,
            r#"
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: ferry/test-shell:1.0
        command: [/bin/sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#,
        )
        .await?;
        let pods: Api<Pod> = ns.api();
        let ready = harness::wait_for_named("2 Ready pods of deployment web", WAIT, || async {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let ready: Vec<Pod> = list
                .items
                .into_iter()
                .filter(harness::is_pod_ready)
                .collect();
            (ready.len() == 2).then_some(ready)
        })
        .await?;
        let events: Api<Event> = ns.api();
        for pod in &ready {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let owner = pod.metadata.owner_references.clone().unwrap_or_default();
            ensure!(
                owner
                    .iter()
                    .any(|o| o.kind == "ReplicaSet" && o.controller == Some(true)),
                "pod {name} is not owned by a ReplicaSet: {owner:?}"
            );
            assert_eq!(
                pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
                Some("ferry-local")
            );
            harness::wait_for_named(
                &format!("a Scheduled event from default-scheduler for {name}"),
                WAIT,
                || {
                    let events = events.clone();
                    let name = name.clone();
                    async move {
                        let list = events
                            .list(
                                &ListParams::default()
                                    .fields(&format!("involvedObject.name={name}")),
                            )
                            .await
                            .ok()?;
                        list.items
                            .into_iter()
                            .find(|e| {
                                e.reason.as_deref() == Some("Scheduled")
                                    && (e.reporting_component.as_deref()
                                        == Some("default-scheduler")
                                        || e.source.as_ref().and_then(|s| s.component.as_deref())
                                            == Some("default-scheduler"))
                            })
                            .map(|_| ())
                    }
                },
            )
            .await?;
        }
        let deployments: Api<Deployment> = ns.api();
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
            )
            .await?;
        harness::wait_for_named("deployment web to have no pods", WAIT, || async {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            list.items.is_empty().then_some(())
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn garbage_collector_deletes_dependents_of_a_deleted_owner() -> anyhow::Result<()> {
    in_namespace("stack-gc", |_stack, client, ns| async move {
        let owner = create::<ConfigMap>(&ns, "metadata: {name: owner}\ndata: {k: v}\n").await?;
        let uid = owner
            .metadata
            .uid
            .clone()
            .ok_or_else(|| anyhow!("owner has no uid"))?;
        create::<Pod>(
            &ns,
            &format!(
                r#"
metadata:
  name: dependent
  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}]
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: ferry/test-shell
    command: [/bin/sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#
            ),
        )
        .await?;
        harness::wait_pod_phase(&client, &ns.name, "dependent", "Running", WAIT).await?;
        let cms: Api<ConfigMap> = ns.api();
        cms.delete("owner", &DeleteParams::background()).await?;
        harness::wait_pod_gone(&client, &ns.name, "dependent", WAIT).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn in_cluster_kubectl_uses_the_pods_own_service_account_and_rbac() -> anyhow::Result<()> {
    in_namespace("stack-rbac", |_stack, _client, ns| async move {
        create::<k8s_openapi::api::core::v1::ServiceAccount>(&ns, "metadata: {name: reader}\n").await?;
        create::<k8s_openapi::api::rbac::v1::Role>(
            &ns,
            "metadata: {name: configmap-reader}\nrules:\n- {apiGroups: [''], resources: [configmaps], verbs: [get, list]}\n",
        )
        .await?;
        create::<k8s_openapi::api::rbac::v1::RoleBinding>(
            &ns,
            "metadata: {name: reader}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}\nsubjects: [{kind: ServiceAccount, name: reader, namespace: '{ns}'}]\n",
        )
        .await?;
        create::<Pod>(
            &ns,
            r#"
metadata: {name: kubectl}
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
  - name: configmaps
    image: ferry/test-kubectl
    args: [get, configmaps, -o, name]
    terminationMessagePolicy: FallbackToLogsOnError
  - name: secrets
    image: ferry/test-kubectl
    args: [get, secrets, -o, name]
    terminationMessagePolicy: FallbackToLogsOnError
"#,
        )
        .await?;
        let pods: Api<Pod> = ns.api();
        let pod = harness::wait_for_named("both kubectl containers to finish", WAIT, || async {
            let pod = pods.get("kubectl").await.ok()?;
            (terminated(&pod, 0).is_some() && terminated(&pod, 1).is_some()).then_some(pod)
        })
        .await?;
        let configmaps = terminated(&pod, 0).unwrap_or_default();
        let secrets = terminated(&pod, 1).unwrap_or_default();
        ensure!(
            configmaps.exit_code == 0,
            "listing configmaps failed with exit code {}: {:?}",
            configmaps.exit_code,
            configmaps.message
        );
        ensure!(secrets.exit_code != 0, "listing secrets succeeded: the pod is not limited to its own RBAC");
        let message = secrets.message.unwrap_or_default();
        let identity = format!("system:serviceaccount:{}:reader", ns.name);
        ensure!(
            message.contains("forbidden") && message.contains(&identity),
            "expected a Forbidden error for {identity}, got: {message}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn on_failure_restarts_until_success_and_counts_restarts() -> anyhow::Result<()> {
    in_namespace("stack-restart", |_stack, client, ns| async move {
        create::<Pod>(
            &ns,
            r#"
metadata: {name: flaky}
spec:
  restartPolicy: OnFailure
  containers:
  - name: main
    image: ferry/test-shell
    command: [/bin/sh, -c]
    args:
    - |
      n=$(cat /data/count 2>/dev/null || echo 0)
      n=$((n + 1))
      echo $n > /data/count
      echo "attempt $n" > /dev/termination-log
      [ "$n" -ge 3 ]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
"#,
        )
        .await?;
        let pod = harness::wait_pod_phase(&client, &ns.name, "flaky", "Succeeded", WAIT).await?;
        let status = pod
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|cs| cs.into_iter().next())
            .ok_or_else(|| anyhow!("no container status"))?;
        assert_eq!(status.restart_count, 2);
        let last = status
            .last_state
            .and_then(|s| s.terminated)
            .ok_or_else(|| anyhow!("no lastState.terminated"))?;
        assert_eq!(last.exit_code, 1);
        assert_eq!(last.message.as_deref().map(str::trim), Some("attempt 2"));
        let current = status
            .state
            .and_then(|s| s.terminated)
            .ok_or_else(|| anyhow!("not terminated"))?;
        assert_eq!(current.exit_code, 0);
        assert_eq!(current.message.as_deref().map(str::trim), Some("attempt 3"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn kafka_round_trips_a_record() -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message};

    let stack = Stack::from_env()?;
    let topic = format!("stack-roundtrip-{}", harness::random_suffix(6));
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &stack.kafka_bootstrap);
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    for result in created {
        result.map_err(|(topic, code)| anyhow!("creating topic {topic}: {code}"))?;
    }
    let producer: FutureProducer = config.clone().set("message.timeout.ms", "30000").create()?;
    let delivery = producer
        .send(
            FutureRecord::to(&topic)
                .key("order-1")
                .payload("{\"total\":42}"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| anyhow!("producing to {topic}: {e}"))?;
    let consumer: StreamConsumer = config
        .clone()
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .context("no record consumed within 60s")??;
    assert_eq!(
        (message.partition(), message.offset()),
        (delivery.partition, delivery.offset)
    );
    assert_eq!(message.key(), Some(&b"order-1"[..]));
    assert_eq!(message.payload(), Some(&b"{\"total\":42}"[..]));
    admin.delete_topics(&[&topic], &AdminOptions::new()).await?;
    Ok(())
}

#[tokio::test]
async fn postgres_accepts_a_logical_replication_slot() -> anyhow::Result<()> {
    let stack = Stack::from_env()?;
    let (client, connection) = tokio_postgres::connect(&stack.postgres_url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", stack.postgres_url))?;
    let connection = tokio::spawn(connection);
    let slot = format!("stack_test_{}", harness::random_suffix(6));
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .context("creating a pgoutput slot (is wal_level=logical?)")?;
    let rows = client
        .query(
            "SELECT plugin, slot_type FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    let result = match rows.first() {
        Some(row) => {
            let plugin: String = row.get(0);
            let kind: String = row.get(1);
            if (plugin.as_str(), kind.as_str()) == ("pgoutput", "logical") {
                Ok(())
            } else {
                Err(anyhow!("slot {slot} is {kind} with plugin {plugin}"))
            }
        }
        None => Err(anyhow!("slot {slot} missing from pg_replication_slots")),
    };
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await?;
    let left = client
        .query(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    if !left.is_empty() {
        bail!("slot {slot} still exists after pg_drop_replication_slot");
    }
    drop(client);
    let _ = connection.await;
    result
}
