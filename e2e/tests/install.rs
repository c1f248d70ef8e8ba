//! Installing Ferry the Kubernetes way, against the local stack: the Helm chart renders and
//! the real API server accepts it (monitoring objects included, against minimal
//! monitoring.coreos.com CRDs from `tests/fixtures/`), its alerts and dashboard read only
//! metrics the operator and the runner export, every example under `manifests/examples/`
//! is accepted, the kustomize base is the chart's defaults, and both `helm install` and
//! `kubectl apply -k` run the operator as pods under the chart's own RBAC (in-cluster config,
//! leader election) that turn a KafkaConnector into running task pods; upgrade and uninstall
//! leave nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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

    // Monitoring, off by default; every monitoring object, in both watch scopes, is accepted
    // by the API server (with the minimal monitoring.coreos.com CRDs of tests/fixtures).
    let default = render(&stack, &[]).await;
    assert!(!default.contains("monitoring.coreos.com"), "{default}");
    apply_monitoring_crds(&stack).await;
    let all_monitoring = [
        "--set",
        "monitoring.operator.serviceMonitor=true",
        "--set",
        "monitoring.tasks.podMonitor=true",
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.grafanaDashboard.enabled=true",
        "--set",
        "monitoring.labels.release=prometheus",
    ];
    for args in [
        &all_monitoring[..],
        &[
            "--set",
            "watch.scope=namespace",
            "--set",
            "monitoring.operator.podMonitor=true",
            "--set",
            "monitoring.tasks.podMonitor=true",
            "--set",
            "monitoring.prometheusRule.enabled=true",
        ][..],
    ] {
        let manifest = render(&stack, args).await;
        let out = dry_run(&stack, &manifest).await;
        assert!(
            out.status.success(),
            "the API server refused the monitoring objects rendered with {args:?}: {}",
            text(&out)
        );
    }
    let monitored = documents(&render(&stack, &all_monitoring).await);
    let kinds: BTreeSet<&str> = monitored
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    for kind in [
        "Service",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "ConfigMap",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} with monitoring on: {kinds:?}"
        );
    }
    // The task PodMonitor selects the pods the operator builds, on their admin port.
    let tasks = monitored
        .iter()
        .find(|d| {
            d["kind"] == "PodMonitor"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-tasks"))
        })
        .expect("the task PodMonitor");
    let pod_labels = ferry_operator::build::connector_labels("orders");
    let selector = tasks["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("matchLabels");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        let key = key.as_str().expect("label key");
        assert_eq!(
            pod_labels.get(key).map(String::as_str),
            value.as_str(),
            "the task PodMonitor selects {key}={value:?}, which task pods do not carry"
        );
    }
    assert_eq!(
        tasks["spec"]["podMetricsEndpoints"][0]["port"].as_str(),
        Some(ferry_operator::names::ADMIN_PORT_NAME)
    );
    // The dashboard ConfigMap carries the sidecar's label and the dashboard file.
    let dashboard = monitored
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the dashboard ConfigMap");
    assert_eq!(
        dashboard["metadata"]["labels"]["grafana_dashboard"].as_str(),
        Some("1")
    );
    let file = std::fs::read_to_string(stack.repo_root.join("helm/ferry/dashboards/ferry.json"))
        .expect("read the dashboard");
    assert_eq!(
        dashboard["data"]["ferry.json"].as_str().map(str::trim_end),
        Some(file.trim_end())
    );

    // Namespaced watch: nothing cluster-wide, and the operator is told its namespace.
    let manifest = render(&stack, &["--set", "watch.scope=namespace"]).await;
    let kinds: Vec<String> = documents(&manifest)
        .iter()
        .filter_map(|d| d["kind"].as_str().map(str::to_string))
        .collect();
    assert!(!kinds.iter().any(|k| k.starts_with("Cluster")), "{kinds:?}");
    assert!(manifest.contains("--namespace=ferry-system"), "{manifest}");

    // The secret access policy is on by default, and its binding covers the watched
    // namespace only when the operator watches one.
    let of_kind = |manifest: &str, kind: &str| -> Vec<serde_yaml::Value> {
        documents(manifest)
            .into_iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    };
    let policy_binding = |manifest: &str| {
        let policies = of_kind(manifest, "ValidatingAdmissionPolicy");
        let bindings = of_kind(manifest, "ValidatingAdmissionPolicyBinding");
        assert_eq!((policies.len(), bindings.len()), (1, 1), "{manifest}");
        assert_eq!(
            bindings[0]["spec"]["policyName"],
            policies[0]["metadata"]["name"]
        );
        bindings[0].clone()
    };
    assert!(policy_binding(&default)["spec"]["matchResources"].is_null());
    assert_eq!(
        policy_binding(&manifest)["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
            ["kubernetes.io/metadata.name"]
            .as_str(),
        Some("ferry-system")
    );
    let without = render(&stack, &["--set", "admission.secretAccessPolicy=false"]).await;
    assert!(of_kind(&without, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&without, "ValidatingAdmissionPolicyBinding").is_empty());

    // Secrets are readable only when asked for.
    let rbac_rules = |manifest: &str| -> String {
        ["Role", "ClusterRole"]
            .iter()
            .flat_map(|kind| of_kind(manifest, kind))
            .map(|role| serde_yaml::to_string(&role["rules"]).unwrap_or_default())
            .collect()
    };
    assert!(!rbac_rules(&default).contains("secrets"), "{default}");
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
        (
            &[
                "--set",
                "monitoring.operator.serviceMonitor=true",
                "--set",
                "monitoring.operator.podMonitor=true",
            ][..],
            "/monitoring/operator",
        ),
        (
            &["--set", "monitoring.interval=30 seconds"][..],
            "/monitoring/interval",
        ),
        (&["--set", "resources.limit.memory=1Gi"][..], "/resources"),
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
    // manifests/monitoring holds the chart's monitoring objects, and the API server takes them.
    let rendered = render(
        &stack,
        &[
            "--set",
            "managedBy=kustomize",
            "--set",
            "monitoring.operator.podMonitor=true",
            "--set",
            "monitoring.tasks.podMonitor=true",
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--set",
            "monitoring.grafanaDashboard.enabled=true",
            "--show-only",
            "templates/monitoring.yaml",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
    )
    .await;
    let monitoring =
        std::fs::read_to_string(stack.repo_root.join("manifests/monitoring/monitoring.yaml"))
            .expect("read manifests/monitoring/monitoring.yaml");
    assert_eq!(
        documents(&monitoring),
        documents(&rendered),
        "manifests/monitoring/monitoring.yaml differs from the Helm chart: run e2e/gen-manifests"
    );
    apply_monitoring_crds(&stack).await;
    ensure_namespace(&stack, "ferry-system").await;
    let out = stack
        .kubectl([
            "apply",
            "--server-side",
            "--dry-run=server",
            "-k",
            stack
                .repo_root
                .join("manifests/monitoring")
                .to_str()
                .expect("utf-8 path"),
        ])
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply -k manifests/monitoring (dry run): {}",
        text(&out)
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
    apply_current_crd(&stack).await;
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
    run_datagen_connector(&stack, &ns, 2).await;

    // The Postgres examples, pointed at the stack's PostgreSQL and Kafka, make a working
    // pipeline through the in-cluster operator: rows of one database arrive in another.
    run_postgres_example_pipeline(&stack, &ns).await;

    // RBAC: the operator's ServiceAccount manages connectors and pods in the watched
    // namespace, and reads no Secrets, there or anywhere else.
    let subject = format!("system:serviceaccount:{}:{release}-ferry", ns.name);
    for (verb, resource, namespace, allowed) in [
        ("list", "kafkaconnectors.ferry.rs", ns.name.as_str(), true),
        ("create", "pods", ns.name.as_str(), true),
        ("get", "secrets", ns.name.as_str(), false),
        ("list", "secrets", ns.name.as_str(), false),
        ("get", "secrets", "default", false),
        ("list", "pods", "default", false),
        ("list", "kafkaconnectors.ferry.rs", "default", false),
        ("create", "clusterroles", "default", false),
    ] {
        assert_eq!(
            can_i(&stack, &subject, verb, resource, namespace).await,
            allowed,
            "can {subject} {verb} {resource} in {namespace}?"
        );
    }

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

    // helm upgrade with changed values: one replica, text logs, Secrets readable in the
    // watched namespace only.
    let out = stack
        .helm([
            "upgrade",
            release.as_str(),
            chart.as_str(),
            "--namespace",
            ns.name.as_str(),
            "--reuse-values",
            "--set",
            "replicaCount=1",
            "--set",
            "logFormat=text",
            "--set",
            "rbac.readSecrets=true",
            "--wait",
            "--timeout",
            "120s",
        ])
        .await
        .expect("run helm");
    assert!(out.status.success(), "helm upgrade: {}", text(&out));
    let pods = wait_operator_pods(&ns, &release, 1).await;
    let args = pods[0].spec.as_ref().expect("pod spec").containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(args.iter().any(|a| a == "--log-format=text"), "{args:?}");
    assert!(can_i(&stack, &subject, "get", "secrets", &ns.name).await);
    assert!(!can_i(&stack, &subject, "get", "secrets", "default").await);
    run_datagen_connector(&stack, &ns, 2).await;

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
    assert_nothing_left(&stack, &ns.name, &release, &format!("{release}-ferry")).await;
    ns.cleanup().await.expect("namespace cleanup");
}

/// Applies the minimal monitoring.coreos.com CRDs of `tests/fixtures/` and waits until the
/// API server serves them.
async fn apply_monitoring_crds(stack: &Stack) {
    let file = stack
        .repo_root
        .join("e2e/tests/fixtures/monitoring-crds.yaml");
    let file = file.to_str().expect("utf-8 path");
    let out = stack
        .kubectl(["apply", "--server-side", "--force-conflicts", "-f", file])
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "apply the monitoring CRDs: {}",
        text(&out)
    );
    let out = stack
        .kubectl([
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "-f",
            file,
        ])
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "monitoring CRDs established: {}",
        text(&out)
    );
}

/// Names and label names of the series in a Prometheus text exposition.
fn exposition_series(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for line in text.lines() {
        // `# TYPE <name> <type>`: the series names of a family, even one without series yet.
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    _ => &[""],
                };
                names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        names.insert(line[..end].to_string());
        let Some(body) = line[end..].strip_prefix('{') else {
            continue;
        };
        // `key="value",...}`: label values are quoted and may hold any character.
        let mut rest = body;
        while let Some((key, after)) = rest.split_once("=\"") {
            labels.insert(key.trim_start_matches(',').to_string());
            let mut escaped = false;
            let close = after
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map(|(i, _)| i)
                .unwrap_or(after.len());
            rest = &after[(close + 1).min(after.len())..];
            if rest.starts_with('}') {
                break;
            }
        }
    }
    (names, labels)
}

/// Every metric name (`ferry_...`) an expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric() || bytes[i] == b'_')
            {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("ferry_") {
                names.insert(word.to_string());
            }
        } else if c == '"' {
            // Skip label values.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    names
}

/// Label names in the `by (...)` clauses of an expression.
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    expr.match_indices("by (")
        .filter_map(|(i, m)| {
            let rest = &expr[i + m.len()..];
            rest.find(')').map(|end| &rest[..end])
        })
        .flat_map(|list| list.split(','))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The values a label matcher `label="v"` or `label=~"a|b"` compares with.
fn matcher_values(expr: &str, label: &str) -> Vec<String> {
    let mut values = Vec::new();
    for op in ["=\"", "=~\""] {
        let needle = format!("{label}{op}");
        for (i, _) in expr.match_indices(&needle) {
            let rest = &expr[i + needle.len()..];
            if let Some(end) = rest.find('"') {
                values.extend(rest[..end].split('|').map(str::to_string));
            }
        }
    }
    values
}

/// Why a PromQL expression is malformed, if it is: unbalanced brackets or quotes, or an
/// empty expression. (No PromQL parser is available here; the API server does not check
/// expressions either.)
fn promql_shape_error(expr: &str) -> Option<String> {
    if expr.trim().is_empty() {
        return Some("empty expression".into());
    }
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in expr.chars() {
        if in_string {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '{' | '[' => stack.push(c),
            ')' | '}' | ']' => {
                let open = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                if stack.pop() != Some(open) {
                    return Some(format!("unbalanced `{c}`"));
                }
            }
            _ => {}
        }
    }
    if in_string {
        return Some("unterminated string".into());
    }
    if let Some(open) = stack.pop() {
        return Some(format!("unclosed `{open}`"));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_read_only_metrics_that_ferry_exports() {
    let stack = Stack::from_env().expect("the local stack");

    // What the operator and a task export, from their own metric registries.
    let operator = ferry_operator::metrics::Metrics::new();
    operator.reconciled();
    operator.failed("Conflict");
    operator.task_restarted(1);
    operator.observe_duration(Duration::from_millis(3));
    operator.set_tasks("shop/orders", BTreeMap::from([("Running".to_string(), 1)]));
    operator.offset_reset("failed");
    let decision = ferry_operator::autoscale::Decision {
        desired: 2,
        recommendation: 2,
        reason: "lag 2 / 1 per task".into(),
        lag: Some(2),
        persistent_lag: Some(0),
        consumed_per_second: Some(1.0),
        produced_per_second: Some(1.0),
    };
    operator.set_autoscaler("shop", "orders", &decision, 1);
    operator.set_sink_offsets(
        "shop",
        "orders",
        vec![ferry_operator::metrics::SinkPartitionOffset {
            topic: "orders".into(),
            partition: 0,
            committed: Some(1),
            lag: 1,
        }],
    );
    let slot = ferry_crds::status::ReplicationSlotStatus {
        name: "ferry_shop_cdc".into(),
        retained_wal_bytes: Some(1),
        ..Default::default()
    };
    operator.set_replication_slot("shop", "cdc", Some((&slot, false)));
    let task = ferry_runner::metrics::TaskMetrics::new("shop", "orders", 0);
    task.set_replication_slot(ferry_crds::contract::ReplicationSlotReport {
        slot: "ferry_shop_cdc".into(),
        retained_wal_bytes: Some(1),
        ..Default::default()
    });
    task.records_in(ferry_runner::metrics::PipelineStage::Read, 1);
    task.records_out(1);
    task.filtered();
    task.retry();
    task.dlq_record();
    task.set_lag(1);
    task.committed();
    task.batch_written(Duration::from_millis(2));
    let mut exported = BTreeSet::new();
    let mut labels = BTreeSet::from(["job".to_string(), "instance".to_string(), "pod".to_string()]);
    for text in [operator.encode().expect("encode"), task.encode()] {
        let (names, label_names) = exposition_series(&text);
        exported.extend(names);
        labels.extend(label_names);
    }
    assert!(exported.contains("ferry_task_lag"), "{exported:?}");
    assert!(
        exported.contains("ferry_operator_reconciles_total"),
        "{exported:?}"
    );

    // Every expression of the alerts and the dashboard.
    let manifest = render(&stack, &["--set", "monitoring.prometheusRule.enabled=true"]).await;
    let rule = documents(&manifest)
        .into_iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("the PrometheusRule");
    let mut exprs: Vec<(String, String)> = Vec::new();
    let mut alerts = BTreeSet::new();
    for group in rule["spec"]["groups"].as_sequence().expect("groups") {
        for r in group["rules"].as_sequence().expect("rules") {
            let alert = r["alert"].as_str().expect("alert name").to_string();
            assert!(alerts.insert(alert.clone()), "alert {alert} defined twice");
            for key in ["summary", "description"] {
                assert!(
                    r["annotations"][key]
                        .as_str()
                        .is_some_and(|a| !a.trim().is_empty()),
                    "alert {alert} has no {key}"
                );
            }
            assert!(
                r["labels"]["severity"].as_str().is_some(),
                "alert {alert} has no severity"
            );
            let expr = r["expr"].as_str().expect("expr").to_string();
            // Every `$labels.x` an annotation shows is a label the expression's result has:
            // its grouping labels when it aggregates, the series' labels otherwise.
            let grouping = grouping_labels(&expr);
            for key in ["summary", "description"] {
                let annotation = r["annotations"][key].as_str().unwrap_or_default();
                for (i, m) in annotation.match_indices("$labels.") {
                    let label: String = annotation[i + m.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    let known = if grouping.is_empty() {
                        labels.contains(&label)
                    } else {
                        grouping.contains(&label)
                    };
                    assert!(
                        known,
                        "alert {alert}: {key} shows $labels.{label}, which `{expr}` does not keep"
                    );
                }
            }
            exprs.push((alert, expr));
        }
    }
    for needed in [
        "FerryOperatorDown",
        "FerryOperatorNoLeader",
        "FerryTasksFailing",
        "FerryTasksRestarting",
        "FerryReplicationSlotNotAdvancing",
        "FerryTasksStalled",
        "FerryTaskNoProgress",
        "FerryConnectorLagGrowing",
        "FerryDeadLetterQueueReceiving",
        "FerryOffsetResetFailed",
    ] {
        assert!(alerts.contains(needed), "no alert {needed}: {alerts:?}");
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stack.repo_root.join("helm/ferry/dashboards/ferry.json"))
            .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut panel_ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let id = panel["id"].as_i64().expect("panel id");
        assert!(panel_ids.insert(id), "panel id {id} used twice");
        let title = panel["title"].as_str().expect("panel title").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("target expr").to_string();
            exprs.push((format!("panel {title}"), expr));
        }
    }

    let phases = [
        ferry_crds::status::task_phase::PENDING,
        ferry_crds::status::task_phase::RUNNING,
        ferry_crds::status::task_phase::PAUSED,
        ferry_crds::status::task_phase::STALLED,
        ferry_crds::status::task_phase::BACKING_OFF,
        ferry_crds::status::task_phase::FAILED,
        ferry_crds::status::task_phase::SUCCEEDED,
    ];
    let mut read = BTreeSet::new();
    for (owner, expr) in &exprs {
        if let Some(error) = promql_shape_error(expr) {
            panic!("{owner}: {error} in `{expr}`");
        }
        let names = metric_names(expr);
        for name in &names {
            assert!(
                exported.contains(name),
                "{owner} reads {name}, which neither the operator nor the runner exports \
                 (exported: {exported:?})"
            );
        }
        for label in grouping_labels(expr) {
            assert!(
                labels.contains(&label),
                "{owner} groups by unknown label {label}"
            );
        }
        for state in matcher_values(expr, "state") {
            assert!(
                phases.contains(&state.as_str()),
                "{owner}: no task phase {state}"
            );
        }
        read.extend(names);
    }
    // The dashboard and alerts cover the metrics an operator of connectors watches.
    for name in [
        "ferry_task_records_out_total",
        "ferry_task_lag",
        "ferry_task_errors_total",
        "ferry_task_dlq_records_total",
        "ferry_task_last_commit_timestamp_seconds",
        "ferry_task_batch_duration_seconds_bucket",
        "ferry_operator_tasks",
        "ferry_operator_task_restarts_total",
        "ferry_operator_reconcile_errors_total",
        "ferry_operator_sink_partition_lag",
        "ferry_operator_offset_resets_total",
        "ferry_operator_autoscaler_desired_tasks",
    ] {
        assert!(
            read.contains(name),
            "neither an alert nor a panel reads {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_accepted_by_the_api_server_and_each_plugin_has_one() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_current_crd(&stack).await;
    let ns = TestNamespace::create(&client, "examples")
        .await
        .expect("namespace");
    let dir = stack.repo_root.join("manifests/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read manifests/examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut plugins = BTreeSet::new();
    for file in &files {
        let yaml = std::fs::read_to_string(file).expect("read the example");
        assert!(
            yaml.starts_with('#'),
            "{} should start with a comment saying what it shows",
            file.display()
        );
        let connectors: Vec<serde_yaml::Value> = documents(&yaml)
            .into_iter()
            .filter(|d| d["kind"] == "KafkaConnector")
            .collect();
        assert!(
            !connectors.is_empty(),
            "no KafkaConnector in {}",
            file.display()
        );
        for c in &connectors {
            for (side, settings) in [
                ("source", &[][..]),
                ("sink", &["topics", "topicsRegex"][..]),
            ] {
                if let Some(block) = c["spec"][side].as_mapping() {
                    for key in block.keys().filter_map(|k| k.as_str()) {
                        if !settings.contains(&key) {
                            plugins.insert(format!("{side}.{key}"));
                        }
                    }
                }
            }
        }
        let out = stack
            .kubectl([
                "apply",
                "--server-side",
                "--dry-run=server",
                "-n",
                ns.name.as_str(),
                "-f",
                file.to_str().expect("utf-8 path"),
            ])
            .await
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "the API server refused {}: {}",
            file.display(),
            text(&out)
        );
    }
    for plugin in ferry_crds::plugins::SOURCE_PLUGINS {
        assert!(
            plugins.contains(&format!("source.{plugin}")),
            "no example under manifests/examples/ uses the {plugin} source"
        );
    }
    for plugin in ferry_crds::plugins::SINK_PLUGINS {
        assert!(
            plugins.contains(&format!("sink.{plugin}")),
            "no example under manifests/examples/ uses the {plugin} sink"
        );
    }
    ns.cleanup().await.expect("namespace cleanup");
}

/// Applies the current `crds/kafkaconnector.yaml` (the chart and the base install it only
/// when it is missing).
async fn apply_current_crd(stack: &Stack) {
    let crd = stack.repo_root.join("crds/kafkaconnector.yaml");
    let out = stack
        .kubectl([
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crd.to_str().expect("utf-8 path"),
        ])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "apply the CRD: {}", text(&out));
}

/// `kubectl auth can-i VERB RESOURCE -n NAMESPACE --as SUBJECT`.
async fn can_i(stack: &Stack, subject: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let out = stack
        .kubectl([
            "auth", "can-i", verb, resource, "-n", namespace, "--as", subject,
        ])
        .await
        .expect("run kubectl");
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {verb} {resource} -n {namespace} --as {subject}: {}",
        text(&out)
    );
    answer == "yes"
}

/// Waits until no object labelled `app.kubernetes.io/instance=<instance>` of the kinds an
/// install creates is left in `namespace`, nor a cluster-wide one named `cluster_name`.
async fn assert_nothing_left(stack: &Stack, namespace: &str, instance: &str, cluster_name: &str) {
    let selector = format!("app.kubernetes.io/instance={instance}");
    let left = wait_for_named(
        "no operator objects left",
        Duration::from_secs(90),
        || async {
            let out = stack
                .kubectl([
                    "get",
                    "deployments,replicasets,pods,serviceaccounts,roles,rolebindings,leases,services,configmaps",
                    "-n",
                    namespace,
                    "-l",
                    selector.as_str(),
                    "-o",
                    "name",
                ])
                .await
                .ok()?;
            let cluster = stack
                .kubectl(["get", "clusterroles,clusterrolebindings", "-o", "name"])
                .await
                .ok()?;
            let mut left: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            left.extend(
                String::from_utf8_lossy(&cluster.stdout)
                    .lines()
                    .filter(|l| l.rsplit('/').next() == Some(cluster_name))
                    .map(str::to_string),
            );
            (out.status.success() && cluster.status.success() && left.is_empty()).then_some(())
        },
    )
    .await;
    if left.is_err() {
        let out = stack
            .kubectl([
                "get",
                "all,sa,roles,rolebindings,leases",
                "-n",
                namespace,
                "-l",
                selector.as_str(),
            ])
            .await
            .expect("run kubectl");
        panic!("objects left after the uninstall: {}", text(&out));
    }
}

/// Waits for `count` Ready operator pods (not terminating) of `instance` and returns them.
async fn wait_operator_pods(ns: &TestNamespace, instance: &str, count: usize) -> Vec<Pod> {
    wait_for_named(
        &format!("{count} ready operator pod(s)"),
        Duration::from_secs(120),
        || async {
            let pods: Vec<Pod> = operator_pods(ns, instance)
                .await
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            (pods.len() == count && pods.iter().all(is_pod_ready)).then_some(pods)
        },
    )
    .await
    .expect("operator pods")
}

/// Applies a datagen connector `gen` in `ns` and waits for its `tasks` ready task pods.
async fn run_datagen_connector(stack: &Stack, ns: &TestNamespace, tasks: usize) {
    let connector = format!(
        "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: gen, namespace: {ns}}}\n\
         spec:\n  kafka: {{bootstrapServers: '{bootstrap}'}}\n  source: {{datagen: {{topic: install-{ns}, ratePerSecond: 20}}}}\n  tasks: {tasks}\n",
        ns = ns.name,
        bootstrap = stack.kafka_bootstrap,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("gen.yaml");
    std::fs::write(&file, connector).expect("write the connector");
    let out = stack
        .kubectl(["apply", "-f", file.to_str().expect("utf-8 path")])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "apply the connector: {}", text(&out));
    wait_for_named(
        &format!("{tasks} running task pods"),
        Duration::from_secs(90),
        || async {
            let pods = ns
                .api::<Pod>()
                .list(&ListParams::default().labels("ferry.rs/connector=gen"))
                .await
                .ok()?;
            (pods.items.len() == tasks && pods.items.iter().all(is_pod_ready)).then_some(())
        },
    )
    .await
    .expect("task pods");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_base_installs_a_working_operator_and_delete_removes_it() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_current_crd(&stack).await;
    let ns = TestNamespace::create(&client, "kustomize")
        .await
        .expect("namespace");

    // An overlay, as a user writes one: the base in the test's namespace, without the CRD
    // and the Namespace (both shared on this cluster), cluster-wide names made unique, and
    // the operator watching only this namespace (other tests run their own operators).
    let overlay = tempfile::tempdir().expect("temp dir");
    let up = overlay
        .path()
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    let base = Path::new(&"../".repeat(up)).join(
        stack
            .repo_root
            .join("manifests/base")
            .strip_prefix("/")
            .expect("absolute repository path"),
    );
    let cluster_name = format!("{}-ferry", ns.name);
    let kustomization = format!(
        r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {base}
namespace: {ns}
patches:
  - target: {{kind: CustomResourceDefinition}}
    patch: |
      $patch: delete
      apiVersion: apiextensions.k8s.io/v1
      kind: CustomResourceDefinition
      metadata: {{name: kafkaconnectors.ferry.rs}}
  - target: {{kind: Namespace}}
    patch: |
      $patch: delete
      apiVersion: v1
      kind: Namespace
      metadata: {{name: ferry-system}}
  - target: {{kind: ClusterRole, name: ferry}}
    patch: |
      - {{op: replace, path: /metadata/name, value: {cluster_name}}}
  - target: {{kind: ClusterRoleBinding, name: ferry}}
    patch: |
      - {{op: replace, path: /metadata/name, value: {cluster_name}}}
      - {{op: replace, path: /roleRef/name, value: {cluster_name}}}
  - target: {{kind: Deployment, name: ferry}}
    patch: |
      - {{op: add, path: /spec/template/spec/containers/0/args/-, value: --namespace={ns}}}
"#,
        base = base.display(),
        ns = ns.name,
    );
    std::fs::write(overlay.path().join("kustomization.yaml"), kustomization)
        .expect("write the overlay");
    let overlay_dir = overlay.path().to_str().expect("utf-8 path").to_string();

    let out = stack
        .kubectl(["apply", "--server-side", "-k", overlay_dir.as_str()])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl apply -k: {}", text(&out));
    let pods = wait_operator_pods(&ns, "ferry", 2).await;
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("pod spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("ferry"));
    }
    run_datagen_connector(&stack, &ns, 1).await;
    // The base's RBAC is cluster-wide, and still reads no Secret anywhere.
    let subject = format!("system:serviceaccount:{}:ferry", ns.name);
    for (verb, resource, namespace, allowed) in [
        ("list", "kafkaconnectors.ferry.rs", "default", true),
        ("create", "pods", "default", true),
        ("get", "secrets", ns.name.as_str(), false),
        ("get", "secrets", "default", false),
        ("list", "secrets", "kube-system", false),
    ] {
        assert_eq!(
            can_i(&stack, &subject, verb, resource, namespace).await,
            allowed,
            "can {subject} {verb} {resource} in {namespace}?"
        );
    }

    let out = stack
        .kubectl(["delete", "-k", overlay_dir.as_str(), "--wait=true"])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl delete -k: {}", text(&out));
    assert_nothing_left(&stack, &ns.name, "ferry", &cluster_name).await;
    ns.cleanup().await.expect("namespace cleanup");
}

#[test]
fn default_images_are_the_dockerfiles_build_tags() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root");
    let read = |path: &str| {
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
    };
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read("helm/ferry/values.yaml")).expect("values.yaml");
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&read("helm/ferry/Chart.yaml")).expect("Chart.yaml");
    let version = chart["appVersion"].as_str().expect("appVersion");
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "the chart's appVersion is the crates' version"
    );
    for (dockerfile, repository) in [
        (
            "operator/Dockerfile",
            values["image"]["repository"].as_str(),
        ),
        (
            "runner/Dockerfile",
            values["runnerImage"]["repository"].as_str(),
        ),
    ] {
        let repository = repository.expect("image repository");
        let build = format!("docker build -f {dockerfile} -t {repository}:{version} .");
        let text = read(dockerfile);
        assert!(
            text.contains(&build),
            "{dockerfile} should document `{build}`"
        );
        assert!(
            text.contains("USER 65532:65532"),
            "{dockerfile} runs as non-root"
        );
        assert!(
            text.contains("FROM rust:1.95-slim-bookworm AS build"),
            "{dockerfile}"
        );
    }
    assert_eq!(
        ferry_operator::names::default_runner_image(),
        format!(
            "{}:{version}",
            values["runnerImage"]["repository"]
                .as_str()
                .unwrap_or_default()
        ),
        "the operator's built-in runner image is the chart's"
    );
}

/// A connection to database `database` of the stack's PostgreSQL.
async fn postgres(stack: &Stack, database: &str) -> tokio_postgres::Client {
    let base = stack
        .postgres_url
        .rsplit_once('/')
        .map_or(stack.postgres_url.as_str(), |(base, _)| base);
    let (client, connection) =
        tokio_postgres::connect(&format!("{base}/{database}"), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to database {database}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The documents of `manifests/examples/<file>`, with `edit` applied to each.
fn example(stack: &Stack, file: &str, edit: impl Fn(&mut serde_yaml::Value)) -> String {
    let yaml = std::fs::read_to_string(stack.repo_root.join("manifests/examples").join(file))
        .unwrap_or_else(|e| panic!("read manifests/examples/{file}: {e}"));
    documents(&yaml)
        .into_iter()
        .map(|mut doc| {
            edit(&mut doc);
            serde_yaml::to_string(&doc).expect("serialize the example")
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Applies a manifest into `ns` with kubectl.
async fn apply_in(stack: &Stack, ns: &TestNamespace, manifest: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("manifest.yaml");
    std::fs::write(&file, manifest).expect("write the manifest");
    let out = stack
        .kubectl([
            "apply",
            "-n",
            ns.name.as_str(),
            "-f",
            file.to_str().expect("utf-8 path"),
        ])
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply: {}\n{manifest}",
        text(&out)
    );
}

/// `source-postgres-cdc.yaml` and `sink-postgres.yaml` against the stack: rows inserted in
/// one database reach a copy in another, through Kafka and the in-cluster operator.
async fn run_postgres_example_pipeline(stack: &Stack, ns: &TestNamespace) {
    let suffix = random_suffix(6);
    let (source_db, copy_db, prefix) = (
        format!("shop_{suffix}"),
        format!("warehouse_{suffix}"),
        format!("shop{suffix}"),
    );
    let admin = postgres(stack, "postgres").await;
    for db in [&source_db, &copy_db] {
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap_or_else(|e| panic!("create database {db}: {e}"));
    }
    let source = postgres(stack, &source_db).await;
    source
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL);\
             INSERT INTO orders VALUES (1, 'ada'), (2, 'grace');",
        )
        .await
        .expect("create the source table");
    let copy = postgres(stack, &copy_db).await;
    copy.batch_execute("CREATE SCHEMA staging")
        .await
        .expect("create the staging schema");
    let port: i64 = stack
        .postgres_url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .expect("port in FERRY_POSTGRES_URL");
    let bootstrap = stack.kafka_bootstrap.clone();

    let cdc = example(stack, "source-postgres-cdc.yaml", |doc| {
        if doc["kind"] != "KafkaConnector" {
            return;
        }
        doc["spec"]["kafka"]["bootstrapServers"] = bootstrap.as_str().into();
        let plugin = &mut doc["spec"]["source"]["postgresCdc"];
        plugin["host"] = "127.0.0.1".into();
        plugin["port"] = port.into();
        plugin["database"] = source_db.as_str().into();
        plugin["user"] = "postgres".into();
        plugin["topicPrefix"] = prefix.as_str().into();
        plugin["tableIncludeList"] = vec![serde_yaml::Value::from("public\\.orders")].into();
    });
    apply_in(stack, ns, &cdc).await;
    // The sink reads the topics by regex: start it once the first topic exists.
    wait_for_named(
        "the CDC source to write the snapshot",
        Duration::from_secs(120),
        || async {
            let out = stack
                .kubectl([
                    "get",
                    "kc",
                    "shop-cdc",
                    "-n",
                    ns.name.as_str(),
                    "-o",
                    "json",
                ])
                .await
                .ok()?;
            let c: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (c["status"]["tasks"]["items"][0]["recordsOut"].as_i64()? >= 2).then_some(())
        },
    )
    .await
    .expect("snapshot written");
    let url = format!(
        "{}/{copy_db}",
        stack
            .postgres_url
            .rsplit_once('/')
            .map_or(stack.postgres_url.as_str(), |(base, _)| base)
    );
    let sink = example(stack, "sink-postgres.yaml", |doc| {
        if doc["kind"] == "Secret" {
            doc["stringData"]["url"] = url.as_str().into();
            return;
        }
        doc["spec"]["kafka"]["bootstrapServers"] = bootstrap.as_str().into();
        doc["spec"]["sink"]["topicsRegex"] = format!("{prefix}\\.public\\..*").into();
    });
    apply_in(stack, ns, &sink).await;

    // The snapshot, then a change streamed after the sink started.
    source
        .batch_execute("INSERT INTO orders VALUES (3, 'edsger'); UPDATE orders SET customer = 'ada l.' WHERE id = 1;")
        .await
        .expect("change the source table");
    let table = format!("staging.{prefix}_public_orders");
    let expected = vec!["1|ada l.", "2|grace", "3|edsger"];
    let rows = wait_for_named("the copy to match", Duration::from_secs(120), || async {
        let rows = copy
            .query(
                &format!("SELECT id::text || '|' || customer FROM {table} ORDER BY id"),
                &[],
            )
            .await
            .ok()?;
        let rows: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        (rows == expected).then_some(rows)
    })
    .await;
    if rows.is_err() {
        let out = stack
            .kubectl(["get", "kc", "-n", ns.name.as_str(), "-o", "yaml"])
            .await
            .expect("run kubectl");
        panic!("{table} never matched {expected:?}: {}", text(&out));
    }

    // Clean up: the connectors, the replication slot they leave, the databases.
    let out = stack
        .kubectl([
            "delete",
            "kc",
            "shop-cdc",
            "shop-to-warehouse",
            "-n",
            ns.name.as_str(),
            "--wait=true",
        ])
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "delete the pipeline: {}", text(&out));
    drop(source);
    drop(copy);
    let slot_gone = wait_for_named(
        "the replication slot to be released",
        Duration::from_secs(60),
        || async {
            admin
                .query(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE database = $1 AND NOT active",
                    &[&source_db],
                )
                .await
                .ok()?;
            let left = admin
                .query(
                    "SELECT 1 FROM pg_replication_slots WHERE database = $1",
                    &[&source_db],
                )
                .await
                .ok()?;
            left.is_empty().then_some(())
        },
    )
    .await;
    slot_gone.expect("replication slot dropped");
    for db in [&source_db, &copy_db] {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap_or_else(|e| panic!("drop database {db}: {e}"));
    }
}

/// `taskPodTemplate` becomes a ConfigMap mounted into the operator and named by
/// `--task-pod-template`; the file is one the operator accepts, the operator pods roll when
/// it changes, and a misspelt field is refused at install, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_pod_template_values_reach_the_operator_as_a_file_it_reads() {
    let stack = Stack::from_env().expect("the local stack");
    let template = r#"taskPodTemplate={"nodeSelector":{"pool":"connectors"},"labels":{"team":"platform"},"resources":{"limits":{"memory":"256Mi"}}}"#;
    let manifest = render(&stack, &["--set-json", template]).await;
    let docs = documents(&manifest);
    let config_map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "ferry-task-pod-template")
        .unwrap_or_else(|| panic!("no task pod template ConfigMap in\n{manifest}"));
    let file = config_map["data"]["task-pod-template.yaml"]
        .as_str()
        .expect("the template file");
    let parsed = ferry_operator::task_template::parse(file).expect("the operator reads it");
    assert_eq!(parsed.node_selector["pool"], "connectors");
    assert_eq!(parsed.labels["team"], "platform");
    assert!(parsed.resources.is_some());
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the operator Deployment");
    let pod = &deployment["spec"]["template"];
    let args: Vec<&str> = pod["spec"]["containers"][0]["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"--task-pod-template=/etc/ferry/operator/task-pod-template.yaml"),
        "{args:?}"
    );
    assert_eq!(
        pod["spec"]["volumes"][0]["configMap"]["name"],
        "ferry-task-pod-template"
    );
    let checksum = pod["metadata"]["annotations"]["checksum/task-pod-template"].clone();
    assert!(
        checksum.is_string(),
        "the operator rolls when the template changes"
    );
    let other = render(
        &stack,
        &[
            "--set-json",
            r#"taskPodTemplate={"labels":{"team":"data"}}"#,
        ],
    )
    .await;
    let other_checksum = documents(&other)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment")["spec"]["template"]["metadata"]["annotations"]
        ["checksum/task-pod-template"]
        .clone();
    assert_ne!(checksum, other_checksum);
    let plain = render(&stack, &[]).await;
    assert!(
        !plain.contains("task-pod-template"),
        "no template, no ConfigMap, volume or flag"
    );
    let chart = chart(&stack);
    let out = stack
        .helm(&[
            "template",
            "ferry",
            chart.as_str(),
            "--set-json",
            r#"taskPodTemplate={"nodeSelectr":{"pool":"connectors"}}"#,
        ])
        .await
        .expect("run helm");
    assert!(!out.status.success(), "a misspelt field is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nodeSelectr"),
        "{}",
        text(&out)
    );
}
