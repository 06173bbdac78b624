//! The real Helm CLI for the chart tests: built from its Go module by `tests/helm/build.sh` (once per test
//! binary; the script itself skips the build when nothing changed), run with Helm's own directories under the
//! build output so no user configuration, repository or plugin can change what it renders. Values go in on
//! stdin (`-f -`), so tests write no files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use anyhow::Context;

use super::e2e::{build_go_tool, repo_root};
use serde::Deserialize;
use serde_json::Value;

/// The chart, relative to the repository root.
pub const CHART: &str = "charts/passwordsafe-operator";

pub struct Helm {
    bin: PathBuf,
    home: PathBuf,
}

static HELM: OnceLock<Helm> = OnceLock::new();

/// The Helm CLI, built on first use.
pub fn helm() -> &'static Helm {
    HELM.get_or_init(|| Helm::build().expect("build helm with tests/helm/build.sh"))
}

impl Helm {
    fn build() -> anyhow::Result<Self> {
        let bin = build_go_tool("tests/helm/build.sh")?;
        // Next to the binary, i.e. in the build output: kept between runs, never in the clone or in ~/.config.
        let home = bin.parent().context("helm binary has no directory")?.join("home");
        Ok(Self { bin, home })
    }

    /// `helm ARGS` in the repository root, with isolated Helm directories and no ambient KUBECONFIG.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .current_dir(repo_root())
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .env_remove("KUBECONFIG")
            .env_remove("HELM_NAMESPACE")
            .env_remove("HELM_KUBECONTEXT");
        command
    }

    /// Runs `helm ARGS -f -` with `values` (YAML) on stdin.
    pub fn run(&self, args: &[&str], values: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run helm");
        child.stdin.take().expect("stdin").write_all(values.as_bytes()).expect("write values to helm");
        child.wait_with_output().expect("wait for helm")
    }

    /// `helm template passwordsafe-operator CHART --namespace passwordsafe-system` with `values`: the objects,
    /// or Helm's error output.
    pub fn template(&self, values: &str) -> Result<Vec<Value>, String> {
        self.template_as("passwordsafe-operator", "passwordsafe-system", values)
    }

    /// `helm template RELEASE CHART --namespace NAMESPACE` with `values`.
    pub fn template_as(&self, release: &str, namespace: &str, values: &str) -> Result<Vec<Value>, String> {
        let output = self.run(&["template", release, CHART, "--namespace", namespace], values);
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(documents(&String::from_utf8_lossy(&output.stdout)))
    }
}

/// Every non-empty document of a multi-document YAML text, as JSON values (what the API server receives).
pub fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("valid YAML"))
        .filter(|value| !value.is_null())
        .collect()
}

/// The object of `kind` named `name`; panics listing what there is.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    try_find(objects, kind, name).unwrap_or_else(|| panic!("no {kind} {name} among {:?}", ids(objects)))
}

pub fn try_find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// Every object of `kind`.
pub fn all_of<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// `Kind namespace/name` of each object, for messages.
pub fn ids(objects: &[Value]) -> Vec<String> {
    objects.iter().map(id).collect()
}

pub fn id(object: &Value) -> String {
    let meta = &object["metadata"];
    match meta["namespace"].as_str() {
        Some(ns) => format!("{} {ns}/{}", object["kind"].as_str().unwrap_or("?"), meta["name"].as_str().unwrap_or("?")),
        None => format!("{} {}", object["kind"].as_str().unwrap_or("?"), meta["name"].as_str().unwrap_or("?")),
    }
}

pub fn read(relative: impl AsRef<Path>) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
