//! `passwordsafe-operator check`: a troubleshooting tool. Signs in with the given settings, reads each
//! requested item the way the operator would, and says what happened at each step in plain words,
//! including Password Safe's sub-codes. It prints lengths and dates, never values.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use kube::Api;

use crate::api::{ClusterPasswordSafeStore, PasswordSafeStore, StoreKind};
use crate::controller::{StoreKey, client_config};
use crate::passwordsafe::{
    AccountCredential, Auth, Client, ClientConfig, ClientIdentity, CredentialKinds, CredentialType, Error, FolderPath,
    RequestOptions, SecretString, SecretsSafeSecret, TlsConfig,
};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Use the settings of this PasswordSafeStore (NAMESPACE/NAME) from the cluster, its credentials read from
    /// their Secrets, exactly as the operator would (instead of --url and the credential flags).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["url", "cluster_store"])]
    pub store: Option<String>,
    /// Use the settings of this ClusterPasswordSafeStore from the cluster.
    #[arg(long, value_name = "NAME", conflicts_with = "url")]
    pub cluster_store: Option<String>,
    /// Kubeconfig for --store/--cluster-store (default: in-cluster config, then KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// API base URL, e.g. https://ps.example.com/BeyondTrust/api/public/v3
    #[arg(long, env = "PS_API_URL", required_unless_present_any = ["store", "cluster_store"])]
    pub url: Option<String>,
    /// API key (prefer PS_API_KEY or --api-key-file so it stays out of shell history).
    #[arg(long, env = "PS_API_KEY", hide_env_values = true, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// RunAs user for API key sign-in (and the RunAs header for OAuth).
    #[arg(long, env = "PS_RUN_AS")]
    pub run_as: Option<String>,
    /// RunAs user's password, when the API registration requires it.
    #[arg(long, env = "PS_RUN_AS_PASSWORD", hide_env_values = true)]
    pub run_as_password: Option<String>,
    /// OAuth client ID (instead of an API key).
    #[arg(long, env = "PS_CLIENT_ID")]
    pub client_id: Option<String>,
    #[arg(long, env = "PS_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// PEM bundle of extra trusted CAs.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate. Insecure: for a lab only.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Managed account to read, as SYSTEM/ACCOUNT (repeatable).
    #[arg(long = "managed-account", value_name = "SYSTEM/ACCOUNT")]
    pub managed_accounts: Vec<String>,
    /// Also read the DSS key (and passphrase) of the managed accounts.
    #[arg(long)]
    pub dss_key: bool,
    /// Alias to read (repeatable).
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// Secrets Safe secret to read, as FOLDER/PATH/TITLE (repeatable).
    #[arg(long = "secret", value_name = "FOLDER/TITLE")]
    pub secrets: Vec<String>,
    /// Secrets Safe folder whose secrets to read (repeatable).
    #[arg(long = "folder")]
    pub folders: Vec<String>,
    /// Also read the bulk managed-account listing used for change detection.
    #[arg(long)]
    pub list: bool,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let config = match store_key(&args)? {
        Some(key) => store_config(&args, &key).await?,
        None => config(&args)?,
    };
    let client = Client::new(config).context("cannot build the Password Safe client")?;
    let mut failures = 0usize;
    match client.sign_in().await {
        Ok(user) => println!("ok    sign-in: signed in as {}", user.user_name.as_deref().unwrap_or("(unnamed user)")),
        Err(e) => {
            report_error("sign-in", &e);
            bail!("sign-in failed");
        }
    }
    let options = RequestOptions { reason: "passwordsafe-operator check".into(), ..RequestOptions::default() };
    let mut kinds = CredentialKinds::PASSWORD;
    if args.dss_key {
        kinds = kinds.with(CredentialType::DssKey).with(CredentialType::Passphrase);
    }
    for item in &args.managed_accounts {
        let Some((system, account)) = item.split_once('/') else {
            bail!("--managed-account {item:?}: expected SYSTEM/ACCOUNT")
        };
        let what = format!("managed account {item}");
        match client.managed_account(system, account, kinds, &options).await {
            Ok(c) => println!("ok    {what}: {}", describe_account(&c)),
            Err(e) => failures += report_error(&what, &e),
        }
    }
    for alias in &args.aliases {
        match client.alias(alias, CredentialKinds::PASSWORD, &options).await {
            Ok(c) => println!("ok    alias {alias}: {}", describe_account(&c)),
            Err(e) => failures += report_error(&format!("alias {alias}"), &e),
        }
    }
    for item in &args.secrets {
        let Some((folder, title)) = item.rsplit_once('/') else { bail!("--secret {item:?}: expected FOLDER/TITLE") };
        match client.secret(&FolderPath::new(folder), title).await {
            Ok(s) => println!("ok    secret {item}: {}", describe_secret(&s)),
            Err(e) => failures += report_error(&format!("secret {item}"), &e),
        }
    }
    for folder in &args.folders {
        match client.folder_secrets(&FolderPath::new(folder.as_str())).await {
            Ok(list) => {
                println!("ok    folder {folder}: {} secrets", list.len());
                for s in &list {
                    println!("        {}: {}", s.summary.title, describe_secret(s));
                }
            }
            Err(e) => failures += report_error(&format!("folder {folder}"), &e),
        }
    }
    if args.list {
        match client.list_managed_accounts().await {
            Ok(all) => println!("ok    listing: {} requestable managed accounts", all.len()),
            Err(e) => failures += report_error("listing", &e),
        }
    }
    client.sign_out().await;
    println!("ok    sign-out");
    if failures > 0 {
        bail!("{failures} check(s) failed");
    }
    Ok(())
}

fn report_error(what: &str, e: &Error) -> usize {
    let hint = if e.is_retryable() {
        "temporary: retrying later may succeed"
    } else {
        "permanent until the configuration changes"
    };
    println!("FAIL  {what}: {e} [{}; {hint}]", e.reason());
    1
}

fn describe_account(c: &AccountCredential) -> String {
    let mut parts = Vec::new();
    for kind in [CredentialType::Password, CredentialType::DssKey, CredentialType::Passphrase] {
        if let Some(v) = c.value(kind) {
            parts.push(format!("{} ({} chars)", kind.query_value(), v.len()));
        }
    }
    let r = &c.rotation;
    parts.push(format!("LastChangeDate {}", r.last_change_date.map_or("-".into(), |d| d.to_string())));
    parts.push(format!("NextChangeDate {}", r.next_change_date.map_or("-".into(), |d| d.to_string())));
    parts.push(format!("ChangeState {:?}", r.change_state));
    parts.push(match (c.isa, c.release.checked_in) {
        (true, _) => format!("ISA release until {}", c.release.expires_at),
        (false, true) => format!("request {} checked in", c.release.request_id.unwrap_or_default()),
        (false, false) => {
            format!("request {} held until {}", c.release.request_id.unwrap_or_default(), c.release.expires_at)
        }
    });
    parts.join(", ")
}

fn describe_secret(s: &SecretsSafeSecret) -> String {
    let size = s
        .password
        .as_ref()
        .map(SecretString::len)
        .or(s.text.as_ref().map(SecretString::len))
        .or(s.file.as_ref().map(|f| f.len()));
    format!(
        "{} secret, {} bytes, ModifiedOn {}",
        s.summary.kind.as_str(),
        size.unwrap_or(0),
        s.summary.modified_on.map_or("-".into(), |d| d.to_string())
    )
}

/// The store named by --store or --cluster-store, if any.
fn store_key(args: &CheckArgs) -> anyhow::Result<Option<StoreKey>> {
    if let Some(name) = &args.cluster_store {
        return Ok(Some(StoreKey { kind: StoreKind::ClusterPasswordSafeStore, namespace: None, name: name.clone() }));
    }
    let Some(item) = &args.store else { return Ok(None) };
    let Some((namespace, name)) = item.split_once('/') else { bail!("--store {item:?}: expected NAMESPACE/NAME") };
    Ok(Some(StoreKey { kind: StoreKind::PasswordSafeStore, namespace: Some(namespace.into()), name: name.into() }))
}

/// The client settings of a store object, read from the cluster like the operator reads them.
async fn store_config(args: &CheckArgs, key: &StoreKey) -> anyhow::Result<ClientConfig> {
    let kube = super::kube_client(args.kubeconfig.as_deref()).await?;
    let settings = match &key.namespace {
        Some(ns) => {
            Api::<PasswordSafeStore>::namespaced(kube.clone(), ns).get(&key.name).await.map(|s| s.spec.settings)
        }
        None => Api::<ClusterPasswordSafeStore>::all(kube.clone()).get(&key.name).await.map(|s| s.spec.settings),
    }
    .with_context(|| format!("cannot read {key}"))?;
    let config = client_config(&kube, key, &settings).await?;
    let auth = if settings.auth.oauth.is_some() { "OAuth client credentials" } else { "API key" };
    println!("ok    {key}: {} with {auth}, credentials read from their Secrets", settings.url);
    Ok(config)
}

fn config(args: &CheckArgs) -> anyhow::Result<ClientConfig> {
    let auth = match (&args.client_id, &args.api_key, &args.api_key_file) {
        (Some(id), None, None) => Auth::OAuth {
            client_id: id.clone(),
            client_secret: SecretString::new(
                args.client_secret
                    .clone()
                    .context("--client-secret (or PS_CLIENT_SECRET) is required with --client-id")?,
            ),
            run_as: args.run_as.clone(),
        },
        (None, key, file) if key.is_some() || file.is_some() => {
            let key = match (key, file) {
                (Some(k), _) => k.clone(),
                (None, Some(path)) => read_trimmed(path)?,
                _ => unreachable!(),
            };
            Auth::ApiKey {
                key: SecretString::new(key),
                run_as: args.run_as.clone().context("--run-as (or PS_RUN_AS) is required with an API key")?,
                password: args.run_as_password.clone().map(SecretString::new),
            }
        }
        _ => bail!(
            "give either an API key (--api-key, --api-key-file or PS_API_KEY) or an OAuth client (--client-id and --client-secret)"
        ),
    };
    let mut config = ClientConfig::new(args.url.as_deref().unwrap_or_default(), auth)?;
    let identity = match (&args.client_cert, &args.client_key) {
        (Some(cert), Some(key)) => {
            Some(ClientIdentity { cert_pem: read(cert)?, key_pem: SecretString::new(read(key)?) })
        }
        _ => None,
    };
    let ca_bundle_pem = args.ca_file.as_ref().map(read).transpose()?;
    config.tls =
        TlsConfig { system_roots: true, ca_bundle_pem, identity, insecure_skip_verify: args.insecure_skip_tls_verify };
    Ok(config)
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_trimmed(path: &PathBuf) -> anyhow::Result<String> {
    Ok(read(path)?.trim().to_owned())
}
