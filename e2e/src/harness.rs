//! Helpers shared by the end-to-end tests that run against the local stack (`e2e/stack up`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_e2e::harness::HarnessError> {
//! use ferry_e2e::harness::{self, Stack, TestNamespace};
//! let stack = Stack::from_env()?;
//! let client = stack.client().await?;
//! let ns = TestNamespace::create(&client, "demo").await?;
//! // ... create resources in `ns.name` ...
//! ns.cleanup().await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Label put on every namespace a test creates, so leftovers are easy to find and delete:
/// `kubectl delete ns -l ferry.rs/test=true`.
pub const TEST_NAMESPACE_LABEL: &str = "ferry.rs/test";

/// How often [`wait_for`] re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long [`TestNamespace::cleanup`] waits for the namespace to disappear.
pub const NAMESPACE_CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of the test harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The stack's env file does not exist.
    #[error("the local stack is not running: run e2e/stack up (no env file at {0})")]
    StackNotRunning(PathBuf),
    /// The stack's env file exists but could not be read.
    #[error("cannot read the stack env file {path}: {source}")]
    ReadEnvFile {
        /// The env file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A variable the tests need is set neither in the process nor in the env file.
    #[error("the stack env file {path} does not define {name}: re-run e2e/stack up")]
    MissingVariable {
        /// The env file.
        path: PathBuf,
        /// The missing variable.
        name: &'static str,
    },
    /// The kubeconfig could not be loaded.
    #[error("cannot load the stack kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What the harness was doing.
        action: String,
        /// The API error.
        source: kube::Error,
    },
    /// A command (kubectl, helm) could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A condition did not become true in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        timeout: Duration,
    },
}

/// The running local stack, as described by the env file `e2e/stack up` writes.
#[derive(Clone, Debug)]
pub struct Stack {
    /// Admin kubeconfig of the stack's API server.
    pub kubeconfig: PathBuf,
    /// Kafka bootstrap servers (`host:port`).
    pub kafka_bootstrap: String,
    /// PostgreSQL connection URL (superuser).
    pub postgres_url: String,
    /// MariaDB connection URL (root, database `ferry`).
    pub mysql_url: String,
    /// Directory of Kafka and Kafka Connect jars (for `java -cp "<dir>/*"`).
    pub kafka_libs: PathBuf,
    /// The workspace root (the directory holding the root `Cargo.toml`).
    pub repo_root: PathBuf,
    /// The stack's state directory (logs, pid files, certificates).
    pub stack_dir: PathBuf,
    /// Directory holding the stack's `kubectl`, when the env file names one.
    pub k8s_bin: Option<PathBuf>,
    /// The stack's `helm` binary, when the env file names one.
    pub helm: Option<PathBuf>,
}

impl Stack {
    /// Reads the stack description from the env file written by `e2e/stack up`:
    /// `${FERRY_STACK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-e2e/stack}/env`.
    /// Variables set in the process environment take precedence over the file.
    pub fn from_env() -> Result<Self, HarnessError> {
        let process: HashMap<String, String> = std::env::vars().collect();
        let dir = stack_dir(&process);
        let path = dir.join("env");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HarnessError::StackNotRunning(path))
            }
            Err(source) => return Err(HarnessError::ReadEnvFile { path, source }),
        };
        let mut vars = parse_env_file(&text);
        vars.extend(process);
        let get = |name: &'static str| -> Result<String, HarnessError> {
            vars.get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| HarnessError::MissingVariable {
                    path: path.clone(),
                    name,
                })
        };
        Ok(Stack {
            kubeconfig: PathBuf::from(get("KUBECONFIG")?),
            kafka_bootstrap: get("FERRY_KAFKA_BOOTSTRAP")?,
            postgres_url: get("FERRY_POSTGRES_URL")?,
            mysql_url: get("FERRY_MYSQL_URL")?,
            kafka_libs: PathBuf::from(get("FERRY_KAFKA_LIBS")?),
            repo_root: repo_root(),
            stack_dir: vars
                .get("FERRY_STACK_DIR")
                .map(PathBuf::from)
                .unwrap_or(dir),
            k8s_bin: get("FERRY_K8S_BIN").ok().map(PathBuf::from),
            helm: get("FERRY_HELM").ok().map(PathBuf::from),
        })
    }

    /// A Kubernetes client with the stack's admin credentials (never the caller's own
    /// `~/.kube/config`).
    pub async fn client(&self) -> Result<Client, HarnessError> {
        let kubeconfig_error = |message: String| HarnessError::Kubeconfig {
            path: self.kubeconfig.clone(),
            message,
        };
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| kubeconfig_error(e.to_string()))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| kubeconfig_error(e.to_string()))?;
        Client::try_from(config).map_err(|source| HarnessError::Kube {
            action: "building a client from the stack kubeconfig".into(),
            source,
        })
    }

    /// Path of the stack's `kubectl` (falls back to `kubectl` on `PATH`).
    pub fn kubectl_path(&self) -> PathBuf {
        match &self.k8s_bin {
            Some(dir) => dir.join("kubectl"),
            None => PathBuf::from("kubectl"),
        }
    }

    /// Path of the stack's `helm` (falls back to `helm` on `PATH`).
    pub fn helm_path(&self) -> PathBuf {
        self.helm.clone().unwrap_or_else(|| PathBuf::from("helm"))
    }

    /// Runs the stack's `kubectl` with the stack's kubeconfig and returns its output
    /// (a non-zero exit is not an error here: check `output.status`).
    pub async fn kubectl<I, S>(&self, args: I) -> Result<Output, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.run_with_kubeconfig(self.kubectl_path(), args).await
    }

    /// Runs the stack's `helm` with the stack's kubeconfig and returns its output.
    pub async fn helm<I, S>(&self, args: I) -> Result<Output, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.run_with_kubeconfig(self.helm_path(), args).await
    }

    /// Runs `program` with the stack's kubeconfig and returns its output.
    async fn run_with_kubeconfig<I, S>(
        &self,
        program: PathBuf,
        args: I,
    ) -> Result<Output, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        tokio::process::Command::new(&program)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| HarnessError::Spawn { program, source })
    }
}

/// Runs the stack's `kubectl` with the stack's kubeconfig (same as [`Stack::kubectl`]).
pub async fn kubectl<I, S>(stack: &Stack, args: I) -> Result<Output, HarnessError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    stack.kubectl(args).await
}

/// The stack directory: `${FERRY_STACK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-e2e/stack}`.
fn stack_dir(env: &HashMap<String, String>) -> PathBuf {
    let non_empty = |name: &str| env.get(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("FERRY_STACK_DIR") {
        return PathBuf::from(dir);
    }
    let cache = match non_empty("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(non_empty("HOME").map(String::as_str).unwrap_or("/root")).join(".cache"),
    };
    cache.join("ferry-e2e").join("stack")
}

/// The workspace root: the parent of this crate's directory.
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Parses a shell env file of `export NAME='value'` lines (also `NAME=value` and
/// double-quoted values). Comments and blank lines are skipped; single-quoted values may
/// contain `'\''` as written by shells for an embedded quote.
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, raw)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        vars.insert(name.to_string(), unquote_shell(raw.trim()));
    }
    vars
}

/// Removes shell quoting from one word: `'a'\''b'` → `a'b`, `"a\"b"` → `a"b`, `a\ b` → `a b`.
fn unquote_shell(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(next) = chars.next() {
                                out.push(next);
                            }
                        }
                        c => out.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A namespace created for one test, labelled [`TEST_NAMESPACE_LABEL`]`=true`.
/// Call [`TestNamespace::cleanup`] at the end of the test.
#[derive(Clone)]
pub struct TestNamespace {
    /// The namespace's name: `<prefix>-<6 random characters>`.
    pub name: String,
    client: Client,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish()
    }
}

impl TestNamespace {
    /// Creates a namespace `<prefix>-<random 6>`.
    pub async fn create(client: &Client, prefix: &str) -> Result<Self, HarnessError> {
        let name = format!("{prefix}-{}", random_suffix(6));
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|source| HarnessError::Kube {
                action: format!("creating namespace {name}"),
                source,
            })?;
        Ok(TestNamespace {
            name,
            client: client.clone(),
        })
    }

    /// An [`Api`] for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace and waits (up to [`NAMESPACE_CLEANUP_TIMEOUT`]) until it is gone.
    pub async fn cleanup(self) -> Result<(), HarnessError> {
        let api = Api::<Namespace>::all(self.client.clone());
        match api.delete(&self.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(source) => {
                return Err(HarnessError::Kube {
                    action: format!("deleting namespace {}", self.name),
                    source,
                })
            }
        }
        let name = self.name.clone();
        wait_for_named(
            &format!("namespace {name} to be deleted"),
            NAMESPACE_CLEANUP_TIMEOUT,
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    match api.get_opt(&name).await {
                        Ok(None) => Some(()),
                        _ => None,
                    }
                }
            },
        )
        .await
    }
}

/// `len` random lowercase letters and digits (valid in Kubernetes names).
pub fn random_suffix(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    // `RandomState` is seeded from the OS per instance: a fresh one per character is random
    // enough for unique test names without another dependency.
    for i in 0..len {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        let index = (hasher.finish() % ALPHABET.len() as u64) as usize;
        out.push(char::from(ALPHABET[index]));
    }
    out
}

/// Polls `f` every [`POLL_INTERVAL`] until it returns `Some`, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, f: F) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_named("a condition", timeout, f).await
}

/// Like [`wait_for`], naming what is awaited in the timeout error.
pub async fn wait_for_named<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut f: F,
) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                timeout,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until pod `namespace/name` reports `status.phase == phase` and returns it.
pub async fn wait_pod_phase(
    client: &Client,
    namespace: &str,
    name: &str,
    phase: &str,
    timeout: Duration,
) -> Result<Pod, HarnessError> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    wait_for_named(
        &format!("pod {namespace}/{name} to reach phase {phase}"),
        timeout,
        || {
            let api = api.clone();
            async move {
                let pod = api.get_opt(name).await.ok()??;
                let current = pod.status.as_ref()?.phase.as_deref()?;
                (current == phase).then_some(pod)
            }
        },
    )
    .await
}

/// Waits until pod `namespace/name` is Running with its `Ready` condition `True`.
pub async fn wait_pod_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Pod, HarnessError> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    wait_for_named(
        &format!("pod {namespace}/{name} to be Ready"),
        timeout,
        || {
            let api = api.clone();
            async move {
                let pod = api.get_opt(name).await.ok()??;
                is_pod_ready(&pod).then_some(pod)
            }
        },
    )
    .await
}

/// Waits until pod `namespace/name` no longer exists.
pub async fn wait_pod_gone(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), HarnessError> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    wait_for_named(
        &format!("pod {namespace}/{name} to be deleted"),
        timeout,
        || {
            let api = api.clone();
            async move {
                match api.get_opt(name).await {
                    Ok(None) => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await
}

/// True when the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exported_single_quoted_values() {
        let vars = parse_env_file(
            "# written by e2e/stack\n\
             export KUBECONFIG='/tmp/stack/kubeconfig'\n\
             export FERRY_POSTGRES_URL='postgres://ferry:it'\\''s@127.0.0.1:5433/ferry'\n\
             \n\
             FERRY_KAFKA_BOOTSTRAP=127.0.0.1:9092\n\
             export FERRY_HELM=\"/opt/helm \\\"v3\\\"\"\n",
        );
        assert_eq!(vars["KUBECONFIG"], "/tmp/stack/kubeconfig");
        assert_eq!(
            vars["FERRY_POSTGRES_URL"],
            "postgres://ferry:it's@127.0.0.1:5433/ferry"
        );
        assert_eq!(vars["FERRY_KAFKA_BOOTSTRAP"], "127.0.0.1:9092");
        assert_eq!(vars["FERRY_HELM"], "/opt/helm \"v3\"");
        assert_eq!(vars.len(), 4);
    }

    #[test]
    fn skips_lines_that_are_not_assignments() {
        let vars = parse_env_file("echo hello\nexport 'X'=1\n=2\nOK=3\n");
        assert_eq!(vars.len(), 1);
        assert_eq!(vars["OK"], "3");
    }

    #[test]
    fn stack_dir_follows_the_documented_fallbacks() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            stack_dir(&env(&[("FERRY_STACK_DIR", "/s"), ("HOME", "/h")])),
            PathBuf::from("/s")
        );
        assert_eq!(
            stack_dir(&env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")])),
            PathBuf::from("/c/ferry-e2e/stack")
        );
        assert_eq!(
            stack_dir(&env(&[("HOME", "/h")])),
            PathBuf::from("/h/.cache/ferry-e2e/stack")
        );
    }

    #[test]
    fn random_suffixes_are_valid_and_differ() {
        let a = random_suffix(6);
        let b = random_suffix(6);
        assert_eq!(a.len(), 6);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn wait_for_times_out_and_names_the_condition() {
        let err = wait_for_named("the moon", Duration::from_millis(300), || async {
            None::<()>
        })
        .await
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("timed out after 300ms waiting for the moon")
        );
    }

    #[tokio::test]
    async fn wait_for_returns_the_first_value() {
        let mut calls = 0;
        let value = wait_for(Duration::from_secs(5), || {
            calls += 1;
            let ready = calls >= 3;
            async move { ready.then_some(calls) }
        })
        .await;
        assert_eq!(value.ok(), Some(3));
    }
}
