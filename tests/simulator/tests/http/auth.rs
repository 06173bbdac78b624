//! Sign-in, sessions and OAuth.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Client, DEMO_AUTH, demo, json as body};

#[tokio::test]
async fn sign_in_sets_session_cookie_and_sign_out_ends_it() {
    let running = demo().await;
    let mut client = Client::new(&running);
    let response = client.sign_in(DEMO_AUTH).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("ASP.NET_SessionId="), "{cookie}");
    assert!(cookie.ends_with("; path=/; HttpOnly"), "{cookie}");
    let user = body(response).await;
    assert_eq!(user["UserId"], 10);
    assert_eq!(user["UserName"], "svc-k8s-operator");
    assert_eq!(user["Name"], "Kubernetes operator");
    assert_eq!(user["SID"], serde_json::Value::Null);
    assert_eq!(running.handle().active_sessions(), 1);

    assert_eq!(client.get("ManagedAccounts").await.status(), StatusCode::OK);
    let signout = client.request(reqwest::Method::POST, "Auth/Signout").send().await.unwrap();
    assert_eq!(signout.status(), StatusCode::OK);
    let after = client.get("ManagedAccounts").await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(after).await, json!("User not authenticated"));
    assert_eq!(running.handle().active_sessions(), 0);
}

#[tokio::test]
async fn bad_key_runas_or_password_answers_401() {
    let running = demo().await;
    let mut client = Client::new(&running);
    for authorization in [
        "PS-Auth key=wrong; runas=svc-k8s-operator;",
        "PS-Auth key=demo-api-key-0123456789abcdef; runas=alice;",
        "PS-Auth key=demo-api-key-with-password; runas=alice;",
        "PS-Auth key=demo-api-key-with-password; runas=alice; pwd=[wrong];",
        "Basic Zm9vOmJhcg==",
    ] {
        let response = client.sign_in(authorization).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{authorization}");
        assert_eq!(body(response).await, json!("User not authenticated"));
    }
    let ok = client.sign_in("ps-auth key = demo-api-key-with-password ;runas=ALICE;pwd=[alice-Pa55word]").await;
    assert_eq!(ok.status(), StatusCode::OK);
    // Without a cookie every other endpoint answers 401.
    let anonymous = Client::new(&running);
    assert_eq!(anonymous.get("Secrets-Safe/Folders").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(running.handle().call_count("POST Auth/SignAppIn"), 6);
    assert_eq!(running.handle().call_count("GET Secrets-Safe/Folders"), 1);
}

#[tokio::test]
async fn oauth_token_signs_in_and_session_ends_with_token() {
    let running = demo().await;
    let http = reqwest::Client::new();
    let token_url = format!("{}/Auth/connect/token", running.base_url());
    let bad = http
        .post(&token_url)
        .form(&[("grant_type", "client_credentials"), ("client_id", "demo-client"), ("client_secret", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(bad).await, json!({"error": "invalid_client"}));

    let good = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "demo-client-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    let token = body(good).await;
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 600);
    assert_eq!(token["scope"], "publicapi");
    let access_token = token["access_token"].as_str().unwrap();

    let client = Client::signed_in(&running, &format!("Bearer {access_token}")).await;
    assert_eq!(client.get("ManagedAccounts").await.status(), StatusCode::OK);
    running.handle().advance_clock(Duration::from_secs(601));
    assert_eq!(client.get("ManagedAccounts").await.status(), StatusCode::UNAUTHORIZED);
    let mut again = Client::new(&running);
    assert_eq!(again.sign_in(&format!("Bearer {access_token}")).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_expire_when_idle_or_on_demand() {
    let running = demo().await;
    let handle = running.handle();
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    handle.advance_clock(Duration::from_secs(1100));
    // A call refreshes the idle timer...
    assert_eq!(client.get("ManagedAccounts").await.status(), StatusCode::OK);
    handle.advance_clock(Duration::from_secs(1100));
    assert_eq!(client.get("ManagedAccounts").await.status(), StatusCode::OK);
    // ...but 20 idle minutes end the session.
    handle.advance_clock(Duration::from_secs(1200));
    assert_eq!(client.get("ManagedAccounts").await.status(), StatusCode::UNAUTHORIZED);

    let other = Client::signed_in(&running, DEMO_AUTH).await;
    assert_eq!(handle.active_sessions(), 1);
    handle.expire_sessions();
    assert_eq!(handle.active_sessions(), 0);
    assert_eq!(other.get("ManagedAccounts").await.status(), StatusCode::UNAUTHORIZED);
}
