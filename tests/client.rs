//! The Password Safe client against the simulator, over real HTTP: every flow and auth mode, sessions,
//! coalescing, check-in on every path, retries, error classification, TLS and redaction.

mod support;

use std::time::Duration;

use futures::future::join_all;
use passwordsafe_operator::passwordsafe::{
    Auth, Client, CredentialKinds, CredentialSource, CredentialType, ErrorKind, FolderPath, RequestOptions,
    SecretString, SecretType,
};
use passwordsafe_simulator::{Fault, FaultRule};
use support::*;

fn fault(endpoint: &str, fault: Fault, remaining: Option<u32>) -> FaultRule {
    FaultRule { endpoint: endpoint.into(), fault, probability: 1.0, remaining }
}

fn password() -> CredentialKinds {
    CredentialKinds::PASSWORD
}

fn opts() -> RequestOptions {
    RequestOptions::default()
}

#[tokio::test]
async fn managed_account_is_requested_read_and_checked_in() {
    let sim = start_default().await;
    let client = client(&sim);
    let cred = client.managed_account("db01", "app_user", password(), &opts()).await.unwrap();
    assert_eq!(cred.password.as_ref().unwrap().expose(), APP_PASSWORD);
    assert_eq!((cred.system_name.as_str(), cred.account_name.as_str()), ("db01", "app_user"));
    assert_eq!(cred.source, CredentialSource::ManagedAccount);
    assert!(cred.release.checked_in && cred.release.request_id.is_some() && !cred.isa);
    assert!(cred.rotation.last_change_date.is_some());
    let h = sim.handle();
    for (endpoint, n) in [
        ("POST Auth/SignAppIn", 1),
        ("GET ManagedAccounts", 1),
        ("POST Requests", 1),
        ("GET Credentials", 1),
        ("PUT Requests/Checkin", 1),
    ] {
        assert_eq!(h.call_count(endpoint), n, "{endpoint}: {:?}", h.calls());
    }
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn dss_key_and_passphrase_come_from_one_request() {
    let sim = start_default().await;
    let kinds = password().with(CredentialType::DssKey).with(CredentialType::Passphrase);
    let cred = client(&sim).managed_account("db01", "ssh_user", kinds, &opts()).await.unwrap();
    assert_eq!(cred.password.as_ref().unwrap().expose(), SSH_PASSWORD);
    assert_eq!(cred.dss_key.as_ref().unwrap().expose(), SSH_KEY);
    assert_eq!(cred.passphrase.as_ref().unwrap().expose(), SSH_PASSPHRASE);
    let h = sim.handle();
    assert_eq!(
        (h.call_count("POST Requests"), h.call_count("GET Credentials"), h.call_count("PUT Requests/Checkin")),
        (1, 3, 1)
    );
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn isa_account_is_read_with_one_isa_request_and_no_check_in() {
    let sim = start_default().await;
    let cred = client(&sim).managed_account("db01", "isa_admin", password(), &opts()).await.unwrap();
    assert_eq!(cred.password.as_ref().unwrap().expose(), ISA_PASSWORD);
    assert!(cred.isa && !cred.release.checked_in && cred.release.request_id.is_none());
    let h = sim.handle();
    assert_eq!(
        (h.call_count("POST ISARequests"), h.call_count("POST Requests"), h.call_count("PUT Requests/Checkin")),
        (1, 0, 0)
    );
}

#[tokio::test]
async fn alias_is_resolved_requested_read_and_checked_in() {
    let sim = start_default().await;
    let cred = client(&sim).alias("db-app", password(), &opts()).await.unwrap();
    assert_eq!(cred.password.as_ref().unwrap().expose(), APP_PASSWORD);
    assert!(matches!(&cred.source, CredentialSource::Alias { alias_name, .. } if alias_name == "db-app"));
    let h = sim.handle();
    assert_eq!(
        (
            h.call_count("GET Aliases"),
            h.call_count("POST Aliases/Requests"),
            h.call_count("GET Aliases/Credentials"),
            h.call_count("PUT Requests/Checkin")
        ),
        (1, 1, 1, 1)
    );
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn oauth_client_credentials_sign_in_and_read() {
    let sim = start_default().await;
    let client = Client::new(config(&sim, oauth_auth("operator-client"))).unwrap();
    let cred = client.managed_account("db01", "app_user", password(), &opts()).await.unwrap();
    assert_eq!(cred.password.as_ref().unwrap().expose(), APP_PASSWORD);
    let h = sim.handle();
    assert_eq!((h.call_count("POST Auth/Connect/Token"), h.call_count("POST Auth/SignAppIn")), (1, 1));
}

#[tokio::test]
async fn oauth_session_is_renewed_before_the_token_expires() {
    let sim = start_default().await;
    // Token lifetime 2 s: renewal is due after 1 s (half the lifetime when the margin is larger).
    let client = Client::new(config(&sim, oauth_auth("short-lived"))).unwrap();
    client.sign_in().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client.find_managed_account("db01", "app_user").await.unwrap();
    let h = sim.handle();
    assert_eq!((h.call_count("POST Auth/Connect/Token"), h.call_count("POST Auth/SignAppIn")), (2, 2));
    assert_eq!(h.call_count("POST Auth/Signout"), 1, "the replaced session is signed out");
    assert_eq!(h.call_count("GET ManagedAccounts"), 1, "no call was rejected with 401 first");
}

#[tokio::test]
async fn bad_oauth_client_is_refused_with_a_clear_error() {
    let sim = start_default().await;
    let auth =
        Auth::OAuth { client_id: "operator-client".into(), client_secret: SecretString::new("wrong"), run_as: None };
    let err = Client::new(config(&sim, auth)).unwrap().sign_in().await.unwrap_err();
    assert_eq!((err.operation, err.status()), ("POST Auth/Connect/Token", Some(401)));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn api_key_with_run_as_password_signs_in_only_with_the_password() {
    let sim = start_default().await;
    let key = SecretString::new(format!("{API_KEY}-pwd"));
    let with =
        Auth::ApiKey { key: key.clone(), run_as: "svc-pwd".into(), password: Some(SecretString::new(USER_PASSWORD)) };
    assert!(Client::new(config(&sim, with)).unwrap().sign_in().await.is_ok());
    let without = Auth::ApiKey { key, run_as: "svc-pwd".into(), password: None };
    let err = Client::new(config(&sim, without)).unwrap().sign_in().await.unwrap_err();
    assert_eq!(err.reason(), "Unauthenticated");
}

#[tokio::test]
async fn secrets_safe_credential_text_and_file_are_read_exactly() {
    let sim = start_default().await;
    let client = client(&sim);
    let folder = FolderPath::new("prod/db");
    let cred = client.secret(&folder, "db-creds").await.unwrap();
    assert_eq!(cred.summary.kind, SecretType::Credential);
    assert_eq!((cred.username.as_deref(), cred.password.as_ref().unwrap().expose()), (Some("dbuser"), SECRET_PASSWORD));
    assert_eq!(cred.notes.as_ref().unwrap().expose(), "rotated quarterly");
    let text = client.secret(&folder, "app-config").await.unwrap();
    assert_eq!(text.text.as_ref().unwrap().expose(), SECRET_TEXT);
    let file = client.secret(&folder, "tls-bundle").await.unwrap();
    assert_eq!(file.file.as_ref().unwrap().expose(), FILE_BYTES);
    assert!(cred.summary.modified_on.is_some());
    let missing = client.secret(&folder, "nope").await.unwrap_err();
    assert!(missing.is_not_found() && !missing.is_retryable(), "{missing}");
}

#[tokio::test]
async fn a_folder_lists_its_own_secrets_only() {
    let sim = start_default().await;
    let secrets = client(&sim).folder_secrets(&FolderPath::new("prod/db")).await.unwrap();
    let mut titles: Vec<_> = secrets.iter().map(|s| s.summary.title.as_str()).collect();
    titles.sort();
    assert_eq!(titles, ["app-config", "db-creds", "tls-bundle"]);
    let summaries = client(&sim).list_secrets(&FolderPath::new("prod/db/archive")).await.unwrap();
    assert_eq!(summaries.len(), 1);
}

#[tokio::test]
async fn bulk_listing_pages_through_every_account_with_rotation_fields() {
    let sim = start(&seed_yaml(&bulk_accounts(10, 0))).await;
    let mut config = config(&sim, api_key_auth());
    config.page_size = 4;
    let accounts = Client::new(config).unwrap().list_managed_accounts().await.unwrap();
    // 7 on db01 except the one denied to this user, 1 placeholder + 10 on bulk.
    assert_eq!(accounts.len(), 6 + 11, "{:?}", accounts.iter().map(|a| &a.account_name).collect::<Vec<_>>());
    assert!(accounts.iter().all(|a| a.last_change_date.is_some()));
    assert_eq!(sim.handle().call_count("GET ManagedAccounts"), 5, "17 accounts in pages of 4");
}

#[tokio::test]
async fn fifty_concurrent_retrievals_of_fifty_accounts_sign_in_once_and_leave_nothing_open() {
    let sim = start(&seed_yaml(&bulk_accounts(50, 10))).await;
    let client = client(&sim);
    let names: Vec<String> =
        (0..50).map(|i| format!("acct-{i:03}")).chain((0..10).map(|i| format!("isa-{i:03}"))).collect();
    let results =
        join_all(
            names.iter().map(|name| {
                let client = client.clone();
                async move {
                    client.managed_account("bulk", name, CredentialKinds::PASSWORD, &RequestOptions::default()).await
                }
            }),
        )
        .await;
    for (name, result) in names.iter().zip(&results) {
        let cred = result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = if name.starts_with("isa") {
            format!("isa-pass-{}", &name[4..])
        } else {
            format!("bulk-pass-{}", &name[5..])
        };
        assert_eq!(cred.password.as_ref().unwrap().expose(), want);
    }
    let h = sim.handle();
    assert_eq!(h.call_count("POST Auth/SignAppIn"), 1, "{:?}", h.calls());
    assert_eq!(h.call_count("POST Requests"), 50);
    assert_eq!(h.call_count("GET Credentials"), 50);
    assert_eq!(h.call_count("PUT Requests/Checkin"), 50);
    assert_eq!(h.call_count("POST ISARequests"), 10);
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn twenty_concurrent_retrievals_of_one_account_share_one_request_cycle() {
    let sim = start_default().await;
    let h = sim.handle();
    // Slow the cycle down so all twenty callers surely overlap it.
    h.set_faults(vec![fault("GET Credentials", Fault::Latency { ms: 150 }, None)]);
    let client = client(&sim);
    let options = opts();
    let results = join_all((0..20).map(|_| client.managed_account("db01", "app_user", password(), &options))).await;
    for r in &results {
        assert_eq!(r.as_ref().unwrap().password.as_ref().unwrap().expose(), APP_PASSWORD);
    }
    assert_eq!(
        (h.call_count("POST Requests"), h.call_count("GET Credentials"), h.call_count("PUT Requests/Checkin")),
        (1, 1, 1)
    );
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn overlapping_retrievals_of_different_types_do_not_check_in_under_each_other() {
    let sim = start_default().await;
    let h = sim.handle();
    h.set_faults(vec![fault("GET Credentials", Fault::Latency { ms: 100 }, None)]);
    let client = client(&sim);
    let options = opts();
    let (a, b) = tokio::join!(
        client.managed_account("db01", "ssh_user", password(), &options),
        client.managed_account("db01", "ssh_user", CredentialKinds::default().with(CredentialType::DssKey), &options),
    );
    assert_eq!(a.unwrap().password.as_ref().unwrap().expose(), SSH_PASSWORD);
    assert_eq!(b.unwrap().dss_key.as_ref().unwrap().expose(), SSH_KEY);
    assert_eq!(h.call_count("POST Requests"), 2, "two cycles, one shared request (reuse)");
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn an_expired_session_is_replaced_by_exactly_one_sign_in_for_a_burst_of_callers() {
    let sim = start(&seed_yaml(&bulk_accounts(30, 0))).await;
    let client = client(&sim);
    client.sign_in().await.unwrap();
    sim.handle().expire_sessions();
    let results = join_all((0..30).map(|i| {
        let client = client.clone();
        async move { client.find_managed_account("bulk", &format!("acct-{i:03}")).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(sim.handle().call_count("POST Auth/SignAppIn"), 2);
    assert_eq!(client.sign_in_count(), 2);
}

#[tokio::test]
async fn a_failed_credential_read_still_checks_the_request_in() {
    let sim = start_default().await;
    let h = sim.handle();
    h.set_faults(vec![fault("GET Credentials", Fault::Status { status: 403, body: Some("4031".into()) }, None)]);
    let err = client(&sim).managed_account("db01", "app_user", password(), &opts()).await.unwrap_err();
    assert_eq!((err.operation, err.reason()), ("GET Credentials", "PermissionDenied"));
    assert_eq!(h.call_count("PUT Requests/Checkin"), 1);
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn a_malformed_credential_is_an_error_and_the_request_is_checked_in() {
    let sim = start_default().await;
    let h = sim.handle();
    h.set_faults(vec![fault("GET Credentials", Fault::Malformed, None)]);
    let err = client(&sim).managed_account("db01", "app_user", password(), &opts()).await.unwrap_err();
    assert_eq!(err.reason(), "InvalidResponse", "{err}");
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let sim = start_default().await;
    sim.handle().set_faults(vec![fault("GET ManagedAccounts", Fault::Oversized { bytes: 300_000 }, None)]);
    let mut config = config(&sim, api_key_auth());
    config.max_response_bytes = 100_000;
    let err = Client::new(config).unwrap().find_managed_account("db01", "app_user").await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::ResponseTooLarge { limit: 100_000 }), "{err}");
}

#[tokio::test]
async fn server_errors_and_dropped_connections_on_reads_are_retried() {
    let sim = start_default().await;
    let h = sim.handle();
    h.set_faults(vec![
        fault("GET ManagedAccounts", Fault::Status { status: 503, body: None }, Some(2)),
        fault("GET Credentials", Fault::Drop, Some(1)),
    ]);
    let cred = client(&sim).managed_account("db01", "app_user", password(), &opts()).await.unwrap();
    assert_eq!(cred.password.as_ref().unwrap().expose(), APP_PASSWORD);
    assert_eq!((h.call_count("GET ManagedAccounts"), h.call_count("GET Credentials")), (3, 2));
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn a_reuse_request_is_retried_after_a_dropped_connection_without_leaving_a_duplicate() {
    let sim = start_default().await;
    let h = sim.handle();
    h.set_faults(vec![fault("POST Requests", Fault::Drop, Some(1))]);
    client(&sim).managed_account("db01", "app_user", password(), &opts()).await.unwrap();
    assert_eq!(h.call_count("POST Requests"), 2);
    assert!(h.open_requests().is_empty());
}

#[tokio::test]
async fn an_isa_request_is_not_repeated_after_an_unknown_outcome() {
    let sim = start_default().await;
    let h = sim.handle();
    h.set_faults(vec![fault("POST ISARequests", Fault::Status { status: 503, body: None }, Some(1))]);
    let err = client(&sim).managed_account("db01", "isa_admin", password(), &opts()).await.unwrap_err();
    assert_eq!((err.reason(), err.is_retryable()), ("ServerError", true));
    assert_eq!(h.call_count("POST ISARequests"), 1);
}

#[tokio::test]
async fn rate_limits_are_waited_out_when_short_and_reported_when_long() {
    let sim = start_default().await;
    let h = sim.handle();
    h.set_faults(vec![fault("GET ManagedAccounts", Fault::TooManyRequests { retry_after_secs: 1 }, Some(1))]);
    client(&sim).find_managed_account("db01", "app_user").await.unwrap();
    assert_eq!(h.call_count("GET ManagedAccounts"), 2);

    // Longer than the client's max_retry_after (2 s): give up at once and say how long to wait.
    h.set_faults(vec![fault("GET ManagedAccounts", Fault::TooManyRequests { retry_after_secs: 120 }, Some(1))]);
    let err = client(&sim).find_managed_account("db01", "app_user").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited { retry_after: Some(std::time::Duration::from_secs(120)) });
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_call_slower_than_the_timeout_fails_as_a_timeout() {
    let sim = start_default().await;
    sim.handle().set_faults(vec![fault("GET ManagedAccounts", Fault::Latency { ms: 2_000 }, None)]);
    let mut config = config(&sim, api_key_auth());
    config.timeout = std::time::Duration::from_millis(200);
    config.retry.max_attempts = 2;
    let err = Client::new(config).unwrap().find_managed_account("db01", "app_user").await.unwrap_err();
    assert_eq!((err.reason(), err.is_retryable()), ("Timeout", true));
    assert_eq!(sim.handle().call_count("GET ManagedAccounts"), 2);
}

#[tokio::test]
async fn api_errors_are_classified_with_their_sub_codes() {
    let sim = start_default().await;
    let client = client(&sim);
    let missing = client.managed_account("db01", "ghost", password(), &opts()).await.unwrap_err();
    assert!(missing.is_not_found() && !missing.is_retryable());
    assert!(missing.to_string().contains("db01/ghost"), "{missing}");

    let approver = client.managed_account("db01", "approver_only", password(), &opts()).await.unwrap_err();
    assert_eq!(
        (approver.operation, approver.reason(), approver.is_retryable()),
        ("POST Requests", "ApproverOnly", false)
    );
    assert!(approver.to_string().contains("4033"), "{approver}");

    let approvers = client.managed_account("db01", "no_approvers", password(), &opts()).await.unwrap_err();
    assert_eq!(approvers.reason(), "NotEnoughApprovers");

    let pending = client.managed_account("db01", "needs_approval", password(), &opts()).await.unwrap_err();
    assert_eq!((pending.reason(), pending.is_retryable()), ("PendingApproval", true));
    // A pending request cannot be checked in; with ConflictOption=reuse the next attempt joins it instead
    // of piling up a second one.
    let again = client.managed_account("db01", "needs_approval", password(), &opts()).await.unwrap_err();
    assert_eq!(again.reason(), "PendingApproval");
    let open = sim.handle().open_requests();
    assert!(open.iter().filter(|r| r.account_name == "needs_approval").count() <= 1, "{open:?}");
    assert!(open.iter().all(|r| r.account_name == "needs_approval"), "{open:?}");
}

#[tokio::test]
async fn accounts_denied_to_the_user_are_not_found_or_forbidden() {
    let sim = start_default().await;
    let err = client(&sim).managed_account("db01", "denied", password(), &opts()).await.unwrap_err();
    assert!(err.is_not_found() || err.reason() == "PermissionDenied", "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_rejected_api_key_is_a_permanent_authentication_error() {
    let sim = start_default().await;
    let auth = Auth::ApiKey { key: SecretString::new("wrong-key"), run_as: "svc-operator".into(), password: None };
    let err = Client::new(config(&sim, auth)).unwrap().sign_in().await.unwrap_err();
    assert_eq!((err.operation, err.reason(), err.is_retryable()), ("POST Auth/SignAppIn", "Unauthenticated", false));
}

#[tokio::test]
async fn sign_out_ends_the_server_session() {
    let sim = start_default().await;
    let client = client(&sim);
    client.sign_in().await.unwrap();
    assert_eq!(sim.handle().active_sessions(), 1);
    assert!(client.sign_out().await);
    assert_eq!(sim.handle().active_sessions(), 0);
    assert!(!client.sign_out().await, "nothing left to sign out");
}

#[tokio::test]
async fn a_closed_client_signs_out_and_never_signs_in_again() {
    let sim = start_default().await;
    let client = client(&sim);
    let clone = client.clone();
    client.sign_in().await.unwrap();
    assert!(client.close(Duration::from_secs(5)).await);
    assert_eq!(sim.handle().active_sessions(), 0);
    // A caller still holding the replaced client (an in-flight sync) gets a retryable error, not a new session.
    let err = clone.sign_in().await.unwrap_err();
    assert_eq!((err.reason(), err.is_retryable()), ("Aborted", true));
    assert_eq!((client.sign_in_count(), sim.handle().active_sessions()), (1, 0));
}

#[tokio::test]
async fn close_waits_for_a_cycle_in_flight_to_check_in_and_refuses_new_ones() {
    let sim = start_default().await;
    // The credential read is slow, so the cycle is still in flight when the client closes.
    sim.handle().set_faults(vec![fault("GET Credentials", Fault::Latency { ms: 300 }, None)]);
    let client = client(&sim);
    let reader = client.clone();
    let in_flight = tokio::spawn(async move { reader.managed_account("db01", "app_user", password(), &opts()).await });
    while sim.handle().open_requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(client.close(Duration::from_secs(10)).await);
    let read = in_flight.await.unwrap().expect("the cycle in flight finishes");
    assert_eq!(read.password.as_ref().unwrap().expose(), APP_PASSWORD);
    assert!(sim.handle().open_requests().is_empty(), "checked in before the sign-out");
    assert_eq!(sim.handle().active_sessions(), 0);
    let refused = client.managed_account("db01", "app_user", password(), &opts()).await.unwrap_err();
    assert_eq!(refused.reason(), "Aborted");
    assert_eq!(sim.handle().call_count("POST Requests"), 1);
}

#[tokio::test]
async fn concurrency_limit_bounds_calls_in_flight() {
    let sim = start(&seed_yaml(&bulk_accounts(12, 0))).await;
    sim.handle().set_faults(vec![fault("GET ManagedAccounts", Fault::Latency { ms: 40 }, None)]);
    let mut config = config(&sim, api_key_auth());
    config.max_concurrency = 3;
    let client = Client::new(config).unwrap();
    client.sign_in().await.unwrap();
    let results = join_all((0..12).map(|i| {
        let client = client.clone();
        async move { client.find_managed_account("bulk", &format!("acct-{i:03}")).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok));
    assert!(sim.handle().max_in_flight() <= 3, "max in flight {}", sim.handle().max_in_flight());
    assert!(sim.handle().max_in_flight() >= 2, "the calls did overlap");
}

/// Every type that can hold a credential, formatted every way, and everything the client logged at TRACE
/// during a full run of every flow: no seeded secret value appears.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_value_is_formatted_or_logged() {
    let (logs, _guard) = capture_logs();
    let sim = start_default().await;
    let config = config(&sim, api_key_auth());
    let client = Client::new(config.clone()).unwrap();
    let kinds = password().with(CredentialType::DssKey).with(CredentialType::Passphrase);
    let ssh = client.managed_account("db01", "ssh_user", kinds, &opts()).await.unwrap();
    let app = client.managed_account("db01", "app_user", password(), &opts()).await.unwrap();
    let isa = client.managed_account("db01", "isa_admin", password(), &opts()).await.unwrap();
    let alias = client.alias("db-app", password(), &opts()).await.unwrap();
    let folder = client.folder_secrets(&FolderPath::new("prod/db")).await.unwrap();
    sim.handle().set_faults(vec![fault("GET Credentials", Fault::Malformed, None)]);
    let err = client.managed_account("db01", "app_user", password(), &opts()).await.unwrap_err();
    let oauth = oauth_auth("operator-client");
    client.sign_out().await;

    let mut shown = logs.text();
    for item in [
        format!("{ssh:?}"),
        format!("{app:#?}"),
        format!("{isa:?}"),
        format!("{alias:?}"),
        format!("{folder:?}"),
        format!("{err} {err:?}"),
        format!("{config:?}"),
        format!("{oauth:?}"),
        format!("{client:?}"),
    ] {
        shown.push_str(&item);
    }
    assert!(shown.contains("[redacted]"));
    for value in seeded_secret_values() {
        assert!(!shown.contains(value), "secret value {value:?} leaked");
    }
    assert!(!shown.contains("ASP.NET_SessionId"), "session cookie leaked");
    assert!(!shown.contains("key="), "authorization header leaked");
    assert!(!shown.to_lowercase().contains("bearer "), "bearer token leaked");
}
