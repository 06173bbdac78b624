//! `cargo run --example demo [-- --kubeconfig PATH] [--show-values]`
//!
//! The operator end to end, on one machine: starts the Password Safe simulator (demo seed), a real Kubernetes
//! control plane built from the Kubernetes Go modules (or the cluster of `--kubeconfig`), installs the CRDs,
//! runs the operator, applies `deploy/examples/store-apikey.yaml` and `managed-account.yaml` in a new
//! namespace, prints the synced Secret (masked unless `--show-values`), rotates the password in the simulator
//! and shows the Secret follow, with the time it took. Exits non-zero if anything does not happen.

#[path = "../tests/support/e2e.rs"]
mod e2e;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;
use passwordsafe_operator::api::PasswordSafeSecret;
use passwordsafe_operator::controller;
use passwordsafe_simulator::{Seed, ServeOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let show = args.iter().any(|a| a == "--show-values");
    let kubeconfig = args.iter().position(|a| a == "--kubeconfig").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let started = Instant::now();

    let sim = passwordsafe_simulator::start(Seed::demo(), ServeOptions::default()).await?;
    println!("1. Password Safe simulator: {}", sim.base_url());
    if kubeconfig.is_none() {
        println!("2. Kubernetes: building/starting the bundled control plane (the first build takes a few minutes)…");
    }
    let cluster = e2e::start_cluster_with(kubeconfig.clone()).await?;
    println!("2. Kubernetes: {} (CRDs installed)", cluster.server);
    let kube = cluster.admin().await;
    let namespace = cluster.namespace("demo").await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = controller::Config {
        namespace: Some(namespace.clone()),
        operator_namespace: namespace.clone(),
        concurrency: 4,
        default_refresh: Duration::from_secs(3600),
        poll_interval: Duration::from_secs(5),
        reporter: "passwordsafe-operator".into(),
        shutdown_timeout: Duration::from_secs(20),
        metrics: Default::default(),
        health: Default::default(),
    };
    let operator = tokio::spawn(controller::run(kube.clone(), config, async move {
        let _ = stopped.await;
    }));
    println!("3. operator running, watching namespace {namespace}");

    for file in ["store-apikey.yaml", "managed-account.yaml"] {
        apply_example(&kube, file, &namespace, &sim.base_url()).await?;
    }
    println!("4. applied deploy/examples/store-apikey.yaml and managed-account.yaml (change detection every 5 s)");

    let secrets: Api<Secret> = Api::namespaced(kube.clone(), &namespace);
    let resources: Api<PasswordSafeSecret> = Api::namespaced(kube.clone(), &namespace);
    let synced_at = Instant::now();
    let first = wait_for_password(&secrets, None).await?;
    println!("5. Secret {namespace}/db01-readonly synced in {:.1} s:", synced_at.elapsed().as_secs_f64());
    print_secret(&secrets, show).await?;
    let pss = resources.get("db01-readonly").await?;
    let ready = pss
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .context("no Ready condition")?;
    println!(
        "   status: Ready={} ({}), next sync {}",
        ready.status,
        ready.reason,
        pss.status.as_ref().and_then(|s| s.next_sync_time.as_ref()).map_or("-".into(), |t| t.0.to_string())
    );

    sim.handle().rotate_account("db01.example.test", "readonly_user")?;
    let rotated_at = Instant::now();
    println!("6. rotated db01.example.test/readonly_user in the simulator (an unscheduled change)…");
    let second = wait_for_password(&secrets, Some(&first)).await?;
    println!("7. the Secret followed after {:.1} s:", rotated_at.elapsed().as_secs_f64());
    print_secret(&secrets, show).await?;
    if second == first {
        bail!("the Secret did not change");
    }

    let _ = stop.send(());
    operator.await??;
    let sessions = sim.handle().active_sessions();
    println!(
        "8. operator stopped; Password Safe sessions left open: {sessions}; requests left open: {}",
        sim.handle().open_requests().len()
    );
    if kubeconfig.is_some() {
        cluster.delete_namespace(&namespace).await;
        println!("   deleted namespace {namespace}");
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    if sessions != 0 {
        bail!("a session was left open");
    }
    Ok(())
}

/// Applies an example with its namespace and URL made the demo's (server-side apply, like kubectl apply).
async fn apply_example(kube: &kube::Client, file: &str, namespace: &str, url: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(e2e::repo_root().join("deploy/examples").join(file))?
        .replace("namespace: demo", &format!("namespace: {namespace}"))
        .replace("http://127.0.0.1:8080/BeyondTrust/api/public/v3", url)
        .replace("changeDetectionInterval: 60s", "changeDetectionInterval: 5s");
    let discovery = Discovery::new(kube.clone()).run().await?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let object: DynamicObject = serde::Deserialize::deserialize(doc)?;
        let types = object.types.clone().context("apiVersion/kind")?;
        let (group, version) = types.api_version.split_once('/').unwrap_or(("", &types.api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &types.kind);
        let (resource, _) = discovery.resolve_gvk(&gvk).with_context(|| format!("unknown kind {}", types.kind))?;
        let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), namespace, &resource);
        api.patch(&object.name_any(), &PatchParams::apply("passwordsafe-demo").force(), &Patch::Apply(&object)).await?;
    }
    Ok(())
}

async fn wait_for_password(secrets: &Api<Secret>, not: Option<&Vec<u8>>) -> anyhow::Result<Vec<u8>> {
    for _ in 0..300 {
        if let Some(value) = secrets
            .get_opt("db01-readonly")
            .await?
            .and_then(|s| s.data)
            .and_then(|d| d.get("password").map(|b| b.0.clone()))
            && Some(&value) != not
        {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out waiting for the Secret")
}

async fn print_secret(secrets: &Api<Secret>, show: bool) -> anyhow::Result<()> {
    let secret = secrets.get("db01-readonly").await?;
    println!("   type {}, labels {:?}", secret.type_.unwrap_or_default(), secret.metadata.labels.unwrap_or_default());
    for (key, value) in secret.data.unwrap_or_default() {
        let text = String::from_utf8_lossy(&value.0);
        let shown = if show { text.into_owned() } else { format!("{} ({} bytes)", "*".repeat(8), value.0.len()) };
        println!("   {key}: {shown}");
    }
    Ok(())
}
