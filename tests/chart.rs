//! The Helm chart (`charts/passwordsafe-operator`), checked with the real Helm CLI (built from its Go module by
//! `tests/helm/build.sh`, see tests/support/helm.rs) and the real API server of tests/support/e2e.rs:
//!
//! - `helm lint --strict` passes for every values combination that matters, and values.schema.json rejects typos;
//! - the default rendering is exactly deploy/rbac.yaml (minus its Namespace) + deploy/operator.yaml, so kubectl
//!   and Helm users get the same operator and the same least-privilege RBAC;
//! - each combination renders what it promises (assertions on the parsed objects), and the arguments the
//!   chart passes are accepted by the operator binary's own command line;
//! - installed on the control plane, the objects exist, the ServiceAccount can do exactly what the RBAC says
//!   (SubjectAccessReviews against the real authorizer), and `helm uninstall` removes them;
//! - stores built from values pass the CRDs' schema and CEL rules on the API server.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::e2e::{self, eventually};
use support::helm::{CHART, all_of, documents, find, helm, id, ids, read, try_find};

const NAMESPACE: &str = "passwordsafe-system";
const FULLNAME: &str = "passwordsafe-operator";
const IMAGE_REPOSITORY: &str = "ghcr.io/passwordsafe-operator/passwordsafe-operator";
const HMAC_SECRET: &str = "passwordsafe-operator-hmac-key";

/// Values combinations that matter: each is linted with `--strict` and rendered by a test below.
const COMBINATIONS: &[(&str, &str)] = &[
    ("default", ""),
    ("three replicas", "replicas: 3"),
    ("leader election with one replica", "leaderElection: {enabled: true, leaseName: pso-lease}"),
    ("single namespace", "watchNamespace: apps"),
    ("service monitor", "metrics: {serviceMonitor: {enabled: true, labels: {release: prometheus}}}"),
    ("network policy", NETWORK_POLICY),
    ("image tag", "image: {tag: 1.2.3, pullPolicy: Always}"),
    ("image digest", IMAGE_DIGEST),
    ("store: api key", STORE_API_KEY),
    ("store: oauth", STORE_OAUTH),
    ("cluster store: api key", CLUSTER_STORE_API_KEY),
    ("cluster store: oauth", CLUSTER_STORE_OAUTH),
    ("everything", EVERYTHING),
];

const NETWORK_POLICY: &str = r#"
networkPolicy:
  enabled: true
  metricsFrom:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
"#;

const IMAGE_DIGEST: &str =
    "image: {tag: ignored, digest: 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}";

const STORE_API_KEY: &str = r#"
store:
  create: true
  url: https://ps.example.com/BeyondTrust/api/public/v3
  auth:
    apiKey:
      secretRef: {name: passwordsafe-api-key, key: api-key}
      runAs: svc-k8s-operator
      passwordSecretRef: {name: passwordsafe-api-key, key: runas-password}
  tls:
    caSecretRef: {name: passwordsafe-ca, key: ca.crt}
  requestDefaults: {durationMinutes: 10, reason: "passwordsafe-operator sync", rotateOnCheckin: false}
  maxConcurrency: 4
  changeDetectionInterval: 30s
"#;

const STORE_OAUTH: &str = r#"
watchNamespace: apps
store:
  create: true
  name: ps-oauth
  url: https://ps.example.com/BeyondTrust/api/public/v3
  auth:
    oauth:
      clientIdSecretRef: {name: passwordsafe-oauth, key: client-id}
      clientSecretSecretRef: {name: passwordsafe-oauth, key: client-secret, namespace: apps}
"#;

const CLUSTER_STORE_API_KEY: &str = r#"
store:
  create: true
  kind: ClusterPasswordSafeStore
  url: https://ps.example.com/BeyondTrust/api/public/v3
  auth:
    apiKey:
      secretRef: {name: passwordsafe-api-key, key: api-key}
      runAs: svc-k8s-operator
  tls:
    clientCertificateSecretRef: {name: passwordsafe-client-cert, namespace: certs}
  namespaces:
    names: [demo]
    selector: {matchLabels: {environment: production}}
"#;

const CLUSTER_STORE_OAUTH: &str = r#"
store:
  create: true
  kind: ClusterPasswordSafeStore
  name: shared
  url: https://ps.example.com/BeyondTrust/api/public/v3
  auth:
    oauth:
      clientIdSecretRef: {name: passwordsafe-oauth, key: client-id}
      clientSecretSecretRef: {name: passwordsafe-oauth, key: client-secret}
      runAs: svc-k8s-operator
  namespaces:
    names: [demo, web]
"#;

const EVERYTHING: &str = r#"
replicas: 2
watchNamespace: apps
logLevel: debug,kube=info
logFormat: text
concurrency: 16
defaultRefreshInterval: 30m
changeDetectionInterval: 2m
extraArgs: ["--lease-namespace=passwordsafe-system"]
extraEnv: [{name: RUST_BACKTRACE, value: "1"}]
serviceAccount: {annotations: {example.com/role: operator}}
metrics: {port: 9090, serviceMonitor: {enabled: true, interval: 1m}}
health: {port: 9091}
podAnnotations: {example.com/scrape: "true"}
podLabels: {team: platform}
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app.kubernetes.io/name: passwordsafe-operator}}}}]}}
imagePullSecrets: [{name: registry}]
networkPolicy: {enabled: true}
podDisruptionBudget: {minAvailable: 1}
store:
  create: true
  url: https://ps.example.com/BeyondTrust/api/public/v3
  auth: {apiKey: {secretRef: {name: passwordsafe-api-key, key: api-key}, runAs: svc-k8s-operator}}
"#;

fn render(values: &str) -> Vec<Value> {
    helm().template(values).unwrap_or_else(|e| panic!("helm template failed:\n{e}\nvalues:\n{values}"))
}

fn render_error(values: &str) -> String {
    match helm().template(values) {
        Ok(objects) => panic!("helm template accepted values it must refuse:\n{values}\nrendered: {:?}", ids(&objects)),
        Err(message) => message,
    }
}

fn deployment(objects: &[Value]) -> &Value {
    find(objects, "Deployment", FULLNAME)
}

fn container(objects: &[Value]) -> &Value {
    let containers = deployment(objects)["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

fn args(objects: &[Value]) -> Vec<String> {
    strings(&container(objects)["args"])
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn env(objects: &[Value]) -> BTreeMap<String, Value> {
    container(objects)["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// The YAML file's `key` at the top level (Chart.yaml's version, appVersion).
fn chart_field(key: &str) -> String {
    let chart: Value = serde_yaml::from_str(&read(format!("{CHART}/Chart.yaml"))).unwrap();
    chart[key].as_str().unwrap_or_else(|| panic!("Chart.yaml has no {key}")).to_owned()
}

/// The labels the chart puts on every object of release `passwordsafe-operator`.
fn standard_labels() -> Value {
    json!({
        "helm.sh/chart": format!("passwordsafe-operator-{}", chart_field("version")),
        "app.kubernetes.io/name": "passwordsafe-operator",
        "app.kubernetes.io/instance": "passwordsafe-operator",
        "app.kubernetes.io/version": chart_field("appVersion"),
        "app.kubernetes.io/managed-by": "Helm",
    })
}

fn selector_labels() -> Value {
    json!({"app.kubernetes.io/name": "passwordsafe-operator", "app.kubernetes.io/instance": "passwordsafe-operator"})
}

/// (apiGroup, resource, verb, resourceName) for every permission a list of PolicyRules grants.
fn grants(rules: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().unwrap_or_else(|| panic!("rules: {rules}")) {
        let names = rule.get("resourceNames").map(strings).unwrap_or_else(|| vec![String::new()]);
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Files

#[test]
fn chart_crds_are_a_byte_copy_of_the_generated_crds() {
    let generated = read("crds/passwordsafe.dev.yaml");
    let copy = read(format!("{CHART}/crds/passwordsafe.dev.yaml"));
    assert!(
        generated == copy,
        "{CHART}/crds/passwordsafe.dev.yaml differs from crds/passwordsafe.dev.yaml: \
         cp crds/passwordsafe.dev.yaml {CHART}/crds/"
    );
}

#[test]
fn dockerfile_runs_the_binary_as_the_user_the_chart_expects() {
    let dockerfile = read("Dockerfile");
    let last_stage = dockerfile.rsplit("\nFROM ").next().expect("a FROM line");
    let instructions: Vec<&str> = last_stage.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let user = instructions.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    let objects = render("");
    let pod = &deployment(&objects)["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(uid, pod["runAsUser"].to_string(), "the image's USER is the chart's runAsUser");
    assert_eq!(pod["runAsNonRoot"], true);
    assert!(instructions.contains(&r#"ENTRYPOINT ["/passwordsafe-operator"]"#), "ENTRYPOINT is the binary");
    assert!(instructions.contains(&r#"CMD ["run"]"#), "the default command is `run`");
    assert!(
        dockerfile.contains("cargo build --release --locked"),
        "the image is built from Cargo.lock (--release --locked)"
    );
}

// ---------------------------------------------------------------------------------------------------------
// helm lint and values.schema.json

#[test]
fn lint_passes_strict_for_every_values_combination() {
    for (name, values) in COMBINATIONS {
        let output = helm().run(&["lint", "--strict", CHART, "--namespace", NAMESPACE], values);
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "helm lint --strict failed for {name}:\n{text}");
        assert!(text.contains("1 chart(s) linted, 0 chart(s) failed"), "{name}: {text}");
        assert!(!text.contains("[WARNING]") && !text.contains("[ERROR]"), "{name}: {text}");
    }
}

#[test]
fn lint_fails_on_values_the_schema_refuses() {
    let output = helm().run(&["lint", "--strict", CHART], "replcas: 3");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "lint accepted a typo: {text}");
    assert!(text.contains("replcas"), "{text}");
}

#[test]
fn schema_rejects_typos_wrong_types_and_credential_values() {
    for (values, mentions) in [
        ("replcas: 3", "replcas"),
        ("image: {tagg: 1.2.3}", "tagg"),
        ("metrics: {serviceMonitor: {enable: true}}", "enable"),
        ("replicas: three", "replicas"),
        ("logFormat: yaml", "logFormat"),
        ("defaultRefreshInterval: 1 hour", "defaultRefreshInterval"),
        ("watchNamespace: Not_A_Namespace", "watchNamespace"),
        ("store: {kind: SecretStore}", "kind"),
        // Credentials are Secret references only: there is no field for a value.
        ("store: {auth: {apiKey: {secretRef: {name: k, key: k}, runAs: u, key: literal-api-key}}}", "key"),
        ("store: {auth: {oauth: {clientIdSecretRef: {name: o, key: id}, clientSecret: s3cr3t}}}", "clientSecret"),
        (
            "store: {auth: {apiKey: {secretRef: {name: k, key: k}, runAs: u}, oauth: {clientIdSecretRef: {name: o, key: i}, clientSecretSecretRef: {name: o, key: s}}}}",
            "auth",
        ),
    ] {
        let error = render_error(values);
        assert!(error.contains("values don't meet the specifications of the schema"), "{values}: {error}");
        assert!(error.contains(mentions), "{values}: the error should name {mentions}: {error}");
    }
}

#[test]
fn store_values_the_crd_would_refuse_fail_with_a_message() {
    for (values, message) in [
        ("store: {create: true, auth: {apiKey: {secretRef: {name: k, key: k}, runAs: u}}}", "store.url is required"),
        ("store: {create: true, url: 'https://ps'}", "exactly one of apiKey and oauth"),
        (
            "store: {create: true, kind: ClusterPasswordSafeStore, url: 'https://ps', auth: {apiKey: {secretRef: {name: k, key: k}, runAs: u}}}",
            "store.namespaces",
        ),
        (
            "store: {create: true, url: 'https://ps', namespaces: {names: [a]}, auth: {apiKey: {secretRef: {name: k, key: k}, runAs: u}}}",
            "ClusterPasswordSafeStore only",
        ),
        (
            "store: {create: true, url: 'https://ps', auth: {apiKey: {secretRef: {name: k, key: k, namespace: other}, runAs: u}}}",
            "only from its own namespace passwordsafe-system, not other",
        ),
        ("metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}", "needs metrics.service.enabled"),
    ] {
        let error = render_error(values);
        assert!(error.contains(message), "{values}: expected {message:?} in: {error}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// The default rendering is what deploy/ ships

#[test]
fn default_rendering_is_deploy_rbac_and_operator_manifests() {
    let chart = render("");
    let mut shipped = documents(&read("deploy/rbac.yaml"));
    shipped.extend(documents(&read("deploy/operator.yaml")));
    // The release namespace is Helm's (`--create-namespace`), not the chart's: deploy/rbac.yaml creates it.
    let namespaces: Vec<Value> = shipped.iter().filter(|o| o["kind"] == "Namespace").cloned().collect();
    assert_eq!(namespaces, vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})]);
    shipped.retain(|o| o["kind"] != "Namespace");

    let key = |o: &Value| (o["apiVersion"].to_string(), id(o));
    let chart_keys: BTreeSet<_> = chart.iter().map(key).collect();
    let shipped_keys: BTreeSet<_> = shipped.iter().map(key).collect();
    assert_eq!(chart.len(), chart_keys.len(), "duplicate objects in the rendering");
    assert_eq!(chart_keys, shipped_keys, "the chart renders other objects than deploy/ ships");

    for expected in &shipped {
        let mut rendered = chart.iter().find(|o| key(o) == key(expected)).unwrap().clone();
        // deploy/rbac.yaml predates the chart and carries no labels: there the chart's labels must be exactly
        // its standard set, and the rest of the object must be equal. Everywhere else, labels too are compared.
        if expected["metadata"].get("labels").is_none() {
            let labels = rendered["metadata"].as_object_mut().unwrap().remove("labels");
            assert_eq!(labels, Some(standard_labels()), "labels of {}", id(expected));
        }
        assert_eq!(
            &rendered,
            expected,
            "{} differs between the chart and deploy/:\nchart:\n{}\ndeploy:\n{}",
            id(expected),
            serde_yaml::to_string(&rendered).unwrap(),
            serde_yaml::to_string(expected).unwrap()
        );
    }
}

#[test]
fn deploy_operator_yaml_is_the_charts_output_byte_for_byte() {
    let output = helm().run(
        &[
            "template",
            "passwordsafe-operator",
            CHART,
            "--namespace",
            NAMESPACE,
            "--show-only",
            "templates/service.yaml",
            "--show-only",
            "templates/deployment.yaml",
        ],
        "",
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let file = read("deploy/operator.yaml");
    let (header, body) = file.split_once("\n---\n").expect("a header comment, then the rendering");
    assert!(header.lines().all(|l| l.starts_with('#')), "only comments before the first document");
    assert!(
        header.contains(r#""$helm" template passwordsafe-operator charts/passwordsafe-operator"#),
        "how to regenerate"
    );
    assert_eq!(
        format!("---\n{body}"),
        String::from_utf8(output.stdout).unwrap(),
        "deploy/operator.yaml is stale: regenerate it with the command in its header"
    );
}

#[test]
fn cluster_mode_rbac_is_the_shipped_rbac() {
    let chart = render("");
    let shipped = documents(&read("deploy/rbac.yaml"));
    let shipped_role = find(&shipped, "ClusterRole", FULLNAME);
    assert_eq!(find(&chart, "ClusterRole", FULLNAME)["rules"], shipped_role["rules"]);
    let leader = find(&shipped, "Role", "passwordsafe-operator-leader-election");
    assert_eq!(find(&chart, "Role", "passwordsafe-operator-leader-election")["rules"], leader["rules"]);
    // Cluster mode has no other Role and no Namespace-scoped copy of the rules.
    assert_eq!(all_of(&chart, "Role").len(), 1);
    assert_eq!(all_of(&chart, "ClusterRole").len(), 1);
    let binding = find(&chart, "ClusterRoleBinding", FULLNAME);
    assert_eq!(binding["roleRef"]["name"], FULLNAME);
    assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]));
}

// ---------------------------------------------------------------------------------------------------------
// The Deployment

#[test]
fn default_deployment_runs_locked_down_with_probes_and_downward_api() {
    let objects = render("");
    let deployment = deployment(&objects);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = container(&objects);

    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}), "never two active operators at once");
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], selector_labels());
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"], selector_labels());
    assert_eq!(pod["serviceAccountName"], find(&objects, "ServiceAccount", FULLNAME)["metadata"]["name"]);
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        container["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
        })
    );
    assert_eq!(container["image"], format!("{IMAGE_REPOSITORY}:{}", chart_field("appVersion")));
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        args(&objects),
        [
            "run",
            "--log-level=info",
            "--log-format=json",
            "--metrics-addr=0.0.0.0:8080",
            "--health-addr=0.0.0.0:8081",
            "--concurrency=64",
            "--default-refresh-interval=1h",
            "--change-detection-interval=60s",
        ]
    );
    let env = env(&objects);
    assert_eq!(env.keys().collect::<Vec<_>>(), ["POD_NAME", "POD_NAMESPACE"], "no WATCH_NAMESPACE: all namespaces");
    assert_eq!(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");
    assert_eq!(
        container["ports"],
        json!([
            {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
            {"name": "health", "containerPort": 8081, "protocol": "TCP"},
        ])
    );
    assert_eq!(container["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "health"}));
    assert_eq!(container["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "health"}));
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    for absent in ["nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"] {
        assert!(pod.get(absent).is_none(), "{absent} rendered by default");
    }

    let service = find(&objects, "Service", "passwordsafe-operator-metrics");
    assert_eq!(service["spec"]["selector"], selector_labels());
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    for kind in ["PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy", "PasswordSafeStore", "Secret", "ConfigMap"] {
        assert!(all_of(&objects, kind).is_empty(), "{kind} rendered by default");
    }
}

/// The arguments and environment of every combination are accepted by the operator's own command line (clap
/// validates names and values, durations included, before it gets to `--help`).
#[test]
fn operator_binary_accepts_the_arguments_the_chart_passes() {
    let binary = env!("CARGO_BIN_EXE_passwordsafe-operator");
    for (name, values) in COMBINATIONS {
        let objects = render(values);
        let mut command = std::process::Command::new(binary);
        command.args(args(&objects)).arg("--help").env_clear();
        for (key, var) in env(&objects) {
            // Downward-API values are filled in by the kubelet; a literal stands in for them here.
            let value = var["value"].as_str().unwrap_or("from-downward-api").to_owned();
            command.env(key, value);
        }
        let output = command.output().expect("run passwordsafe-operator");
        assert!(
            output.status.success(),
            "{name}: passwordsafe-operator refuses the chart's arguments {:?}:\n{}",
            args(&objects),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn more_than_one_replica_turns_on_leader_election_and_a_pdb() {
    let objects = render("replicas: 3");
    assert_eq!(deployment(&objects)["spec"]["replicas"], 3);
    let args = args(&objects);
    assert!(args.contains(&"--leader-elect".to_owned()), "{args:?}");
    assert!(args.contains(&"--lease-name=passwordsafe-operator".to_owned()), "{args:?}");
    assert_eq!(deployment(&objects)["spec"]["strategy"], json!({"type": "RollingUpdate"}));
    let pdb = find(&objects, "PodDisruptionBudget", FULLNAME);
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"], json!({"minAvailable": 1, "selector": {"matchLabels": selector_labels()}}));
    // The Lease Role is the same as with one replica (always rendered).
    find(&objects, "Role", "passwordsafe-operator-leader-election");

    let objects = render("leaderElection: {enabled: true, leaseName: pso-lease}");
    let args = self::args(&objects);
    assert!(args.contains(&"--leader-elect".to_owned()) && args.contains(&"--lease-name=pso-lease".to_owned()));
    assert!(all_of(&objects, "PodDisruptionBudget").is_empty(), "one replica: no PDB unless asked");

    let default = self::args(&render(""));
    assert!(!default.iter().any(|a| a.starts_with("--leader-elect") || a.starts_with("--lease")), "{default:?}");
    let objects = render("podDisruptionBudget: {enabled: true, minAvailable: 0}");
    assert_eq!(find(&objects, "PodDisruptionBudget", FULLNAME)["spec"]["minAvailable"], 0);
}

#[test]
fn image_tag_digest_and_operator_settings_come_from_values() {
    let objects = render("image: {tag: 1.2.3, pullPolicy: Always}");
    assert_eq!(container(&objects)["image"], format!("{IMAGE_REPOSITORY}:1.2.3"));
    assert_eq!(container(&objects)["imagePullPolicy"], "Always");
    let objects = render(IMAGE_DIGEST);
    assert_eq!(
        container(&objects)["image"],
        format!("{IMAGE_REPOSITORY}@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );

    let objects = render(EVERYTHING);
    let pod = &deployment(&objects)["spec"]["template"]["spec"];
    assert_eq!(
        args(&objects),
        [
            "run",
            "--log-level=debug,kube=info",
            "--log-format=text",
            "--metrics-addr=0.0.0.0:9090",
            "--health-addr=0.0.0.0:9091",
            "--concurrency=16",
            "--default-refresh-interval=30m",
            "--change-detection-interval=2m",
            "--leader-elect",
            "--lease-name=passwordsafe-operator",
            "--lease-namespace=passwordsafe-system",
        ]
    );
    assert_eq!(env(&objects)["RUST_BACKTRACE"], json!({"name": "RUST_BACKTRACE", "value": "1"}));
    assert_eq!(container(&objects)["ports"][0]["containerPort"], 9090);
    assert_eq!(container(&objects)["ports"][1]["containerPort"], 9091);
    assert_eq!(
        deployment(&objects)["spec"]["template"]["metadata"]["annotations"],
        json!({"example.com/scrape": "true"})
    );
    assert_eq!(deployment(&objects)["spec"]["template"]["metadata"]["labels"]["team"], "platform");
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 100);
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "registry"}]));
    assert_eq!(
        find(&objects, "ServiceAccount", FULLNAME)["metadata"]["annotations"],
        json!({"example.com/role": "operator"})
    );
    let service = find(&objects, "Service", "passwordsafe-operator-metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 9090);
    assert_eq!(find(&objects, "ServiceMonitor", FULLNAME)["spec"]["endpoints"][0]["interval"], "1m");
}

// ---------------------------------------------------------------------------------------------------------
// RBAC in single-namespace mode

#[test]
fn single_namespace_mode_moves_namespaced_rules_into_a_role() {
    let objects = render("watchNamespace: apps");
    assert_eq!(env(&objects)["WATCH_NAMESPACE"], json!({"name": "WATCH_NAMESPACE", "value": "apps"}));
    assert!(try_find(&objects, "ClusterRole", FULLNAME).is_none(), "no cluster-wide Secret access");
    let subjects = json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]);

    let role = find(&objects, "Role", FULLNAME);
    assert_eq!(role["metadata"]["namespace"], "apps");
    let binding = find(&objects, "RoleBinding", FULLNAME);
    assert_eq!(binding["metadata"]["namespace"], "apps");
    assert_eq!(binding["roleRef"], json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}));
    assert_eq!(binding["subjects"], subjects);

    let stores = find(&objects, "ClusterRole", "passwordsafe-operator-cluster-stores");
    let ps = |resource: &str, verbs: &[&str]| -> Vec<(String, String, String, String)> {
        verbs.iter().map(|v| ("passwordsafe.dev".into(), resource.into(), (*v).into(), String::new())).collect()
    };
    let mut expected: BTreeSet<_> =
        ps("clusterpasswordsafestores", &["get", "list", "watch", "patch"]).into_iter().collect();
    expected.extend(ps("clusterpasswordsafestores/status", &["get", "patch"]));
    expected.insert(("".into(), "namespaces".into(), "get".into(), "apps".into()));
    assert_eq!(grants(&stores["rules"]), expected, "the ClusterRole holds only what is cluster-scoped");
    let stores_binding = find(&objects, "ClusterRoleBinding", "passwordsafe-operator-cluster-stores");
    assert_eq!(stores_binding["roleRef"]["name"], "passwordsafe-operator-cluster-stores");
    assert_eq!(stores_binding["subjects"], subjects);

    let hmac = find(&objects, "Role", "passwordsafe-operator-hmac-key");
    assert_eq!(hmac["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        grants(&hmac["rules"]),
        [("", "secrets", "get", HMAC_SECRET), ("", "secrets", "create", "")]
            .into_iter()
            .map(|(g, r, v, n)| (g.into(), r.into(), v.into(), n.into()))
            .collect()
    );
    assert_eq!(find(&objects, "RoleBinding", "passwordsafe-operator-hmac-key")["subjects"], subjects);
    find(&objects, "Role", "passwordsafe-operator-leader-election");

    // Together the namespace-mode rules grant exactly the permissions of cluster mode (scoped down, narrowed
    // by name where possible), never one more and none fewer.
    let strip_names = |set: BTreeSet<(String, String, String, String)>| -> BTreeSet<(String, String, String)> {
        set.into_iter().map(|(g, r, v, _)| (g, r, v)).collect()
    };
    let shipped = documents(&read("deploy/rbac.yaml"));
    let cluster_mode = strip_names(grants(&find(&shipped, "ClusterRole", FULLNAME)["rules"]));
    let mut namespace_mode = grants(&role["rules"]);
    namespace_mode.extend(grants(&stores["rules"]));
    namespace_mode.extend(grants(&hmac["rules"]));
    assert_eq!(strip_names(namespace_mode), cluster_mode);
}

// ---------------------------------------------------------------------------------------------------------
// ServiceMonitor, NetworkPolicy

#[test]
fn service_monitor_scrapes_the_metrics_service() {
    let objects = render("metrics: {serviceMonitor: {enabled: true, labels: {release: prometheus}}}");
    let monitor = find(&objects, "ServiceMonitor", FULLNAME);
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let service = find(&objects, "Service", "passwordsafe-operator-metrics");
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().unwrap();
    for (label, value) in selector {
        assert_eq!(&service["metadata"]["labels"][label], value, "the ServiceMonitor selects the Service by {label}");
    }
    assert_eq!(monitor["spec"]["namespaceSelector"], json!({"matchNames": [NAMESPACE]}));
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["interval"], "30s");
}

#[test]
fn network_policy_admits_only_metrics_and_health_and_allows_egress() {
    let objects = render(NETWORK_POLICY);
    let policy = find(&objects, "NetworkPolicy", FULLNAME);
    assert_eq!(policy["spec"]["podSelector"]["matchLabels"], deployment(&objects)["spec"]["selector"]["matchLabels"]);
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let container_ports: BTreeSet<String> = container(&objects)["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{
            "ports": [{"port": "metrics", "protocol": "TCP"}, {"port": "health", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }])
    );
    assert_eq!(container_ports, BTreeSet::from(["metrics".to_owned(), "health".to_owned()]));
    assert_eq!(policy["spec"]["egress"], json!([{}]), "the API server and Password Safe must stay reachable");

    let open = render("networkPolicy: {enabled: true}");
    assert!(find(&open, "NetworkPolicy", FULLNAME)["spec"]["ingress"][0].get("from").is_none(), "any source");
}

// ---------------------------------------------------------------------------------------------------------
// Stores from values

fn store(objects: &[Value]) -> Value {
    let stores: Vec<&Value> = objects.iter().filter(|o| o["apiVersion"] == "passwordsafe.dev/v1alpha1").collect();
    assert_eq!(stores.len(), 1, "one store: {:?}", ids(objects));
    assert!(all_of(objects, "Secret").is_empty(), "the chart never renders a Secret");
    let mut store = stores[0].clone();
    store["metadata"].as_object_mut().unwrap().remove("labels");
    store
}

#[test]
fn stores_are_built_from_values_with_secret_references_only() {
    assert_eq!(
        store(&render(STORE_API_KEY)),
        json!({
            "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeStore",
            "metadata": {"name": "passwordsafe", "namespace": NAMESPACE},
            "spec": {
                "url": "https://ps.example.com/BeyondTrust/api/public/v3",
                "auth": {"apiKey": {
                    "secretRef": {"name": "passwordsafe-api-key", "key": "api-key"},
                    "runAs": "svc-k8s-operator",
                    "passwordSecretRef": {"name": "passwordsafe-api-key", "key": "runas-password"},
                }},
                "tls": {"caSecretRef": {"name": "passwordsafe-ca", "key": "ca.crt"}},
                "requestDefaults": {"durationMinutes": 10, "reason": "passwordsafe-operator sync", "rotateOnCheckin": false},
                "maxConcurrency": 4,
                "changeDetectionInterval": "30s",
            },
        })
    );
    // A namespaced store goes to the watched namespace by default.
    assert_eq!(
        store(&render(STORE_OAUTH)),
        json!({
            "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeStore",
            "metadata": {"name": "ps-oauth", "namespace": "apps"},
            "spec": {
                "url": "https://ps.example.com/BeyondTrust/api/public/v3",
                "auth": {"oauth": {
                    "clientIdSecretRef": {"name": "passwordsafe-oauth", "key": "client-id"},
                    "clientSecretSecretRef": {"name": "passwordsafe-oauth", "key": "client-secret", "namespace": "apps"},
                }},
            },
        })
    );
    // Cluster stores: references without a namespace point into the release namespace.
    assert_eq!(
        store(&render(CLUSTER_STORE_API_KEY)),
        json!({
            "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "ClusterPasswordSafeStore",
            "metadata": {"name": "passwordsafe"},
            "spec": {
                "url": "https://ps.example.com/BeyondTrust/api/public/v3",
                "auth": {"apiKey": {
                    "secretRef": {"name": "passwordsafe-api-key", "key": "api-key", "namespace": NAMESPACE},
                    "runAs": "svc-k8s-operator",
                }},
                "tls": {"clientCertificateSecretRef": {"name": "passwordsafe-client-cert", "namespace": "certs"}},
                "namespaces": {"names": ["demo"], "selector": {"matchLabels": {"environment": "production"}}},
            },
        })
    );
    assert_eq!(
        store(&render(CLUSTER_STORE_OAUTH)),
        json!({
            "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "ClusterPasswordSafeStore",
            "metadata": {"name": "shared"},
            "spec": {
                "url": "https://ps.example.com/BeyondTrust/api/public/v3",
                "auth": {"oauth": {
                    "clientIdSecretRef": {"name": "passwordsafe-oauth", "key": "client-id", "namespace": NAMESPACE},
                    "clientSecretSecretRef": {"name": "passwordsafe-oauth", "key": "client-secret", "namespace": NAMESPACE},
                    "runAs": "svc-k8s-operator",
                }},
                "namespaces": {"names": ["demo", "web"]},
            },
        })
    );
}

// ---------------------------------------------------------------------------------------------------------
// On the real API server (tests/support/e2e.rs: the bundled control plane, or E2E_KUBECONFIG)

/// A test's footprint on the cluster: its namespaces and, once installed, its Helm release. Dropping it (also
/// when an assertion fails) uninstalls the release and deletes the namespaces, so a real cluster
/// (E2E_KUBECONFIG) keeps no ClusterRoles or namespaces of failed runs.
struct Footprint {
    kubeconfig: String,
    namespaces: Vec<String>,
    release: Option<(String, String)>,
}

impl Footprint {
    fn new(cluster: &e2e::Cluster, namespaces: &[&str]) -> Self {
        let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_owned();
        Self { kubeconfig, namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(), release: None }
    }

    /// `helm install RELEASE CHART --namespace NAMESPACE` with `values`. Release names are cluster-wide for
    /// the ClusterRoles: each test installs under its own.
    fn install(&mut self, release: &str, namespace: &str, values: &str) {
        // --skip-crds: the harness installed (and owns) the CRDs. No --wait: no pod ever runs on the bundled
        // control plane (no scheduler, no kubelet).
        let output = helm().run(
            &["install", release, CHART, "--namespace", namespace, "--kubeconfig", &self.kubeconfig, "--skip-crds"],
            values,
        );
        assert!(output.status.success(), "helm install failed:\n{}", String::from_utf8_lossy(&output.stderr));
        self.release = Some((release.to_owned(), namespace.to_owned()));
        let notes = String::from_utf8_lossy(&output.stdout);
        assert!(notes.contains(&format!("installed as release {release} in namespace {namespace}")), "NOTES: {notes}");
    }

    /// `helm uninstall`, which must succeed.
    fn uninstall(&mut self) {
        let (release, namespace) = self.release.take().expect("installed");
        let output = self.helm_uninstall(&release, &namespace);
        assert!(output.status.success(), "helm uninstall failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }

    fn helm_uninstall(&self, release: &str, namespace: &str) -> std::process::Output {
        helm()
            .command()
            .args(["uninstall", release, "--namespace", namespace, "--kubeconfig", &self.kubeconfig])
            .output()
            .expect("run helm uninstall")
    }
}

impl Drop for Footprint {
    fn drop(&mut self) {
        if let Some((release, namespace)) = self.release.take() {
            let _ = self.helm_uninstall(&release, &namespace);
        }
        for namespace in &self.namespaces {
            let _ = std::process::Command::new("kubectl")
                .args(["--kubeconfig", &self.kubeconfig, "delete", "namespace", namespace, "--wait=false"])
                .output();
        }
    }
}

/// Whether the real authorizer lets ServiceAccount `namespace/name` do `verb` on `resource`.
async fn can(
    client: &kube::Client,
    (sa_namespace, sa): (&str, &str),
    verb: &str,
    (group, resource, subresource): (&str, &str, &str),
    namespace: &str,
    name: &str,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{sa_namespace}:{sa}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{sa_namespace}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: (!subresource.is_empty()).then(|| subresource.into()),
                namespace: (!namespace.is_empty()).then(|| namespace.into()),
                name: (!name.is_empty()).then(|| name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("create SubjectAccessReview");
    answer.status.expect("SubjectAccessReview status").allowed
}

const SECRETS: (&str, &str, &str) = ("", "secrets", "");
const PSS: (&str, &str, &str) = ("passwordsafe.dev", "passwordsafesecrets", "");
const PSS_STATUS: (&str, &str, &str) = ("passwordsafe.dev", "passwordsafesecrets", "status");
const CLUSTER_STORES: (&str, &str, &str) = ("passwordsafe.dev", "clusterpasswordsafestores", "");
const CLUSTER_STORES_STATUS: (&str, &str, &str) = ("passwordsafe.dev", "clusterpasswordsafestores", "status");
const NAMESPACES: (&str, &str, &str) = ("", "namespaces", "");
const LEASES: (&str, &str, &str) = ("coordination.k8s.io", "leases", "");
const DEPLOYMENTS: (&str, &str, &str) = ("apps", "deployments", "");
const EVENTS: (&str, &str, &str) = ("events.k8s.io", "events", "");
const CONFIGMAPS: (&str, &str, &str) = ("", "configmaps", "");

/// A short unique suffix from a test namespace's name (`prefix-xxxxxxxx`).
fn suffix(namespace: &str) -> &str {
    namespace.rsplit('-').next().unwrap()
}

#[tokio::test]
async fn helm_install_creates_the_operator_and_uninstall_removes_it() {
    let cluster = e2e::cluster().await;
    let ns = cluster.namespace("chart-install").await;
    let other = cluster.namespace("chart-other").await;
    let release = format!("pso-{}", suffix(&ns));
    let fullname = format!("{release}-passwordsafe-operator");
    let client = cluster.admin().await;
    let mut footprint = Footprint::new(cluster, &[&ns, &other]);

    footprint.install(&release, &ns, "replicas: 2");

    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns).get(&fullname).await.expect("Deployment");
    let rendered = helm().template_as(&release, &ns, "replicas: 2").unwrap();
    let live_args = deployment.spec.unwrap().template.spec.unwrap().containers[0].args.clone().unwrap();
    assert_eq!(live_args, args_of(&rendered, &fullname), "the live Deployment runs what the chart renders");
    Api::<ServiceAccount>::namespaced(client.clone(), &ns).get(&fullname).await.expect("ServiceAccount");
    Api::<Service>::namespaced(client.clone(), &ns).get(&format!("{fullname}-metrics")).await.expect("Service");
    let role = Api::<ClusterRole>::all(client.clone()).get(&fullname).await.expect("ClusterRole");
    let shipped = documents(&read("deploy/rbac.yaml"));
    assert_eq!(
        serde_json::to_value(role.rules).unwrap(),
        find(&shipped, "ClusterRole", FULLNAME)["rules"],
        "the installed ClusterRole has the shipped rules"
    );
    Api::<ClusterRoleBinding>::all(client.clone()).get(&fullname).await.expect("ClusterRoleBinding");
    let leader = format!("{fullname}-leader-election");
    Api::<Role>::namespaced(client.clone(), &ns).get(&leader).await.expect("leader-election Role");
    Api::<RoleBinding>::namespaced(client.clone(), &ns).get(&leader).await.expect("leader-election RoleBinding");
    let pdbs = Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(client.clone(), &ns);
    pdbs.get(&fullname).await.expect("PodDisruptionBudget (2 replicas)");

    // What the operator's ServiceAccount may do, asked of the real authorizer.
    let sa = (ns.as_str(), fullname.as_str());
    assert!(can(&client, sa, "patch", SECRETS, &other, "any").await, "cluster mode: Secrets everywhere");
    assert!(can(&client, sa, "list", PSS, "", "").await, "cluster mode: list across namespaces");
    assert!(can(&client, sa, "patch", PSS_STATUS, &other, "x").await);
    assert!(can(&client, sa, "watch", CLUSTER_STORES, "", "").await);
    assert!(can(&client, sa, "create", LEASES, &ns, "").await);
    assert!(can(&client, sa, "update", LEASES, &ns, &fullname).await);
    assert!(!can(&client, sa, "create", LEASES, &other, "").await, "Leases only in the release namespace");
    assert!(!can(&client, sa, "delete", PSS, &other, "x").await, "no delete of custom resources");
    assert!(!can(&client, sa, "delete", DEPLOYMENTS, &other, "x").await, "rollout restarts patch only");
    assert!(!can(&client, sa, "get", CONFIGMAPS, &other, "x").await);

    footprint.uninstall();
    let roles = Api::<ClusterRole>::all(client.clone());
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    eventually("uninstall to remove the ClusterRole and the Deployment", Duration::from_secs(30), || {
        let (roles, deployments, fullname) = (roles.clone(), deployments.clone(), fullname.clone());
        async move {
            let gone = roles.get_opt(&fullname).await.unwrap().is_none()
                && deployments.get_opt(&fullname).await.unwrap().is_none();
            gone.then_some(())
        }
    })
    .await;
    revoked(&client, sa, &other).await;
}

/// Waits until the ServiceAccount may no longer patch Secrets in `namespace` (the apiserver's RBAC authorizer
/// learns of deleted roles through a watch, a moment after the delete).
async fn revoked(client: &kube::Client, sa: (&str, &str), namespace: &str) {
    eventually("uninstall to revoke the ServiceAccount's access", Duration::from_secs(30), || async {
        (!can(client, sa, "patch", SECRETS, namespace, "x").await).then_some(())
    })
    .await;
}

fn args_of(objects: &[Value], fullname: &str) -> Vec<String> {
    strings(&find(objects, "Deployment", fullname)["spec"]["template"]["spec"]["containers"][0]["args"])
}

#[tokio::test]
async fn single_namespace_install_grants_access_to_the_watched_namespace_only() {
    let cluster = e2e::cluster().await;
    let ns = cluster.namespace("chart-release").await;
    let watched = cluster.namespace("chart-watched").await;
    let other = cluster.namespace("chart-other").await;
    let release = format!("pso-{}", suffix(&ns));
    let fullname = format!("{release}-passwordsafe-operator");
    let client = cluster.admin().await;
    let mut footprint = Footprint::new(cluster, &[&ns, &watched, &other]);

    footprint.install(&release, &ns, &format!("watchNamespace: {watched}"));
    assert!(
        Api::<ClusterRole>::all(client.clone()).get_opt(&fullname).await.unwrap().is_none(),
        "no cluster-wide ClusterRole in single-namespace mode"
    );

    let sa = (ns.as_str(), fullname.as_str());
    // The watched namespace: everything the operator does there.
    for (verb, resource) in [
        ("list", PSS),
        ("watch", PSS),
        ("patch", PSS),
        ("patch", PSS_STATUS),
        ("get", SECRETS),
        ("watch", SECRETS),
        ("patch", SECRETS),
        ("delete", SECRETS),
        ("patch", DEPLOYMENTS),
        ("create", EVENTS),
    ] {
        assert!(can(&client, sa, verb, resource, &watched, "x").await, "{verb} {resource:?} in the watched namespace");
    }
    // Any other namespace: nothing, and nothing across all namespaces.
    for (verb, resource) in
        [("patch", SECRETS), ("get", SECRETS), ("list", PSS), ("patch", DEPLOYMENTS), ("create", EVENTS)]
    {
        assert!(!can(&client, sa, verb, resource, &other, "x").await, "{verb} {resource:?} in another namespace");
    }
    assert!(!can(&client, sa, "list", PSS, "", "").await, "list across all namespaces");
    assert!(!can(&client, sa, "list", SECRETS, "", "").await, "Secrets across all namespaces");
    // Cluster-scoped: the cluster stores, and the watched namespace's labels only.
    assert!(can(&client, sa, "list", CLUSTER_STORES, "", "").await);
    assert!(can(&client, sa, "watch", CLUSTER_STORES, "", "").await);
    assert!(can(&client, sa, "patch", CLUSTER_STORES_STATUS, "", "shared").await);
    assert!(can(&client, sa, "get", NAMESPACES, "", &watched).await);
    assert!(!can(&client, sa, "get", NAMESPACES, "", &other).await);
    // Its own namespace: the HMAC key Secret (get by name, create) and the Lease, nothing else.
    assert!(can(&client, sa, "get", SECRETS, &ns, HMAC_SECRET).await);
    assert!(can(&client, sa, "create", SECRETS, &ns, "").await);
    assert!(!can(&client, sa, "get", SECRETS, &ns, "someone-elses-secret").await);
    assert!(!can(&client, sa, "patch", SECRETS, &ns, HMAC_SECRET).await);
    assert!(can(&client, sa, "create", LEASES, &ns, "").await);
    assert!(can(&client, sa, "get", LEASES, &ns, &fullname).await);

    footprint.uninstall();
    revoked(&client, sa, &watched).await;
}

/// Server-side dry-run creates: the API server applies the CRDs' OpenAPI schemas and CEL rules to the stores
/// the chart builds, and refuses a broken one (so the check is live).
#[tokio::test]
async fn stores_from_values_pass_the_crd_validation_of_the_api_server() {
    let cluster = e2e::cluster().await;
    let ns = cluster.namespace("chart-store").await;
    let _footprint = Footprint::new(cluster, &[&ns]);
    let client = cluster.admin().await;
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let namespaced_oauth = STORE_OAUTH.replace("watchNamespace: apps", &format!("watchNamespace: {ns}"));
    let namespaced_oauth = namespaced_oauth.replace("namespace: apps", &format!("namespace: {ns}"));
    let mut cluster_store = None;
    for values in [STORE_API_KEY, &namespaced_oauth, CLUSTER_STORE_API_KEY, CLUSTER_STORE_OAUTH] {
        let objects = helm().template_as("passwordsafe-operator", &ns, values).unwrap();
        let store = store(&objects);
        let object: DynamicObject = serde_json::from_value(store.clone()).unwrap();
        let kind = store["kind"].as_str().unwrap();
        let resource = ApiResource {
            group: "passwordsafe.dev".into(),
            version: "v1alpha1".into(),
            api_version: "passwordsafe.dev/v1alpha1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
        };
        let api: Api<DynamicObject> = match store["metadata"]["namespace"].as_str() {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        if let Err(e) = api.create(&dry_run, &object).await {
            panic!("the API server refuses the chart's {kind}: {e}\n{}", serde_yaml::to_string(&store).unwrap());
        }
        if kind == "ClusterPasswordSafeStore" {
            cluster_store = Some((api, store));
        }
    }
    let (api, mut store) = cluster_store.unwrap();
    store["spec"]["auth"]["oauth"]["clientIdSecretRef"].as_object_mut().unwrap().remove("namespace");
    let broken: DynamicObject = serde_json::from_value(store).unwrap();
    let error = api.create(&dry_run, &broken).await.expect_err("a cluster store reference without a namespace");
    assert!(error.to_string().contains("needs a namespace"), "{error}");
}
