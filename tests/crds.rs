//! The CRD manifest, the example manifests and the generated schemas.
//!
//! - `crds/passwordsafe.dev.yaml` must be exactly what the types in `src/api/` generate.
//! - Every document under `deploy/examples/` must parse, deserialize into its Rust type without losing a
//!   field (a misspelt field would be pruned silently by the API server), pass the CRD's OpenAPI schema
//!   the way the API server applies it (defaults, types, enums, lengths, ranges, patterns, list-map keys,
//!   the CEL rules), refer only to objects the examples define, and name only what the simulator's demo
//!   seed holds.
//! - The generated schemas keep the names, columns and validation rules users and tools rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use passwordsafe_operator::api::{self, ClusterPasswordSafeStore, PasswordSafeSecret, PasswordSafeStore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const CRDS_FILE: &str = "crds/passwordsafe.dev.yaml";
const REGENERATE: &str = "cargo run -q -- crd > crds/passwordsafe.dev.yaml";
const EXAMPLES_DIR: &str = "deploy/examples";
const DEMO_SEED: &str = "tests/simulator/seeds/demo.yaml";
const PS_API_VERSION: &str = "passwordsafe.dev/v1alpha1";

/// The use cases the examples must cover, one file each.
const EXAMPLE_FILES: &[&str] = &[
    "00-namespaces.yaml",
    "store-apikey.yaml",
    "store-oauth.yaml",
    "cluster-store.yaml",
    "managed-account.yaml",
    "ssh-key.yaml",
    "isa-account.yaml",
    "alias.yaml",
    "secrets-safe.yaml",
    "folder.yaml",
    "template-basic-auth.yaml",
    "merge-existing.yaml",
    "rollout-restart.yaml",
];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Every document of a multi-document YAML text, as JSON values (what the API server receives).
fn yaml_documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .enumerate()
        .map(|(i, document)| {
            let value = serde_yaml::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{origin}, document {}: invalid YAML: {e}", i + 1));
            serde_json::to_value(&value).unwrap_or_else(|e| panic!("{origin}, document {}: not JSON-like: {e}", i + 1))
        })
        .collect()
}

/// The CRD as installed (`api::crds()`: generated, then made Kubernetes-compatible).
fn crd_json<K: CustomResourceExt>() -> Value {
    let name = K::crd_name();
    passwordsafe_operator::api::crds().into_iter().find(|c| c["metadata"]["name"] == name).expect("CRD is installed")
}

/// A JSON pointer that must resolve.
fn at<'a>(value: &'a Value, pointer: &str) -> &'a Value {
    value.pointer(pointer).unwrap_or_else(|| panic!("nothing at {pointer}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().expect("an array").iter().map(|v| v.as_str().expect("a string")).collect()
}

const SCHEMA: &str = "/spec/versions/0/schema/openAPIV3Schema";
const SPEC: &str = "/spec/versions/0/schema/openAPIV3Schema/properties/spec";
const DATA: &str = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/data";
const TARGET: &str = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/target";

// ---------------------------------------------------------------------------------------------------------
// crds/passwordsafe.dev.yaml

#[test]
fn crd_manifest_is_what_the_types_generate() {
    let generated = api::crds_yaml();
    let committed = fs::read_to_string(repo_path(CRDS_FILE))
        .unwrap_or_else(|e| panic!("cannot read {CRDS_FILE} ({e}); create it with `{REGENERATE}`"));
    if committed == generated {
        return;
    }
    let (line, file_line, generated_line) = committed
        .lines()
        .map(Some)
        .chain(std::iter::repeat(None))
        .zip(generated.lines().map(Some).chain(std::iter::repeat(None)))
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i + 1, a.unwrap_or("<end of file>"), b.unwrap_or("<end of output>")))
        .unwrap_or((committed.lines().count() + 1, "<trailing newline differs>", ""));
    panic!(
        "{CRDS_FILE} differs from the CRDs the types in src/api/ generate (first difference at line {line}:\n  \
         file:      {file_line}\n  generated: {generated_line}\n).\nRegenerate it with `{REGENERATE}` and commit it."
    );
}

#[test]
fn crd_manifest_holds_the_three_crds() {
    let documents = yaml_documents(&read(CRDS_FILE), CRDS_FILE);
    let crds: Vec<CustomResourceDefinition> =
        documents.into_iter().map(|d| serde_json::from_value(d).expect("a CustomResourceDefinition")).collect();
    let summary: Vec<(String, String, String)> = crds
        .iter()
        .map(|crd| {
            (
                crd.metadata.name.clone().unwrap_or_default(),
                crd.spec.scope.clone(),
                crd.spec.versions.iter().map(|v| v.name.clone()).collect::<Vec<_>>().join(","),
            )
        })
        .collect();
    let expected = [
        ("passwordsafesecrets.passwordsafe.dev", "Namespaced"),
        ("passwordsafestores.passwordsafe.dev", "Namespaced"),
        ("clusterpasswordsafestores.passwordsafe.dev", "Cluster"),
    ];
    assert_eq!(
        summary,
        expected.map(|(n, s)| (n.to_owned(), s.to_owned(), "v1alpha1".to_owned())).to_vec(),
        "the CRDs in {CRDS_FILE}"
    );
    for crd in &crds {
        assert_eq!(crd.spec.group, api::GROUP);
        let version = &crd.spec.versions[0];
        assert!(version.served && version.storage, "{:?}: served and stored", crd.metadata.name);
    }
}

// ---------------------------------------------------------------------------------------------------------
// deploy/examples/

struct Example {
    file: String,
    index: usize,
    value: Value,
}

impl Example {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
    fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
    fn spec(&self) -> &Value {
        &self.value["spec"]
    }
    fn at(&self) -> String {
        format!("{} (document {}, {} {})", self.file, self.index + 1, self.kind(), self.name())
    }
}

fn example_files() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(repo_path(EXAMPLES_DIR))
        .unwrap_or_else(|e| panic!("cannot list {EXAMPLES_DIR}: {e}"))
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    files.sort();
    files
}

fn examples() -> Vec<Example> {
    let mut all = Vec::new();
    for file in example_files() {
        let origin = format!("{EXAMPLES_DIR}/{file}");
        for (index, value) in yaml_documents(&read(&origin), &origin).into_iter().enumerate() {
            assert!(value.is_object(), "{origin}, document {}: not a Kubernetes object (empty document?)", index + 1);
            all.push(Example { file: file.clone(), index, value });
        }
    }
    all
}

fn examples_of_kind<'a>(examples: &'a [Example], kind: &str) -> Vec<&'a Example> {
    examples.iter().filter(|e| e.api_version() == PS_API_VERSION && e.kind() == kind).collect()
}

#[test]
fn examples_cover_every_use_case() {
    let files: BTreeSet<String> = example_files().into_iter().collect();
    let missing: Vec<&&str> = EXAMPLE_FILES.iter().filter(|f| !files.contains(**f)).collect();
    assert!(missing.is_empty(), "{EXAMPLES_DIR} lacks {missing:?}");
    let kinds: BTreeSet<String> = examples().iter().map(|e| e.kind().to_owned()).collect();
    for kind in ["PasswordSafeSecret", "PasswordSafeStore", "ClusterPasswordSafeStore"] {
        assert!(kinds.contains(kind), "no example of {kind}");
    }
}

/// `sub` is contained in `sup`: every field of `sub` is in `sup` with the same value (`sup` may have more,
/// e.g. defaults a type serializes). Differences are reported by path.
fn missing_fields(sub: &Value, sup: &Value, path: &str, out: &mut Vec<String>) {
    match (sub, sup) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => missing_fields(value, other, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}: not a field of the type (misspelt or misplaced?)")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                missing_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ if sub == sup => {}
        _ => out.push(format!("{path}: {sub} reads back as {sup}")),
    }
}

/// Deserializes into `T` and serializes back: whatever `T` does not know is lost, and reported.
fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| format!("does not deserialize: {e}"))?;
    let back = serde_json::to_value(&typed).expect("serializes");
    let mut lost = Vec::new();
    missing_fields(value, &back, "", &mut lost);
    if lost.is_empty() { Ok(()) } else { Err(lost.join("; ")) }
}

#[test]
fn examples_deserialize_into_the_types_without_losing_fields() {
    let examples = examples();
    assert!(!examples.is_empty(), "no documents under {EXAMPLES_DIR}");
    let mut errors = Vec::new();
    for example in &examples {
        let result = match (example.api_version(), example.kind()) {
            (PS_API_VERSION, "PasswordSafeSecret") => round_trip::<PasswordSafeSecret>(&example.value),
            (PS_API_VERSION, "PasswordSafeStore") => round_trip::<PasswordSafeStore>(&example.value),
            (PS_API_VERSION, "ClusterPasswordSafeStore") => round_trip::<ClusterPasswordSafeStore>(&example.value),
            ("v1", "Secret") => round_trip::<Secret>(&example.value),
            ("v1", "Namespace") => round_trip::<Namespace>(&example.value),
            ("apps/v1", "Deployment") => round_trip::<Deployment>(&example.value),
            (api_version, kind) => {
                Err(format!("{api_version} {kind}: unexpected kind (add it to this test with its k8s-openapi type)"))
            }
        };
        if let Err(e) = result {
            errors.push(format!("{}: {e}", example.at()));
        }
    }
    assert!(errors.is_empty(), "examples out of step with the API:\n{}", errors.join("\n"));
}

#[test]
fn examples_pass_the_crd_schemas() {
    let schemas: BTreeMap<&str, Value> = [
        ("PasswordSafeSecret", at(&crd_json::<PasswordSafeSecret>(), SCHEMA).clone()),
        ("PasswordSafeStore", at(&crd_json::<PasswordSafeStore>(), SCHEMA).clone()),
        ("ClusterPasswordSafeStore", at(&crd_json::<ClusterPasswordSafeStore>(), SCHEMA).clone()),
    ]
    .into();
    let mut errors = Vec::new();
    let mut checked = 0;
    for example in examples() {
        let Some(schema) = schemas.get(example.kind()).filter(|_| example.api_version() == PS_API_VERSION) else {
            continue;
        };
        checked += 1;
        for e in validate_object(schema, &example.value) {
            errors.push(format!("{}: {e}", example.at()));
        }
    }
    assert!(checked > 0, "no custom resources among the examples");
    assert!(errors.is_empty(), "the API server would refuse:\n{}", errors.join("\n"));
}

#[test]
fn examples_set_namespaces_explicitly() {
    for example in examples() {
        match example.kind() {
            "Namespace" | "ClusterPasswordSafeStore" => {
                assert_eq!(example.namespace(), None, "{}: cluster-scoped", example.at())
            }
            _ => assert!(example.namespace().is_some(), "{}: namespaced objects name their namespace", example.at()),
        }
    }
}

/// Every reference between examples resolves: stores, sign-in Secrets and their keys, Merge targets,
/// rollout targets, namespaces; required keys of typed Secrets are produced.
#[test]
fn examples_refer_to_what_the_examples_define() {
    let examples = examples();
    let defined: BTreeSet<(String, Option<String>, String)> =
        examples.iter().map(|e| (e.kind().to_owned(), e.namespace().map(str::to_owned), e.name().to_owned())).collect();
    let has = |kind: &str, namespace: Option<&str>, name: &str| {
        defined.contains(&(kind.to_owned(), namespace.map(str::to_owned), name.to_owned()))
    };
    let secret_keys = |namespace: &str, name: &str| -> Option<BTreeSet<String>> {
        examples.iter().find(|e| e.kind() == "Secret" && e.namespace() == Some(namespace) && e.name() == name).map(
            |e| {
                let mut keys = BTreeSet::new();
                for field in ["data", "stringData"] {
                    if let Some(map) = e.value[field].as_object() {
                        keys.extend(map.keys().cloned());
                    }
                }
                keys
            },
        )
    };
    let mut errors = Vec::new();

    for example in &examples {
        if let Some(namespace) = example.namespace()
            && !has("Namespace", None, namespace)
        {
            errors.push(format!("{}: namespace {namespace} is not defined by an example", example.at()));
        }
    }

    for kind in ["PasswordSafeStore", "ClusterPasswordSafeStore"] {
        for store in examples_of_kind(&examples, kind) {
            for (pointer, reference) in secret_refs(store.spec()) {
                let name = reference["name"].as_str().unwrap_or("");
                let key = reference["key"].as_str();
                let namespace = match (kind, reference["namespace"].as_str()) {
                    ("ClusterPasswordSafeStore", None) => {
                        errors.push(format!("{}: {pointer} needs a namespace (cluster store)", store.at()));
                        continue;
                    }
                    (_, Some(ns)) => ns,
                    (_, None) => store.namespace().unwrap_or(""),
                };
                if kind == "PasswordSafeStore" && namespace != store.namespace().unwrap_or("") {
                    errors.push(format!("{}: {pointer} must be in the store's own namespace", store.at()));
                }
                match (secret_keys(namespace, name), key) {
                    (None, _) => errors.push(format!("{}: {pointer}: no Secret {namespace}/{name}", store.at())),
                    (Some(keys), Some(key)) if !keys.contains(key) => {
                        errors.push(format!("{}: {pointer}: Secret {namespace}/{name} has no key {key}", store.at()))
                    }
                    _ => {}
                }
            }
        }
    }

    for secret in examples_of_kind(&examples, "PasswordSafeSecret") {
        let spec = secret.spec();
        let namespace = secret.namespace().unwrap_or("");
        let store = spec["storeRef"]["name"].as_str().unwrap_or("");
        let store_kind = spec["storeRef"]["kind"].as_str().unwrap_or("PasswordSafeStore");
        let store_namespace = (store_kind == "PasswordSafeStore").then_some(namespace);
        if !has(store_kind, store_namespace, store) {
            errors.push(format!("{}: storeRef {store_kind} {store} is not defined by an example", secret.at()));
        }
        if store_kind == "ClusterPasswordSafeStore" {
            let allowed = examples_of_kind(&examples, "ClusterPasswordSafeStore")
                .into_iter()
                .filter(|s| s.name() == store)
                .any(|s| strings_or_empty(&s.spec()["namespaces"]["names"]).contains(&namespace));
            if !allowed {
                errors.push(format!("{}: the cluster store {store} does not list namespace {namespace}", secret.at()));
            }
        }
        let target = &spec["target"];
        let target_name = target["name"].as_str().unwrap_or(secret.name());
        if target["creationPolicy"] == "Merge" && secret_keys(namespace, target_name).is_none() {
            errors.push(format!("{}: Merge into Secret {target_name}, which no example creates", secret.at()));
        }
        for workload in spec["rolloutRestartTargets"].as_array().into_iter().flatten() {
            let (kind, name) = (workload["kind"].as_str().unwrap_or(""), workload["name"].as_str().unwrap_or(""));
            if !has(kind, Some(namespace), name) {
                errors.push(format!("{}: rollout target {kind} {name} is not defined by an example", secret.at()));
            }
        }
        let keys = written_keys(spec);
        let required: &[&[&str]] = match target["type"].as_str().unwrap_or("Opaque") {
            "kubernetes.io/ssh-auth" => &[&["ssh-privatekey"]],
            "kubernetes.io/basic-auth" => &[&["username", "password"]],
            "kubernetes.io/tls" => &[&["tls.crt"], &["tls.key"]],
            "kubernetes.io/dockerconfigjson" => &[&[".dockerconfigjson"]],
            _ => &[],
        };
        for one_of in required {
            if !one_of.iter().any(|k| keys.contains(*k)) {
                errors.push(format!("{}: the Secret type needs one of the keys {one_of:?}, has {keys:?}", secret.at()));
            }
        }
    }

    // The Deployment of rollout-restart.yaml reads keys the PasswordSafeSecret writes.
    for deployment in examples.iter().filter(|e| e.kind() == "Deployment") {
        let containers = &deployment.spec()["template"]["spec"]["containers"];
        for env in containers.as_array().into_iter().flatten().flat_map(|c| c["env"].as_array().into_iter().flatten()) {
            let reference = &env["valueFrom"]["secretKeyRef"];
            let (Some(name), Some(key)) = (reference["name"].as_str(), reference["key"].as_str()) else { continue };
            let producer = examples_of_kind(&examples, "PasswordSafeSecret").into_iter().find(|s| {
                s.namespace() == deployment.namespace()
                    && s.spec()["target"]["name"].as_str().unwrap_or(s.name()) == name
            });
            match producer {
                Some(s) if written_keys(s.spec()).contains(key) => {}
                Some(s) => errors.push(format!("{}: {} does not write key {key}", deployment.at(), s.at())),
                None => errors.push(format!("{}: no PasswordSafeSecret writes Secret {name}", deployment.at())),
            }
        }
    }

    assert!(errors.is_empty(), "dangling references in {EXAMPLES_DIR}:\n{}", errors.join("\n"));
}

fn strings_or_empty(value: &Value) -> Vec<&str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

/// `(path, reference)` of every Secret reference in a store spec.
fn secret_refs(spec: &Value) -> Vec<(String, &Value)> {
    let candidates = [
        "/auth/apiKey/secretRef",
        "/auth/apiKey/passwordSecretRef",
        "/auth/oauth/clientIdSecretRef",
        "/auth/oauth/clientSecretSecretRef",
        "/tls/caSecretRef",
        "/tls/clientCertificateSecretRef",
    ];
    candidates.iter().filter_map(|p| spec.pointer(p).map(|r| (format!("spec{}", p.replace('/', ".")), r))).collect()
}

/// The keys a PasswordSafeSecret's target Secret gets from `data` and the template (folders excluded:
/// their keys depend on Password Safe's content).
fn written_keys(spec: &Value) -> BTreeSet<String> {
    let source: BTreeSet<String> = spec["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["secretKey"].as_str().map(str::to_owned))
        .collect();
    let template = &spec["target"]["template"];
    if template.is_null() {
        return source;
    }
    let mut keys: BTreeSet<String> =
        template["data"].as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect();
    if template["keepSourceKeys"] == true {
        keys.extend(source);
    }
    keys
}

/// The examples name accounts, aliases, secrets and credentials the simulator's demo seed holds, so a demo
/// can apply them as they are.
#[test]
fn examples_match_the_simulator_demo_seed() {
    let seed = yaml_documents(&read(DEMO_SEED), DEMO_SEED).remove(0);
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let examples = examples();
    let mut errors = Vec::new();

    let account = |system: &str, account: &str| -> Option<Value> {
        list(&seed["systems"])
            .into_iter()
            .filter(|s| s["name"] == system)
            .flat_map(|s| list(&s["accounts"]))
            .find(|a| a["name"] == account)
    };
    let check_field = |what: &str, account: &Value, field: &str, errors: &mut Vec<String>| {
        let needs = match field {
            "dsskey" => "dssKey",
            "passphrase" => "passphrase",
            _ => return,
        };
        if account[needs].is_null() {
            errors.push(format!("{what}: the seed's account has no {needs}"));
        }
    };

    for secret in examples_of_kind(&examples, "PasswordSafeSecret") {
        for item in secret.spec()["data"].as_array().into_iter().flatten() {
            let what = format!("{} key {}", secret.at(), item["secretKey"]);
            if let Some(m) = item.get("managedAccount") {
                let (system, name) = (m["system"].as_str().unwrap_or(""), m["account"].as_str().unwrap_or(""));
                match account(system, name) {
                    Some(a) => check_field(&what, &a, m["field"].as_str().unwrap_or("password"), &mut errors),
                    None => errors.push(format!("{what}: no managed account {system}/{name} in {DEMO_SEED}")),
                }
            }
            if let Some(alias) = item.get("alias") {
                let name = alias["name"].as_str().unwrap_or("");
                match list(&seed["aliases"]).into_iter().find(|a| a["name"] == name) {
                    Some(a) => match account(a["system"].as_str().unwrap_or(""), a["account"].as_str().unwrap_or("")) {
                        Some(acc) => {
                            check_field(&what, &acc, alias["field"].as_str().unwrap_or("password"), &mut errors)
                        }
                        None => errors.push(format!("{what}: alias {name} points at no account")),
                    },
                    None => errors.push(format!("{what}: no alias {name} in {DEMO_SEED}")),
                }
            }
            if let Some(s) = item.get("secretsSafe") {
                let (folder, title) = (s["folderPath"].as_str().unwrap_or(""), s["title"].as_str().unwrap_or(""));
                let found = list(&seed["secretsSafe"]["folders"])
                    .into_iter()
                    .filter(|f| f["path"] == folder)
                    .flat_map(|f| list(&f["secrets"]))
                    .find(|x| x["title"] == title);
                match (found, s["field"].as_str()) {
                    (None, _) => errors.push(format!("{what}: no Secrets Safe secret {folder}/{title} in {DEMO_SEED}")),
                    (Some(x), Some(field)) => {
                        let kind = x["type"].as_str().unwrap_or("credential");
                        let fits = match field {
                            "username" | "password" => kind == "credential",
                            "text" => kind == "text",
                            "file" => kind == "file",
                            _ => true,
                        };
                        if !fits {
                            errors.push(format!("{what}: field {field} of a {kind} secret"));
                        }
                    }
                    (Some(_), None) => {}
                }
            }
        }
        for item in secret.spec()["dataFrom"].as_array().into_iter().flatten() {
            let folder = &item["secretsSafeFolder"]["folderPath"];
            if !list(&seed["secretsSafe"]["folders"]).iter().any(|f| f["path"] == *folder) {
                errors.push(format!("{}: no Secrets Safe folder {folder} in {DEMO_SEED}", secret.at()));
            }
        }
    }

    let secret_value = |namespace: &str, reference: &Value| -> Option<String> {
        let namespace = reference["namespace"].as_str().unwrap_or(namespace);
        examples
            .iter()
            .find(|e| {
                e.kind() == "Secret"
                    && e.namespace() == Some(namespace)
                    && e.value["metadata"]["name"] == reference["name"]
            })
            .and_then(|e| e.value["stringData"][reference["key"].as_str().unwrap_or("")].as_str().map(str::to_owned))
    };
    for store in examples_of_kind(&examples, "PasswordSafeStore")
        .into_iter()
        .chain(examples_of_kind(&examples, "ClusterPasswordSafeStore"))
    {
        let namespace = store.namespace().unwrap_or("");
        let auth = &store.spec()["auth"];
        if let Some(api_key) = auth.get("apiKey") {
            let key = secret_value(namespace, &api_key["secretRef"]);
            let registered = list(&seed["apiKeys"]).into_iter().find(|k| k["key"].as_str() == key.as_deref());
            match registered {
                Some(k) if strings_or_empty(&k["runAs"]).contains(&api_key["runAs"].as_str().unwrap_or("")) => {}
                Some(_) => {
                    errors.push(format!("{}: the seed's API key does not allow runAs {}", store.at(), api_key["runAs"]))
                }
                None => errors.push(format!("{}: the API key is not one of {DEMO_SEED}", store.at())),
            }
        }
        if let Some(oauth) = auth.get("oauth") {
            let id = secret_value(namespace, &oauth["clientIdSecretRef"]);
            let secret = secret_value(namespace, &oauth["clientSecretSecretRef"]);
            let registered = list(&seed["oauthClients"])
                .into_iter()
                .any(|c| c["clientId"].as_str() == id.as_deref() && c["clientSecret"].as_str() == secret.as_deref());
            if !registered {
                errors.push(format!("{}: the OAuth client is not one of {DEMO_SEED}", store.at()));
            }
        }
    }

    assert!(errors.is_empty(), "examples that would fail against the demo seed:\n{}", errors.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------
// A small OpenAPI v3 validator: what the API server checks on a custom resource, for the keywords our
// schemas use. A keyword, pattern or CEL rule it does not know fails the test, so a schema change cannot
// slip past it unchecked.

/// Validates a whole object (apiVersion/kind/metadata are the API server's, not the schema's) after
/// applying the schema's defaults, as the API server does.
fn validate_object(schema: &Value, object: &Value) -> Vec<String> {
    let mut object = object.clone();
    let mut errors = Vec::new();
    if let Some(map) = object.as_object_mut() {
        for field in ["apiVersion", "kind", "metadata"] {
            map.remove(field);
        }
    }
    apply_defaults(schema, &mut object);
    validate(schema, &object, "", &mut errors);
    errors
}

fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    let absent = map.get(name).is_none_or(|v| v.is_null() && property["nullable"] != true);
                    if absent && let Some(default) = property.get("default") {
                        map.insert(name.clone(), default.clone());
                    }
                }
            }
            for (name, child) in map.iter_mut() {
                if let Some(property) = schema["properties"].get(name) {
                    apply_defaults(property, child);
                } else if schema["additionalProperties"].is_object() {
                    apply_defaults(&schema["additionalProperties"], child);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                apply_defaults(&schema["items"], item);
            }
        }
        _ => {}
    }
}

const KNOWN_KEYWORDS: &[&str] = &[
    "type",
    "description",
    "title",
    "nullable",
    "default",
    "format",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
];

fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let path_or_root = if path.is_empty() { "<root>" } else { path };
    let fail = |errors: &mut Vec<String>, message: String| errors.push(format!("{path_or_root}: {message}"));
    for keyword in schema.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !KNOWN_KEYWORDS.contains(&keyword.as_str()) {
            fail(errors, format!("schema keyword {keyword} is unknown to this test's validator"));
        }
    }
    if value.is_null() {
        if schema["nullable"] != true {
            fail(errors, "must not be null".into());
        } else if schema.get("enum").is_some() {
            // kube-apiserver (apiextensions-apiserver 0.36) refuses null for an enum field even when the
            // field is nullable and the enum lists null.
            fail(errors, format!("null is not one of {}", schema["enum"]));
        }
        return;
    }
    let type_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        other => {
            fail(errors, format!("schema type {other:?} is unknown to this test's validator"));
            return;
        }
    };
    if !type_ok {
        fail(errors, format!("{value} is not of type {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        fail(errors, format!("{value} is not one of {}", schema["enum"]));
    }
    if let Some(s) = value.as_str() {
        let length = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| length < min) {
            fail(errors, format!("shorter than {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
            fail(errors, format!("longer than {}", schema["maxLength"]));
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            match pattern_matches(pattern, s) {
                Some(true) => {}
                Some(false) => fail(errors, format!("{s:?} does not match {pattern}")),
                None => fail(errors, format!("pattern {pattern} is unknown to this test's validator: add a matcher")),
            }
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            fail(errors, format!("less than {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            fail(errors, format!("more than {}", schema["maximum"]));
        }
    }
    if let Some(map) = value.as_object() {
        for required in strings_or_empty(&schema["required"]) {
            if !map.contains_key(required) {
                fail(errors, format!("{required} is required"));
            }
        }
        for (name, child) in map {
            let child_path = format!("{path}.{name}");
            if let Some(property) = schema["properties"].get(name) {
                validate(property, child, &child_path, errors);
            } else if schema["additionalProperties"].is_object() {
                validate(&schema["additionalProperties"], child, &child_path, errors);
            } else {
                errors.push(format!("{child_path}: unknown field (the API server would drop it)"));
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
        match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => {
                let keys = strings_or_empty(&schema["x-kubernetes-list-map-keys"]);
                let mut seen = BTreeSet::new();
                for item in items {
                    let identity: Vec<String> = keys.iter().map(|k| item[*k].to_string()).collect();
                    if !seen.insert(identity.clone()) {
                        errors.push(format!("{path}: duplicate entries for {keys:?} = {identity:?}"));
                    }
                }
            }
            Some("set") => {
                let mut seen = BTreeSet::new();
                for item in items {
                    if !seen.insert(item.to_string()) {
                        errors.push(format!("{path}: duplicate entry {item}"));
                    }
                }
            }
            Some(other) => errors.push(format!("{path}: list type {other} is unknown to this test's validator")),
            None => {}
        }
    }
    for rule in schema["x-kubernetes-validations"].as_array().into_iter().flatten() {
        let text = rule["rule"].as_str().unwrap_or("");
        match cel_rule(text) {
            Some(check) if check(value) => {}
            Some(_) => errors.push(format!("{path_or_root}: {}", rule["message"].as_str().unwrap_or(text))),
            None => errors.push(format!("{path_or_root}: CEL rule {text:?} is unknown to this test: add it")),
        }
    }
}

/// The patterns our schemas use, implemented by hand (the tests have no regex engine).
fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    let key_char = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
    Some(match pattern {
        r"^[-._a-zA-Z0-9]+$" => !s.is_empty() && s.chars().all(key_char),
        r"^[-._a-zA-Z0-9]*$" => s.chars().all(key_char),
        r"^https?://" => s.starts_with("http://") || s.starts_with("https://"),
        r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$" => is_duration(s),
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" => s.split('.').all(|label| {
            let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            edge(label.chars().next())
                && edge(label.chars().last())
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }),
        _ => return None,
    })
}

/// `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
fn is_duration(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    while i < bytes.len() {
        if !digits(&mut i) {
            return false;
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return false;
            }
        }
        match &bytes[i..] {
            [b'm', b's', ..] => i += 2,
            [b's' | b'm' | b'h', ..] => i += 1,
            _ => return false,
        }
    }
    !s.is_empty()
}

/// The CEL rules our schemas carry, evaluated by hand. `has(self.x)`: the field is set (and not null).
fn cel_rule(rule: &str) -> Option<fn(&Value) -> bool> {
    fn has(value: &Value, field: &str) -> bool {
        value.get(field).is_some_and(|v| !v.is_null())
    }
    fn size(value: &Value, field: &str) -> usize {
        value[field].as_array().map_or(0, Vec::len)
    }
    match rule {
        "has(self.apiKey) != has(self.oauth)" => Some(|v| has(v, "apiKey") != has(v, "oauth")),
        "(has(self.managedAccount) ? 1 : 0) + (has(self.alias) ? 1 : 0) + (has(self.secretsSafe) ? 1 : 0) == 1" => {
            Some(|v| ["managedAccount", "alias", "secretsSafe"].iter().filter(|f| has(v, f)).count() == 1)
        }
        "size(self.data) + size(self.dataFrom) > 0" => Some(|v| size(v, "data") + size(v, "dataFrom") > 0),
        "self != '.' && self != '..'" => Some(|v| v != "." && v != ".."),
        r if r == passwordsafe_operator::api::CLUSTER_REFS_NAMESPACED => Some(|v| {
            let refs = [
                &v["auth"]["apiKey"]["secretRef"],
                &v["auth"]["apiKey"]["passwordSecretRef"],
                &v["auth"]["oauth"]["clientIdSecretRef"],
                &v["auth"]["oauth"]["clientSecretSecretRef"],
                &v["tls"]["caSecretRef"],
                &v["tls"]["clientCertificateSecretRef"],
            ];
            refs.iter().all(|r| r.is_null() || has(r, "namespace"))
        }),
        _ => None,
    }
}

fn pss_errors(spec: Value) -> Vec<String> {
    let object =
        json!({"apiVersion": PS_API_VERSION, "kind": "PasswordSafeSecret", "metadata": {"name": "x"}, "spec": spec});
    validate_object(at(&crd_json::<PasswordSafeSecret>(), SCHEMA), &object)
}

fn store_errors<K: CustomResourceExt>(spec: Value) -> Vec<String> {
    validate_object(at(&crd_json::<K>(), SCHEMA), &json!({ "spec": spec }))
}

/// The validator above refuses what the API server refuses (so a passing example means something).
#[test]
fn schema_validation_refuses_invalid_resources() {
    let account = json!({"system": "db01.example.test", "account": "app_user"});
    let valid =
        json!({"storeRef": {"name": "passwordsafe"}, "data": [{"secretKey": "password", "managedAccount": account}]});
    assert_eq!(pss_errors(valid.clone()), Vec::<String>::new());

    let cases = [
        (json!({"storeRef": {"name": "passwordsafe"}}), "set at least one of data and dataFrom"),
        (json!({"data": valid["data"]}), "storeRef is required"),
        (
            json!({"storeRef": {"name": "passwordsafe"}, "data": [{"secretKey": "k", "managedAccount": account, "alias": {"name": "a"}}]}),
            "set exactly one of managedAccount, alias and secretsSafe",
        ),
        (json!({"storeRef": {"name": "passwordsafe"}, "data": [{"secretKey": "k"}]}), "set exactly one of"),
        // `has()` is false for a field set to null.
        (
            json!({"storeRef": {"name": "passwordsafe"}, "data": [{"secretKey": "k", "alias": null}]}),
            "set exactly one of",
        ),
        (
            json!({"storeRef": {"name": "p"}, "data": [{"secretKey": "k", "secretsSafe": {"folderPath": "f", "title": "t", "field": null}}]}),
            "null is not one of",
        ),
        (
            json!({"storeRef": {"name": "passwordsafe"}, "data": [{"secretKey": "k", "managedAccount": account}, {"secretKey": "k", "alias": {"name": "a"}}]}),
            "duplicate entries",
        ),
        (
            json!({"storeRef": {"name": "passwordsafe"}, "data": [{"secretKey": "a b", "managedAccount": account}]}),
            "does not match",
        ),
        (
            json!({"storeRef": {"name": "passwordsafe"}, "data": [{"secretKey": "..", "managedAccount": account}]}),
            "a Secret key cannot be . or ..",
        ),
        (
            json!({"storeRef": {"name": "passwordsafe"}, "data": [{"secretKey": "k", "managedAccount": {"system": "s", "account": "a", "field": "sshkey"}}]}),
            "is not one of",
        ),
        (json!({"storeRef": {"name": "p", "kind": "Store"}, "data": valid["data"]}), "is not one of"),
        (
            json!({"storeRef": {"name": "p"}, "data": valid["data"], "target": {"creationPolicy": "Adopt"}}),
            "is not one of",
        ),
        (
            json!({"storeRef": {"name": "p"}, "data": valid["data"], "target": {"deletionPolicy": "Orphan"}}),
            "is not one of",
        ),
        (json!({"storeRef": {"name": "p"}, "data": valid["data"], "target": {"name": "Not_A_Name"}}), "does not match"),
        (json!({"storeRef": {"name": "p"}, "data": valid["data"], "refreshInterval": "1 hour"}), "does not match"),
        (json!({"storeRef": {"name": "p"}, "data": valid["data"], "request": {"durationMinutes": 0}}), "less than"),
        (
            json!({"storeRef": {"name": "p"}, "data": valid["data"], "request": {"durationMinutes": 525601}}),
            "more than",
        ),
        (json!({"storeRef": {"name": "p"}, "data": valid["data"], "refreshIntervall": "1h"}), "unknown field"),
        (json!({"storeRef": {"name": ""}, "data": valid["data"]}), "shorter than"),
        (
            json!({"storeRef": {"name": "p"}, "dataFrom": [{"secretsSafeFolder": {"folderPath": "prod/db", "keyPrefix": "db/"}}]}),
            "does not match",
        ),
        (
            json!({"storeRef": {"name": "p"}, "data": valid["data"], "rolloutRestartTargets": [{"kind": "Job", "name": "x"}]}),
            "is not one of",
        ),
    ];
    for (spec, expected) in cases {
        let errors = pss_errors(spec.clone());
        assert!(errors.iter().any(|e| e.contains(expected)), "{spec}: expected {expected:?}, got {errors:?}");
    }

    let key = json!({"name": "s", "key": "k"});
    let api_key = json!({"secretRef": key, "runAs": "svc"});
    let oauth = json!({"clientIdSecretRef": key, "clientSecretSecretRef": key});
    let url = "https://ps.example.com/BeyondTrust/api/public/v3";
    assert_eq!(
        store_errors::<PasswordSafeStore>(json!({"url": url, "auth": {"apiKey": api_key}})),
        Vec::<String>::new()
    );
    assert_eq!(store_errors::<PasswordSafeStore>(json!({"url": url, "auth": {"oauth": oauth}})), Vec::<String>::new());
    let store_cases = [
        (json!({"url": url, "auth": {}}), "set exactly one of apiKey and oauth"),
        (json!({"url": url, "auth": {"apiKey": api_key, "oauth": oauth}}), "set exactly one of apiKey and oauth"),
        (json!({"url": "ps.example.com", "auth": {"apiKey": api_key}}), "does not match"),
        (json!({"url": url, "auth": {"apiKey": api_key}, "maxConcurrency": 0}), "less than"),
        (json!({"url": url, "auth": {"apiKey": api_key}, "changeDetectionInterval": "1d"}), "does not match"),
        (json!({"url": url, "auth": {"apiKey": api_key}, "namespaces": {}}), "unknown field"),
    ];
    for (spec, expected) in store_cases {
        let errors = store_errors::<PasswordSafeStore>(spec.clone());
        assert!(errors.iter().any(|e| e.contains(expected)), "{spec}: expected {expected:?}, got {errors:?}");
    }
    let cluster = store_errors::<ClusterPasswordSafeStore>(json!({"url": url, "auth": {"apiKey": api_key}}));
    assert!(cluster.iter().any(|e| e.contains("namespaces is required")), "{cluster:?}");
    let cluster =
        store_errors::<ClusterPasswordSafeStore>(json!({"url": url, "auth": {"apiKey": api_key}, "namespaces": {}}));
    assert!(cluster.iter().any(|e| e.contains("needs a namespace")), "{cluster:?}");
    let mut namespaced_key = api_key.clone();
    namespaced_key["secretRef"]["namespace"] = json!("passwordsafe-system");
    let cluster = store_errors::<ClusterPasswordSafeStore>(
        json!({"url": url, "auth": {"apiKey": namespaced_key}, "namespaces": {"names": ["a", "b"]}}),
    );
    assert_eq!(cluster, Vec::<String>::new());
    let duplicate = store_errors::<ClusterPasswordSafeStore>(
        json!({"url": url, "auth": {"apiKey": namespaced_key}, "namespaces": {"names": ["a", "a"]}}),
    );
    assert!(duplicate.iter().any(|e| e.contains("duplicate")), "{duplicate:?}");
}

#[test]
fn hand_written_pattern_matchers_agree_with_the_patterns() {
    for ok in ["1h", "15m", "60s", "500ms", "1h30m", "1.5h", "0s"] {
        assert!(is_duration(ok), "{ok}");
    }
    for bad in ["", "1", "h", "1d", "1.h", ".5h", "1 h", "1hm", "-1h", "1H"] {
        assert!(!is_duration(bad), "{bad}");
    }
    let dns = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    for ok in ["a", "app-config", "a.b-c.d1", "0"] {
        assert_eq!(pattern_matches(dns, ok), Some(true), "{ok}");
    }
    for bad in ["", "-a", "a-", "A", "a..b", "a.", "a_b"] {
        assert_eq!(pattern_matches(dns, bad), Some(false), "{bad}");
    }
    assert_eq!(pattern_matches(r"^[-._a-zA-Z0-9]+$", "ca.pem"), Some(true));
    assert_eq!(pattern_matches(r"^[-._a-zA-Z0-9]+$", ""), Some(false));
    assert_eq!(pattern_matches(r"^[-._a-zA-Z0-9]*$", ""), Some(true));
    assert_eq!(pattern_matches(r"^https?://", "https://x"), Some(true));
    assert_eq!(pattern_matches(r"^https?://", "ftp://x"), Some(false));
    assert_eq!(pattern_matches("^x$", "x"), None);
}

// ---------------------------------------------------------------------------------------------------------
// The generated schemas

#[test]
fn password_safe_secret_names_columns_and_subresources() {
    let crd = crd_json::<PasswordSafeSecret>();
    assert_eq!(at(&crd, "/metadata/name"), "passwordsafesecrets.passwordsafe.dev");
    assert_eq!(at(&crd, "/spec/scope"), "Namespaced");
    assert_eq!(strings(at(&crd, "/spec/names/shortNames")), ["pss"]);
    assert_eq!(strings(at(&crd, "/spec/names/categories")), ["passwordsafe"]);
    assert_eq!(at(&crd, "/spec/versions/0/subresources/status"), &json!({}), "status subresource");

    let columns = at(&crd, "/spec/versions/0/additionalPrinterColumns").as_array().unwrap();
    let shown: Vec<(&str, &str, &str)> = columns
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shown,
        [
            ("Ready", "string", r#".status.conditions[?(@.type=="Ready")].status"#),
            ("Store", "string", ".spec.storeRef.name"),
            ("Last Sync", "date", ".status.lastSyncTime"),
            ("Next Sync", "string", ".status.nextSyncTime"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ]
    );
    let wide: Vec<&str> = columns
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) > 0)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(wide, ["Reason", "Secret"], "columns of `kubectl get -o wide`");
    // Every column's path exists in the schema (a renamed status field would leave an empty column).
    for column in columns {
        let path = column["jsonPath"].as_str().unwrap();
        assert!(json_path_in_schema(&crd, path), "column {}: {path} is not in the schema", column["name"]);
    }
}

fn json_path_in_schema(crd: &Value, path: &str) -> bool {
    if path == ".metadata.creationTimestamp" {
        return true;
    }
    let path = path.split("[?").next().unwrap();
    let mut node = at(crd, SCHEMA);
    for segment in path.trim_start_matches('.').split('.') {
        node = &node["properties"][segment];
        if node.is_null() {
            return false;
        }
    }
    true
}

#[test]
fn password_safe_secret_data_is_a_list_map_with_one_source_per_item() {
    let crd = crd_json::<PasswordSafeSecret>();
    let data = at(&crd, DATA);
    assert_eq!(data["type"], "array");
    assert_eq!(data["x-kubernetes-list-type"], "map");
    assert_eq!(strings(&data["x-kubernetes-list-map-keys"]), ["secretKey"]);
    let item = &data["items"];
    assert!(strings(&item["required"]).contains(&"secretKey"), "list-map keys must be required");
    assert_eq!(item["properties"]["secretKey"]["pattern"], "^[-._a-zA-Z0-9]+$");
    let rules = item["x-kubernetes-validations"].as_array().expect("item rules");
    assert_eq!(rules.len(), 1);
    let rule = rules[0]["rule"].as_str().unwrap();
    for source in ["managedAccount", "alias", "secretsSafe"] {
        assert!(rule.contains(&format!("has(self.{source})")), "{rule} counts {source}");
        assert!(item["properties"][source].is_object(), "{source} is a property of a data item");
    }
    assert!(rule.ends_with("== 1"), "{rule}: exactly one source");
    assert_eq!(rules[0]["message"], "set exactly one of managedAccount, alias and secretsSafe");

    let spec_rules = at(&crd, &format!("{SPEC}/x-kubernetes-validations"));
    assert_eq!(spec_rules[0]["rule"], "size(self.data) + size(self.dataFrom) > 0");
    // The rule reads both lists: they must always be there, which their defaults ensure.
    assert_eq!(at(&crd, &format!("{DATA}/default")), &json!([]));
    assert_eq!(at(&crd, &format!("{SPEC}/properties/dataFrom/default")), &json!([]));
    assert_eq!(strings(at(&crd, &format!("{SPEC}/required"))), ["storeRef"]);
}

#[test]
fn password_safe_secret_enums() {
    let crd = crd_json::<PasswordSafeSecret>();
    let enum_of = |pointer: &str| -> Vec<String> {
        at(&crd, &format!("{pointer}/enum"))
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(enum_of(&format!("{TARGET}/properties/creationPolicy")), ["Owner", "Merge", "Orphan"]);
    assert_eq!(at(&crd, &format!("{TARGET}/properties/creationPolicy/default")), "Owner");
    assert_eq!(enum_of(&format!("{TARGET}/properties/deletionPolicy")), ["Delete", "Retain"]);
    assert_eq!(at(&crd, &format!("{TARGET}/properties/deletionPolicy/default")), "Delete");
    for source in ["managedAccount", "alias"] {
        let field = format!("{DATA}/items/properties/{source}/properties/field");
        assert_eq!(enum_of(&field), ["password", "username", "dsskey", "passphrase"], "{source}.field");
        assert_eq!(at(&crd, &format!("{field}/default")), "password");
    }
    let field = format!("{DATA}/items/properties/secretsSafe/properties/field");
    assert_eq!(enum_of(&field), ["username", "password", "text", "file", "notes"], "secretsSafe.field");
    assert_eq!(
        enum_of(&format!("{SPEC}/properties/storeRef/properties/kind")),
        ["PasswordSafeStore", "ClusterPasswordSafeStore"]
    );
    assert_eq!(at(&crd, &format!("{SPEC}/properties/storeRef/properties/kind/default")), "PasswordSafeStore");
    assert_eq!(
        enum_of(&format!("{SPEC}/properties/rolloutRestartTargets/items/properties/kind")),
        ["Deployment", "StatefulSet", "DaemonSet"]
    );
}

/// An optional enum (`Option<SecretsSafeField>`) is generated with `null` among its enum values. The API
/// server accepts the CRD, but still refuses `field: null` (its error then lists "null" as a supported
/// value), and tools that read the schema offer `null` as a choice. Un-ignore once src/api/ emits optional
/// enums without it.
#[test]
fn enums_list_no_null() {
    let mut found = Vec::new();
    for crd in
        [crd_json::<PasswordSafeSecret>(), crd_json::<PasswordSafeStore>(), crd_json::<ClusterPasswordSafeStore>()]
    {
        walk_schemas(at(&crd, SCHEMA), "", &mut |path, schema| {
            if schema["enum"].as_array().is_some_and(|values| values.iter().any(Value::is_null)) {
                found.push(path.to_owned());
            }
        });
    }
    assert!(found.is_empty(), "enums with null: {found:?}");
}

/// Kubernetes knows the integer formats `int32` and `int64` only; the API server warns
/// `unrecognized format "uint32"` when the CRDs are applied (and ignores the format). Un-ignore once src/api/
/// emits a known format (or none) for its unsigned fields.
#[test]
fn integer_formats_are_known_to_kubernetes() {
    let mut found = Vec::new();
    for crd in
        [crd_json::<PasswordSafeSecret>(), crd_json::<PasswordSafeStore>(), crd_json::<ClusterPasswordSafeStore>()]
    {
        let kind = at(&crd, "/spec/names/kind").as_str().unwrap().to_owned();
        walk_schemas(at(&crd, SCHEMA), "", &mut |path, schema| {
            let known: &[&str] = match schema["type"].as_str() {
                Some("integer") => &["int32", "int64"],
                Some("number") => &["float", "double"],
                _ => return,
            };
            if let Some(format) = schema["format"].as_str()
                && !known.contains(&format)
            {
                found.push(format!("{kind}{path}: {format}"));
            }
        });
    }
    assert!(found.is_empty(), "unrecognized formats: {found:?}");
}

#[test]
fn stores_sign_in_with_exactly_one_method() {
    for crd in [crd_json::<PasswordSafeStore>(), crd_json::<ClusterPasswordSafeStore>()] {
        let auth = at(&crd, &format!("{SPEC}/properties/auth"));
        let rules = auth["x-kubernetes-validations"].as_array().expect("auth rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["rule"], "has(self.apiKey) != has(self.oauth)");
        assert_eq!(rules[0]["message"], "set exactly one of apiKey and oauth");
        assert!(auth["properties"]["apiKey"].is_object() && auth["properties"]["oauth"].is_object());
        let required = strings(at(&crd, &format!("{SPEC}/required")));
        assert!(required.contains(&"url") && required.contains(&"auth"), "{required:?}");
        assert_eq!(at(&crd, &format!("{SPEC}/properties/url/pattern")), "^https?://");
        assert_eq!(strings(at(&crd, "/spec/names/categories")), ["passwordsafe"]);
        assert_eq!(at(&crd, "/spec/versions/0/subresources/status"), &json!({}));
        let columns: Vec<&str> = at(&crd, "/spec/versions/0/additionalPrinterColumns")
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(columns, ["Ready", "URL", "Age"]);
    }
}

#[test]
fn store_scopes_and_names() {
    let store = crd_json::<PasswordSafeStore>();
    assert_eq!(at(&store, "/spec/scope"), "Namespaced");
    assert_eq!(strings(at(&store, "/spec/names/shortNames")), ["psstore"]);
    assert!(store.pointer(&format!("{SPEC}/properties/namespaces")).is_none(), "only the cluster store has namespaces");

    let cluster = crd_json::<ClusterPasswordSafeStore>();
    assert_eq!(at(&cluster, "/spec/scope"), "Cluster");
    assert_eq!(strings(at(&cluster, "/spec/names/shortNames")), ["cpsstore"]);
    assert!(
        strings(at(&cluster, &format!("{SPEC}/required"))).contains(&"namespaces"),
        "cluster store requires namespaces"
    );
    let namespaces = at(&cluster, &format!("{SPEC}/properties/namespaces/properties"));
    assert!(namespaces["names"].is_object() && namespaces["selector"].is_object());
}

/// Visits every schema node with its path.
fn walk_schemas(schema: &Value, path: &str, visit: &mut dyn FnMut(&str, &Value)) {
    visit(path, schema);
    if let Some(properties) = schema["properties"].as_object() {
        for (name, child) in properties {
            walk_schemas(child, &format!("{path}.{name}"), visit);
        }
    }
    if schema["items"].is_object() {
        walk_schemas(&schema["items"], &format!("{path}[]"), visit);
    }
    if schema["additionalProperties"].is_object() {
        walk_schemas(&schema["additionalProperties"], &format!("{path}{{}}"), visit);
    }
}

/// What the API server requires of a CRD schema (structural schemas): every node typed, no references
/// or combinators, list-map keys required or defaulted, defaults valid against their own schema.
#[test]
fn schemas_are_structural_and_defaults_valid() {
    for crd in
        [crd_json::<PasswordSafeSecret>(), crd_json::<PasswordSafeStore>(), crd_json::<ClusterPasswordSafeStore>()]
    {
        let kind = at(&crd, "/spec/names/kind").as_str().unwrap().to_owned();
        let mut errors = Vec::new();
        walk_schemas(at(&crd, SCHEMA), "", &mut |path, schema| {
            let path = format!("{kind}{path}");
            if schema["type"].as_str().is_none() {
                errors.push(format!("{path}: no type"));
            }
            for keyword in ["$ref", "anyOf", "oneOf", "allOf", "not", "definitions", "$defs"] {
                if schema.get(keyword).is_some() {
                    errors.push(format!("{path}: {keyword}"));
                }
            }
            if schema["properties"].is_object() && schema["additionalProperties"].is_object() {
                errors.push(format!("{path}: both properties and additionalProperties"));
            }
            for key in strings_or_empty(&schema["x-kubernetes-list-map-keys"]) {
                let property = &schema["items"]["properties"][key];
                let required = strings_or_empty(&schema["items"]["required"]).contains(&key);
                if !(required || property.get("default").is_some()) || property["nullable"] == true {
                    errors.push(format!("{path}: list-map key {key} must be required (or defaulted) and not nullable"));
                }
            }
            if let Some(default) = schema.get("default") {
                let mut defaulted = default.clone();
                apply_defaults(schema, &mut defaulted);
                if &defaulted != default {
                    errors.push(format!("{path}: the default {default} is incomplete (pruned or re-defaulted)"));
                }
                let mut problems = Vec::new();
                validate(schema, default, "", &mut problems);
                errors.extend(problems.into_iter().map(|p| format!("{path}: default {default}: {p}")));
            }
        });
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }
}
