//! The admin API.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Client, DEMO_AUTH, admin, demo};

#[tokio::test]
async fn admin_api_reports_and_controls_state() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let (_, id) = client.request_account(1, 101, json!({})).await;

    let (status, sessions) = admin(&running, Method::GET, "sessions", None).await;
    assert_eq!((status, sessions), (StatusCode::OK, json!({"active": 1})));
    let (_, requests) = admin(&running, Method::GET, "requests", None).await;
    assert_eq!(requests[0]["requestId"], id);
    assert_eq!(requests[0]["systemName"], "db01.example.test");
    assert_eq!(requests[0]["user"], "svc-k8s-operator");
    assert_eq!(requests[0]["rotateOnCheckin"], true);

    let (_, accounts) = admin(&running, Method::GET, "accounts", None).await;
    let app = accounts.as_array().unwrap().iter().find(|a| a["accountName"] == "app_user").unwrap();
    assert_eq!(app["password"], "Initial-App-Passw0rd!");
    assert_eq!(app["accountId"], 101);
    assert_eq!(app["rotations"], 0);

    let (_, before) = admin(&running, Method::GET, "clock", None).await;
    let (status, after) = admin(&running, Method::POST, "clock/advance", Some(json!({"seconds": 7200}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(after["offsetSeconds"].as_f64().unwrap() >= 7200.0);
    assert_ne!(before["now"], after["now"]);
    assert!(running.handle().clock_offset() >= Duration::from_secs(7200));
    // The 30-minute request expired; app_user rotates after any release (5 s change).
    let (_, requests) = admin(&running, Method::GET, "requests", None).await;
    assert_eq!(requests, json!([]));
    running.handle().advance_clock(Duration::from_secs(5));
    assert_eq!(running.handle().account("db01.example.test", "app_user").unwrap().rotations, 1);

    let update = json!({"folderPath": "prod/tls", "title": "ca-bundle", "fileText": "new bundle"});
    assert_eq!(admin(&running, Method::POST, "secrets/update", Some(update)).await.0, StatusCode::NO_CONTENT);
    let missing = json!({"folderPath": "prod/tls", "title": "nope", "notes": "x"});
    assert_eq!(admin(&running, Method::POST, "secrets/update", Some(missing)).await.0, StatusCode::NOT_FOUND);

    assert_eq!(admin(&running, Method::POST, "sessions/expire", None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(client.get("ManagedAccounts").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(admin(&running, Method::GET, "nope", None).await.0, StatusCode::NOT_FOUND);
    let bad = admin(&running, Method::POST, "clock/advance", Some(json!({"seconds": -1}))).await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
}
