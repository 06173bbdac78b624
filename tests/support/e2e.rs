//! End-to-end harness: a real Kubernetes control plane (built from the Kubernetes Go modules by
//! `tests/control-plane/build.sh`, started once per test binary) or an existing cluster named by
//! `E2E_KUBECONFIG`; the CRDs from `crds/`; a namespace per test; and the real `passwordsafe-operator` binary
//! run as a child process under a ServiceAccount token bound by the RBAC shipped in `deploy/rbac.yaml`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

const MANAGER: &str = "e2e-harness";

/// The cluster every test of this binary uses.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub server: String,
    pub ca_data: String,
    /// Keeps the bundled control plane alive: it exits when this stdin closes (the test binary ends).
    _control_plane: Option<Mutex<(Child, ChildStdin)>>,
    _dir: Option<tempdir::Dir>,
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

/// The shared cluster, started (and the CRDs installed) on first use.
pub async fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| async { start_cluster().await.expect("start the end-to-end cluster") }).await
}

async fn start_cluster() -> anyhow::Result<Cluster> {
    start_cluster_with(std::env::var_os("E2E_KUBECONFIG").map(PathBuf::from)).await
}

/// An existing cluster (its kubeconfig) or else the bundled control plane, with the CRDs installed.
pub async fn start_cluster_with(existing: Option<PathBuf>) -> anyhow::Result<Cluster> {
    let cluster = match existing {
        Some(path) => Cluster::existing(path)?,
        None => Cluster::bundled()?,
    };
    cluster.install_crds().await?;
    Ok(cluster)
}

impl Cluster {
    /// `kubectl --namespace NS ARGS` as the admin, `stdin` piped in: whether it succeeded, and its stdout and
    /// stderr together. (Blocking: a simulator on the calling test's single-threaded runtime stalls meanwhile.)
    pub fn kubectl(&self, namespace: &str, args: &[&str], stdin: &str) -> (bool, String) {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", namespace])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// [`Cluster::kubectl`] without stdin that must succeed: its output.
    pub fn kubectl_ok(&self, namespace: &str, args: &[&str]) -> String {
        let (ok, text) = self.kubectl(namespace, args, "");
        assert!(ok, "kubectl {args:?}: {text}");
        text
    }

    fn existing(kubeconfig: PathBuf) -> anyhow::Result<Self> {
        let (server, ca_data) = server_and_ca(&kubeconfig)?;
        Ok(Self { kubeconfig, server, ca_data, _control_plane: None, _dir: None })
    }

    fn bundled() -> anyhow::Result<Self> {
        let binary = build_go_tool("tests/control-plane/build.sh")?;
        let dir = tempdir::Dir::new("pso-e2e")?;
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(&binary)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--log-file")
            .arg(dir.path().join("control-plane.log"))
            .arg("--exit-on-stdin-close")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdin = child.stdin.take().context("stdin")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let ready = lines.next().context("control plane exited before it was ready")??;
        if !ready.starts_with("control-plane ready") {
            bail!("unexpected control-plane output: {ready}");
        }
        let (server, ca_data) = server_and_ca(&kubeconfig)?;
        Ok(Self { kubeconfig, server, ca_data, _control_plane: Some(Mutex::new((child, stdin))), _dir: Some(dir) })
    }

    /// A client with the admin kubeconfig.
    pub async fn admin(&self) -> kube::Client {
        client_for(&self.kubeconfig).await.expect("admin client")
    }

    async fn install_crds(&self) -> anyhow::Result<()> {
        let admin = self.admin().await;
        let crds: Api<CustomResourceDefinition> = Api::all(admin);
        let text = std::fs::read_to_string(repo_root().join("crds/passwordsafe.dev.yaml"))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc)?;
            let name = crd.metadata.name.clone().context("CRD name")?;
            crds.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd)).await?;
            let established = kube::runtime::wait::conditions::is_crd_established();
            tokio::time::timeout(
                Duration::from_secs(30),
                kube::runtime::wait::await_condition(crds.clone(), &name, established),
            )
            .await
            .context("CRD not established in 30 s")??;
        }
        Ok(())
    }

    /// A fresh namespace for one test, labelled so tests can select it.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", &uuid_like()[..8]);
        let api: Api<Namespace> = Api::all(self.admin().await);
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"e2e": "true"}}})).unwrap();
        api.create(&PostParams::default(), &ns).await.expect("create namespace");
        name
    }

    pub async fn delete_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.admin().await);
        let _ = api.delete(name, &DeleteParams::default()).await;
    }

    /// A kubeconfig for ServiceAccount `passwordsafe-operator` in `namespace`, bound to the ClusterRole shipped
    /// in deploy/rbac.yaml (installed under a per-namespace name so tests do not share bindings).
    pub async fn operator_kubeconfig(&self, namespace: &str) -> anyhow::Result<PathBuf> {
        let admin = self.admin().await;
        let role = shipped_cluster_role()?;
        let role_name = format!("passwordsafe-operator-{namespace}");
        let mut role_value = serde_json::to_value(&role)?;
        role_value["metadata"] = json!({"name": role_name});
        let role: ClusterRole = serde_json::from_value(role_value)?;
        Api::<ClusterRole>::all(admin.clone())
            .patch(&role_name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&role))
            .await?;
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": "passwordsafe-operator", "namespace": namespace}]
        }))?;
        Api::<ClusterRoleBinding>::all(admin.clone())
            .patch(&role_name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&binding))
            .await?;
        // The leader-election Role, in this namespace.
        let mut role = serde_json::to_value(shipped_role()?)?;
        role["metadata"] = json!({"name": "passwordsafe-operator-leader-election", "namespace": namespace});
        let role: Role = serde_json::from_value(role)?;
        Api::<Role>::namespaced(admin.clone(), namespace)
            .patch("passwordsafe-operator-leader-election", &PatchParams::apply(MANAGER).force(), &Patch::Apply(&role))
            .await?;
        let role_binding: RoleBinding = serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "passwordsafe-operator-leader-election", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "passwordsafe-operator-leader-election"},
            "subjects": [{"kind": "ServiceAccount", "name": "passwordsafe-operator", "namespace": namespace}]
        }))?;
        Api::<RoleBinding>::namespaced(admin.clone(), namespace)
            .patch(
                "passwordsafe-operator-leader-election",
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&role_binding),
            )
            .await?;
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "passwordsafe-operator"}}))?;
        let sas: Api<ServiceAccount> = Api::namespaced(admin, namespace);
        sas.create(&PostParams::default(), &sa).await?;
        let request = TokenRequest {
            spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
            ..Default::default()
        };
        let token = sas
            .create_token_request("passwordsafe-operator", &PostParams::default(), &request)
            .await?
            .status
            .context("token status")?
            .token;
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "operator",
            "clusters": [{"name": "e2e", "cluster": {"server": self.server, "certificate-authority-data": self.ca_data}}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "e2e", "user": "operator", "namespace": namespace}}]
        });
        let path = std::env::temp_dir().join(format!("pso-e2e-{namespace}.kubeconfig"));
        std::fs::write(&path, serde_yaml::to_string(&kubeconfig)?)?;
        Ok(path)
    }
}

/// The ClusterRole in deploy/rbac.yaml.
pub fn shipped_cluster_role() -> anyhow::Result<ClusterRole> {
    Ok(serde_json::from_value(shipped_rbac("ClusterRole")?)?)
}

/// The (leader-election) Role in deploy/rbac.yaml.
pub fn shipped_role() -> anyhow::Result<Role> {
    Ok(serde_json::from_value(shipped_rbac("Role")?)?)
}

fn shipped_rbac(kind: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(repo_root().join("deploy/rbac.yaml"))?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc)?;
        if value["kind"] == kind {
            return Ok(value);
        }
    }
    bail!("deploy/rbac.yaml has no {kind}")
}

pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let config =
        kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::read_from(kubeconfig)?, &Default::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}

fn server_and_ca(kubeconfig: &Path) -> anyhow::Result<(String, String)> {
    let config: Value = serde_yaml::from_str(&std::fs::read_to_string(kubeconfig)?)?;
    let cluster = &config["clusters"][0]["cluster"];
    let server = cluster["server"].as_str().context("server")?.to_owned();
    let ca = cluster["certificate-authority-data"].as_str().context("certificate-authority-data")?.to_owned();
    Ok((server, ca))
}

/// Runs one of the Go build scripts (`tests/control-plane/build.sh`, `tests/helm/build.sh`; see
/// `tests/go-build.sh`) and returns the binary it built or found up to date. Its progress shows on stderr.
pub fn build_go_tool(script: &str) -> anyhow::Result<PathBuf> {
    let build = Command::new("bash")
        .arg(repo_root().join(script))
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {script} (needs Go and the Go module proxy)"))?;
    if !build.status.success() {
        bail!("{script} failed");
    }
    let stdout = String::from_utf8(build.stdout)?;
    Ok(PathBuf::from(stdout.lines().last().with_context(|| format!("{script} printed no path"))?.trim()))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..16).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
}

/// The operator binary, running against a cluster; killed when dropped. stderr goes to a file.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `binary run` (the `passwordsafe-operator` binary) watching `namespace`, keeping its HMAC key
    /// there too.
    pub fn start(binary: &Path, kubeconfig: &Path, namespace: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!("pso-e2e-{namespace}-{}.log", &uuid_like()[..6]));
        let child = Command::new(binary)
            .args(["run", "--namespace", namespace, "--operator-namespace", namespace, "--log-level", "trace"])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            // Free ports: several operators run at once.
            .args(["--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "trace,kube=debug,hyper=info,h2=info,rustls=info,tower=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self { child, log })
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait (up to 20 s) for the exit code: the graceful path, sign-out and all. Async, because
    /// the simulator the operator signs out of may run on this test's own runtime.
    pub async fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

impl Operator {
    /// `GET` one of the operator's HTTP endpoints (`/metrics`, `/healthz`, `/readyz`): status and body.
    /// The addresses come from its start-up log line.
    pub async fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let field = if path == "/metrics" { "metrics_at=" } else { "health_at=" };
        let logs = self.logs();
        let addr = logs
            .lines()
            .find_map(|l| l.split(field).nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .context("the operator has not logged its HTTP addresses yet")?;
        let response = reqwest::get(format!("http://{addr}{path}")).await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, for at most `limit`; panics with `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A directory removed when dropped.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(prefix: &str) -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
            std::fs::create_dir_all(&path)?;
            Ok(Self(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
