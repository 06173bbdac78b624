//! `cargo run --example client [-- --show-values]`
//!
//! Runs the Password Safe client against the bundled simulator (seed: `tests/simulator/seeds/demo.yaml`):
//! one sign-in, a managed account, an ISA account, an alias, Secrets Safe secrets, an on-demand rotation
//! picked up by the next read, the bulk listing, then sign-out. Values are masked unless `--show-values`.
//! Exits non-zero if anything does not behave as described, so CI runs it as a smoke test.

use std::time::Instant;

use anyhow::{Context, ensure};
use passwordsafe_operator::passwordsafe::{
    Auth, Client, ClientConfig, CredentialKinds, CredentialType, FolderPath, RequestOptions, SecretString, TlsConfig,
};
use passwordsafe_simulator::{Seed, ServeOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let show = std::env::args().any(|a| a == "--show-values");
    let sim = passwordsafe_simulator::start(Seed::demo(), ServeOptions::default()).await?;
    let sim_handle = sim.handle();
    println!("simulator: {}", sim.base_url());

    let auth = Auth::ApiKey {
        key: SecretString::new("demo-api-key-0123456789abcdef"),
        run_as: "svc-k8s-operator".into(),
        password: None,
    };
    let mut config = ClientConfig::new(&sim.base_url(), auth)?;
    config.tls = TlsConfig { system_roots: false, ..TlsConfig::default() };
    let client = Client::new(config)?;
    let mask = |v: &str| if show { v.to_owned() } else { format!("{} ({} chars)", "*".repeat(8), v.chars().count()) };
    let options = RequestOptions::default();

    let started = Instant::now();
    let user = client.sign_in().await.context("sign-in")?;
    println!("signed in as {}", user.user_name.unwrap_or_default());

    let account =
        client.managed_account("db01.example.test", "readonly_user", CredentialKinds::PASSWORD, &options).await?;
    let before = account.password.clone().context("password")?;
    println!(
        "managed account db01.example.test/readonly_user: password {} | LastChangeDate {:?} | request {:?} checked in: {}",
        mask(before.expose()),
        account.rotation.last_change_date,
        account.release.request_id,
        account.release.checked_in
    );

    let isa = client.managed_account("web01.example.test", "root", CredentialKinds::PASSWORD, &options).await?;
    println!(
        "ISA account web01.example.test/root: password {} | held until {} (ISA releases expire on their own)",
        mask(isa.password.as_ref().context("password")?.expose()),
        isa.release.expires_at
    );

    let kinds = CredentialKinds::PASSWORD.with(CredentialType::DssKey).with(CredentialType::Passphrase);
    let alias = client.alias("web-deploy", kinds, &options).await?;
    println!(
        "alias web-deploy -> {}/{}: password {}, DSS key {}, passphrase {}",
        alias.system_name,
        alias.account_name,
        mask(alias.password.as_ref().context("password")?.expose()),
        mask(alias.dss_key.as_ref().context("key")?.expose()),
        mask(alias.passphrase.as_ref().context("passphrase")?.expose()),
    );

    for secret in client.folder_secrets(&FolderPath::new("prod/db")).await? {
        let value = secret.password.as_ref().or(secret.text.as_ref()).map(|v| mask(v.expose())).unwrap_or_default();
        println!("secrets safe prod/db/{} ({}): {value}", secret.summary.title, secret.summary.kind.as_str());
    }
    let file = client.secret(&FolderPath::new("prod/tls"), "ca-bundle").await?;
    println!("secrets safe prod/tls/ca-bundle (file): {} bytes", file.file.as_ref().map_or(0, |f| f.len()));

    sim_handle.rotate_account("db01.example.test", "readonly_user")?;
    let rotated =
        client.managed_account("db01.example.test", "readonly_user", CredentialKinds::PASSWORD, &options).await?;
    let after = rotated.password.clone().context("password")?;
    ensure!(after.expose() != before.expose(), "the rotated password was not picked up");
    ensure!(rotated.rotation.last_change_date > account.rotation.last_change_date, "LastChangeDate did not move");
    println!("rotated readonly_user in the simulator; next read: password {} (changed: yes)", mask(after.expose()));

    let listing = client.list_managed_accounts().await?;
    println!("bulk listing: {} requestable accounts in one call", listing.len());

    ensure!(client.sign_out().await, "sign-out failed");
    let elapsed = started.elapsed();
    ensure!(sim_handle.active_sessions() == 0, "a session is still open");
    ensure!(sim_handle.open_requests().is_empty(), "a request is still open: {:?}", sim_handle.open_requests());
    ensure!(client.sign_in_count() == 1, "expected one sign-in, got {}", client.sign_in_count());

    println!(
        "\nPassword Safe API calls ({} ms in all, 1 sign-in, 0 requests left open, 0 sessions left):",
        elapsed.as_millis()
    );
    for (endpoint, count) in sim_handle.calls().into_iter().filter(|(_, n)| *n > 0) {
        println!("  {count:>3}  {endpoint}");
    }
    sim.shutdown().await;
    Ok(())
}
