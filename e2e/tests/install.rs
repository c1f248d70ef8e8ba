//! Installing Ferry the Kubernetes way, against the local stack: the Helm chart renders and
//! the real API server accepts it, the kustomize base is the chart's defaults, and a
//! `helm install` runs the operator as pods under the chart's own RBAC (in-cluster config,
//! leader election) that turn a KafkaConnector into running task pods.

use std::process::Output;
use std::time::Duration;

use ferry_e2e::harness::{is_pod_ready, random_suffix, wait_for_named, Stack, TestNamespace};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn chart(stack: &Stack) -> String {
    stack.repo_root.join("helm/ferry").display().to_string()
}

/// `helm template` with extra arguments; panics with helm's output when it fails.
async fn render(stack: &Stack, args: &[&str]) -> String {
    let chart = chart(stack);
    let mut all = vec![
        "template",
        "ferry",
        chart.as_str(),
        "--namespace",
        "ferry-system",
    ];
    all.extend_from_slice(args);
    let out = stack.helm(&all).await.expect("run helm");
    assert!(
        out.status.success(),
        "helm template {args:?} failed: {}",
        text(&out)
    );
    String::from_utf8(out.stdout).expect("helm prints UTF-8")
}

/// Server-side dry run of a manifest through the real API server.
async fn dry_run(stack: &Stack, manifest: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("manifest.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    stack
        .kubectl([
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            file.to_str().expect("utf-8 path"),
        ])
        .await
        .expect("run kubectl")
}

async fn ensure_namespace(stack: &Stack, name: &str) {
    let out = stack
        .kubectl(["create", "namespace", name])
        .await
        .expect("run kubectl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("AlreadyExists"),
        "create namespace {name}: {}",
        text(&out)
    );
}

/// YAML documents of a multi-document manifest, parsed, without empty ones.
fn documents(manifest: &str) -> Vec<serde_yaml::Value> {
    manifest
        .split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<serde_yaml::Value>(doc).ok())
        .filter(|v| !v.is_null())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_lints_renders_and_the_api_server_accepts_it() {
    let stack = Stack::from_env().expect("the local stack");
    let chart = chart(&stack);
    let out = stack
        .helm(["lint", "--strict", chart.as_str()])
        .await
        .expect("run helm");
    assert!(out.status.success(), "helm lint: {}", text(&out));

    ensure_namespace(&stack, "ferry-system").await;
    for args in [
        &[][..],
        &["--set", "watch.scope=namespace"][..],
        &[
            "--set",
            "watch.scope=namespace",
            "--set",
            "watch.namespace=default",
        ][..],
        &["--set", "rbac.readSecrets=true", "--set", "replicaCount=1"][..],
    ] {
        let manifest = render(&stack, args).await;
        let out = dry_run(&stack, &manifest).await;
        assert!(
            out.status.success(),
            "the API server refused the chart rendered with {args:?}: {}",
            text(&out)
        );
    }

    // Namespaced watch: nothing cluster-wide, and the operator is told its namespace.
    let manifest = render(&stack, &["--set", "watch.scope=namespace"]).await;
    let kinds: Vec<String> = documents(&manifest)
        .iter()
        .filter_map(|d| d["kind"].as_str().map(str::to_string))
        .collect();
    assert!(!kinds.iter().any(|k| k.starts_with("Cluster")), "{kinds:?}");
    assert!(manifest.contains("--namespace=ferry-system"), "{manifest}");

    // Secrets are readable only when asked for.
    let default = render(&stack, &[]).await;
    assert!(!default.contains("secrets"), "{default}");
    let with_secrets = render(&stack, &["--set", "rbac.readSecrets=true"]).await;
    assert!(
        with_secrets.contains("resources: [secrets]"),
        "{with_secrets}"
    );

    // values.schema.json rejects bad values at install, naming the value.
    for (args, expect) in [
        (&["--set", "replicaCount=-1"][..], "/replicaCount"),
        (&["--set", "watch.scope=everything"][..], "/watch/scope"),
        (&["--set", "logFormat=xml"][..], "/logFormat"),
        (&["--set", "nosuchvalue=1"][..], "nosuchvalue"),
    ] {
        let mut all = vec!["template", "ferry", chart.as_str()];
        all.extend_from_slice(args);
        let out = stack.helm(&all).await.expect("run helm");
        assert!(!out.status.success(), "helm accepted {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(expect),
            "error for {args:?} should name {expect}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_base_is_the_chart_with_default_values() {
    let stack = Stack::from_env().expect("the local stack");
    let rendered = render(&stack, &["--set", "managedBy=kustomize"]).await;
    let base = std::fs::read_to_string(stack.repo_root.join("manifests/base/ferry.yaml"))
        .expect("read manifests/base/ferry.yaml");
    assert_eq!(
        documents(&base),
        documents(&rendered),
        "manifests/base/ferry.yaml differs from the Helm chart's defaults: run e2e/gen-manifests"
    );

    let out = stack
        .kubectl([
            "kustomize",
            stack.repo_root.join("manifests/base").to_str().unwrap(),
        ])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl kustomize: {}", text(&out));
    let built = String::from_utf8_lossy(&out.stdout).to_string();
    let kinds: Vec<String> = documents(&built)
        .iter()
        .filter_map(|d| d["kind"].as_str().map(str::to_string))
        .collect();
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} in the kustomize base: {kinds:?}"
        );
    }
    let out = stack
        .kubectl([
            "apply",
            "--server-side",
            "--dry-run=server",
            "-k",
            stack.repo_root.join("manifests/base").to_str().unwrap(),
        ])
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply -k (dry run): {}",
        text(&out)
    );
}

async fn operator_pods(ns: &TestNamespace, release: &str) -> Vec<Pod> {
    ns.api::<Pod>()
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/name=ferry-operator,app.kubernetes.io/instance={release}"
        )))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn lease_holder(ns: &TestNamespace, release: &str) -> Option<String> {
    ns.api::<Lease>()
        .get_opt(&format!("{release}-ferry"))
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_runs_the_operator_in_cluster_under_its_own_rbac() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    // The chart installs the CRD only when it is missing; make sure it is the current one.
    let crd = stack.repo_root.join("crds/kafkaconnector.yaml");
    let out = stack
        .kubectl([
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crd.to_str().unwrap(),
        ])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "apply the CRD: {}", text(&out));
    let ns = TestNamespace::create(&client, "helm")
        .await
        .expect("namespace");
    let release = format!("r{}", random_suffix(4));

    let chart = chart(&stack);
    let out = stack
        .helm([
            "install",
            release.as_str(),
            chart.as_str(),
            "--namespace",
            ns.name.as_str(),
            "--set",
            "watch.scope=namespace",
            "--wait",
            "--timeout",
            "120s",
        ])
        .await
        .expect("run helm");
    assert!(out.status.success(), "helm install: {}", text(&out));

    // Two operator replicas, Ready, running as the chart's ServiceAccount; one holds the Lease.
    let pods = wait_for_named("2 ready operator pods", Duration::from_secs(90), || async {
        let pods = operator_pods(&ns, &release).await;
        (pods.len() == 2 && pods.iter().all(is_pod_ready)).then_some(pods)
    })
    .await
    .expect("operator pods");
    for pod in &pods {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.service_account_name.as_deref(),
            Some(format!("{release}-ferry").as_str())
        );
    }
    let holder = wait_for_named("a leader", Duration::from_secs(60), || async {
        lease_holder(&ns, &release).await
    })
    .await
    .expect("leader");
    let leader = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .find(|name| holder.starts_with(name.as_str()))
        .unwrap_or_else(|| panic!("the lease holder {holder} is none of the operator pods"));

    // The operator, with only its chart RBAC, turns a connector into running task pods.
    let connector = format!(
        "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: gen, namespace: {ns}}}\n\
         spec:\n  kafka: {{bootstrapServers: '{bootstrap}'}}\n  source: {{datagen: {{topic: helm-{ns}, ratePerSecond: 20}}}}\n  tasks: 2\n",
        ns = ns.name,
        bootstrap = stack.kafka_bootstrap,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen.yaml");
    std::fs::write(&file, connector).unwrap();
    let out = stack
        .kubectl(["apply", "-f", file.to_str().unwrap()])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "apply the connector: {}", text(&out));
    wait_for_named("2 running task pods", Duration::from_secs(90), || async {
        let pods = ns
            .api::<Pod>()
            .list(&ListParams::default().labels("ferry.rs/connector=gen"))
            .await
            .ok()?;
        (pods.items.len() == 2 && pods.items.iter().all(is_pod_ready)).then_some(())
    })
    .await
    .expect("task pods");

    // Deleting the leader hands the Lease to the other replica.
    let out = stack
        .kubectl([
            "delete",
            "pod",
            "-n",
            ns.name.as_str(),
            leader.as_str(),
            "--wait=false",
        ])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "delete the leader: {}", text(&out));
    wait_for_named("a new leader", Duration::from_secs(90), || async {
        let holder = lease_holder(&ns, &release).await?;
        (!holder.starts_with(leader.as_str())).then_some(())
    })
    .await
    .expect("leader hand-over");

    let out = stack
        .helm([
            "uninstall",
            release.as_str(),
            "--namespace",
            ns.name.as_str(),
            "--wait",
        ])
        .await
        .expect("run helm");
    assert!(out.status.success(), "helm uninstall: {}", text(&out));
    ns.cleanup().await.expect("namespace cleanup");
}
