//! POST/GET Requests, GET Credentials, check-in, conflicts and expiry.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, DEMO_AUTH, demo, json as body, start_yaml};

/// Two users sharing one key; account `s/a` (id 1, system 1) allows one open request, `s/b` two.
const SHARED_SEED: &str = "
users: [{name: u1}, {name: u2}]
apiKeys: [{key: k, runAs: [u1, u2]}]
compat: {requestIdAsObject: false}
systems:
  - name: s
    accounts:
      - {name: a, password: pa, maximumReleaseDuration: 60}
      - {name: b, password: pb, maxConcurrentRequests: 2, dssKey: KEY, passphrase: PHRASE}
";

#[tokio::test]
async fn request_credentials_checkin_cycle() {
    let running = start_yaml(SHARED_SEED).await;
    let client = Client::signed_in(&running, "PS-Auth key=k; runas=u1;").await;
    let (status, id) = client.request_account(1, 1, json!({"Reason": "deploy"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = id.as_i64().expect("bare request id");
    assert_eq!(client.credentials(id).await, (StatusCode::OK, json!("pa")));

    let listed = body(client.get("Requests?status=active").await).await;
    let record = &listed[0];
    assert_eq!(record["RequestID"], id);
    assert_eq!(record["SystemID"], 1);
    assert_eq!(record["AccountName"], "a");
    assert_eq!(record["Status"], "Active");
    assert_eq!(record["AccessType"], "View");
    assert_eq!(record["Reason"], "deploy");
    assert_eq!(record["AliasID"], Value::Null);
    assert_eq!(body(client.get("Requests?status=pending").await).await, json!([]));
    assert_eq!(running.handle().open_requests().len(), 1);

    assert_eq!(client.checkin(id).await, StatusCode::NO_CONTENT);
    assert_eq!(client.credentials(id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(client.checkin(id).await, StatusCode::NOT_FOUND);
    assert!(running.handle().open_requests().is_empty());

    // The deprecated check-in URI and an empty body work too.
    let (_, id) = client.request_account(1, 1, json!({})).await;
    let release = client.request(reqwest::Method::PUT, &format!("requests/release/{id}")).send().await.unwrap();
    assert_eq!(release.status(), StatusCode::NO_CONTENT);
    assert_eq!(running.handle().call_count("PUT Requests/Checkin"), 3);
}

#[tokio::test]
async fn conflicts_reuse_renew_and_concurrency_limit() {
    let running = start_yaml(SHARED_SEED).await;
    let u1 = Client::signed_in(&running, "PS-Auth key=k; runas=u1;").await;
    let u2 = Client::signed_in(&running, "PS-Auth key=k; runas=u2;").await;
    let (_, first) = u1.request_account(1, 1, json!({})).await;
    let (status, conflict) = u1.request_account(1, 1, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(conflict, json!("Conflicting request exists"));

    let (status, reused) = u1.request_account(1, 1, json!({"ConflictOption": "reuse"})).await;
    assert_eq!((status, &reused), (StatusCode::OK, &first));
    // Reuse matches the access type too: an SSH request is a different one, and it conflicts.
    let (status, _) = u1.request_account(1, 1, json!({"ConflictOption": "reuse", "AccessType": "SSH"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, renewed) = u1.request_account(1, 1, json!({"ConflictOption": "renew"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(renewed, first);
    assert_eq!(u1.credentials(first.as_i64().unwrap()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(running.handle().open_requests().len(), 1);

    // maxConcurrentRequests (default 1) counts every user's requests...
    assert_eq!(u2.request_account(1, 1, json!({})).await.0, StatusCode::CONFLICT);
    assert_eq!(u2.request_account(1, 1, json!({"ConflictOption": "reuse"})).await.0, StatusCode::CONFLICT);
    // ...and another user's request is not theirs to read or check in.
    let renewed = renewed.as_i64().unwrap();
    assert_eq!(u2.credentials(renewed).await, (StatusCode::FORBIDDEN, json!(4031)));
    assert_eq!(u2.checkin(renewed).await, StatusCode::FORBIDDEN);
    // Account b allows two users at once.
    assert_eq!(u1.request_account(1, 2, json!({})).await.0, StatusCode::CREATED);
    assert_eq!(u2.request_account(1, 2, json!({})).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn invalid_requests_answer_400_and_policies_answer_403_subcodes() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    for bad in [
        json!({"SystemID": 1, "AccountID": 101}),
        json!({"SystemID": 1, "AccountID": 101, "DurationMinutes": 0}),
        json!({"SystemID": 1, "AccountID": 101, "DurationMinutes": 525601}),
        json!({"SystemID": 1, "AccountID": 101, "DurationMinutes": "soon"}),
        json!({"SystemID": 1, "DurationMinutes": 10}),
        json!({"SystemID": 1, "AccountID": 101, "DurationMinutes": 10, "AccessType": "Telnet"}),
        json!({"SystemID": 1, "AccountID": 101, "DurationMinutes": 10, "ConflictOption": "steal"}),
    ] {
        let response = client.post("Requests", bad.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(body(response).await.is_string());
    }
    let not_json = client.request(reqwest::Method::POST, "Requests").body("{nope").send().await.unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    // Wrong system for the account, ISA account, API disabled: 4031. Approver only 4033, no approvers 4035.
    for (system, account, code) in [(2, 101, 4031), (2, 7, 4031), (1, 5, 4031), (1, 3, 4033), (1, 4, 4035)] {
        let (status, sub_code) = client.request_account(system, account, json!({})).await;
        assert_eq!((status, sub_code), (StatusCode::FORBIDDEN, json!(code)), "{system}/{account}");
    }
}

#[tokio::test]
async fn pending_requests_answer_4034_until_approved() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let (status, id) = client.request_account(1, 2, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = id.as_i64().unwrap();
    assert_eq!(client.credentials(id).await, (StatusCode::FORBIDDEN, json!(4034)));
    assert_eq!(client.checkin(id).await, StatusCode::FORBIDDEN);
    let pending = body(client.get("Requests?status=pending").await).await;
    assert_eq!(pending[0]["Status"], "Pending");
    assert_eq!(pending[0]["ApprovedDate"], Value::Null);
    running.handle().approve_request(id).unwrap();
    assert_eq!(client.credentials(id).await, (StatusCode::OK, json!("Needs-Approval-1")));
}

#[tokio::test]
async fn requests_expire_with_simulated_time() {
    let running = start_yaml(SHARED_SEED).await;
    let handle = running.handle();
    let client = Client::signed_in(&running, "PS-Auth key=k; runas=u1;").await;
    let (_, id) = client.request_account(1, 1, json!({"DurationMinutes": 10})).await;
    let id = id.as_i64().unwrap();
    let left = handle.open_requests()[0].expires.duration_since(handle.now());
    assert!(left <= jiff::SignedDuration::from_mins(10) && left > jiff::SignedDuration::from_secs(599), "{left:?}");
    handle.advance_clock(Duration::from_secs(9 * 60));
    assert_eq!(client.credentials(id).await.0, StatusCode::OK);
    handle.advance_clock(Duration::from_secs(61));
    assert_eq!(client.credentials(id).await.0, StatusCode::NOT_FOUND);
    assert!(handle.open_requests().is_empty());
    // Once expired, the account can be requested again without a conflict.
    assert_eq!(client.request_account(1, 1, json!({})).await.0, StatusCode::CREATED);
    // Longer than the account's maximumReleaseDuration (60): 400.
    assert_eq!(client.request_account(1, 2, json!({"DurationMinutes": 61})).await.0, StatusCode::CREATED);
    assert_eq!(
        client.request_account(1, 1, json!({"DurationMinutes": 61, "ConflictOption": "renew"})).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn dss_key_and_passphrase_types() {
    let running = start_yaml(SHARED_SEED).await;
    let client = Client::signed_in(&running, "PS-Auth key=k; runas=u1;").await;
    let (_, with_key) = client.request_account(1, 2, json!({})).await;
    let (_, without_key) = client.request_account(1, 1, json!({})).await;
    let get = |id: &Value, kind: &str| {
        let path = format!("Credentials/{id}?type={kind}");
        let request = client.request(reqwest::Method::GET, &path);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(body(get(&with_key, "dsskey").await).await, json!("KEY"));
    assert_eq!(body(get(&with_key, "PASSPHRASE").await).await, json!("PHRASE"));
    assert_eq!(body(get(&with_key, "password").await).await, json!("pb"));
    assert_eq!(get(&without_key, "dsskey").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(get(&without_key, "passphrase").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(get(&with_key, "certificate").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(client.get("Credentials/abc").await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn compat_request_id_as_object() {
    let running = start_yaml(&SHARED_SEED.replace("requestIdAsObject: false", "requestIdAsObject: true")).await;
    let client = Client::signed_in(&running, "PS-Auth key=k; runas=u1;").await;
    let (status, created) = client.request_account(1, 1, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["RequestID"].as_i64().expect("object with RequestID");
    assert_eq!(client.credentials(id).await.0, StatusCode::OK);
    let (status, reused) = client.request_account(1, 1, json!({"ConflictOption": "reuse"})).await;
    assert_eq!((status, reused), (StatusCode::OK, created));
}

#[tokio::test]
async fn demo_seed_request_flow_uses_demo_key() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let account = body(client.get("ManagedAccounts?systemName=db01.example.test&accountName=app_user").await).await;
    let (status, id) = client
        .request_account(account["SystemId"].as_i64().unwrap(), account["AccountId"].as_i64().unwrap(), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(client.credentials(id.as_i64().unwrap()).await, (StatusCode::OK, json!("Initial-App-Passw0rd!")));
}
