//! Fault injection and call counters.

use std::time::{Duration, Instant};

use passwordsafe_simulator::{Fault, FaultRule};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Client, DEMO_AUTH, admin, demo};

#[tokio::test]
async fn status_and_too_many_requests_faults_respect_remaining_counts() {
    let running = demo().await;
    let handle = running.handle();
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    handle.set_faults(vec![
        FaultRule::new("GET ManagedAccounts", Fault::Status { status: 503, body: Some("\"busy\"".into()) }).times(1),
        FaultRule::new("GET ManagedAccounts", Fault::TooManyRequests { retry_after_secs: 7 }).times(1),
    ]);
    let first = client.get("ManagedAccounts").await;
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.text().await.unwrap(), "\"busy\"");
    let second = client.get("ManagedAccounts").await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "7");
    assert_eq!(client.get("ManagedAccounts").await.status(), StatusCode::OK);
    assert!(handle.faults().iter().all(|rule| rule.remaining == Some(0)));
    // Faulted calls are counted like any other.
    assert_eq!(handle.call_count("GET ManagedAccounts"), 3);
}

#[tokio::test]
async fn malformed_oversized_and_latency_faults() {
    let running = demo().await;
    let handle = running.handle();
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    handle.set_faults(vec![FaultRule::new("*", Fault::Malformed).times(1)]);
    let malformed = client.get("Aliases").await;
    assert_eq!(malformed.status(), StatusCode::OK);
    assert!(serde_json::from_slice::<serde_json::Value>(&malformed.bytes().await.unwrap()).is_err());

    handle.set_faults(vec![FaultRule::new("GET Requests", Fault::Oversized { bytes: 200_000 })]);
    let oversized = client.get("Requests").await;
    assert_eq!(oversized.bytes().await.unwrap().len(), 200_000);

    handle.set_faults(vec![
        FaultRule::new("*", Fault::Latency { ms: 150 }),
        FaultRule::new("GET Aliases", Fault::Status { status: 500, body: None }),
    ]);
    let started = Instant::now();
    let slow_failure = client.get("Aliases").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(slow_failure.status(), StatusCode::INTERNAL_SERVER_ERROR);
    handle.clear_faults();
    assert_eq!(client.get("Aliases").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_an_answer() {
    let running = demo().await;
    let handle = running.handle();
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    handle.set_faults(vec![FaultRule::new("GET Credentials", Fault::Drop).times(1)]);
    let error = client.request(Method::GET, "Credentials/1").send().await.expect_err("no response");
    assert!(!error.is_status(), "{error}");
    // The rule is spent: the next call gets a real answer (404, no such request).
    assert_eq!(client.get("Credentials/1").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(handle.call_count("GET Credentials"), 2);
}

#[tokio::test]
async fn admin_api_sets_faults_and_reports_counters() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let rules = json!([{"endpoint": "POST ISARRequests", "fault": {"kind": "status", "status": 418}, "remaining": 1}]);
    assert_eq!(admin(&running, Method::PUT, "faults", Some(rules)).await.0, StatusCode::NO_CONTENT);
    let bad = json!([{"endpoint": "GET Nothing", "fault": {"kind": "drop"}}]);
    assert_eq!(admin(&running, Method::PUT, "faults", Some(bad)).await.0, StatusCode::BAD_REQUEST);
    let teapot = client.post("ISARequests", json!({"SystemID": 2, "AccountID": 7})).await;
    assert_eq!(teapot.status(), StatusCode::IM_A_TEAPOT);

    // Admin calls are never faulted or counted.
    let everything = json!([{"endpoint": "*", "fault": {"kind": "drop"}}]);
    admin(&running, Method::PUT, "faults", Some(everything)).await;
    let (status, calls) = admin(&running, Method::GET, "calls", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls["POST ISARequests"], 1);
    assert_eq!(calls["POST Auth/SignAppIn"], 1);
    assert_eq!(calls["GET Secrets-Safe/Folders"], 0);
    assert_eq!(admin(&running, Method::DELETE, "faults", None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&running, Method::DELETE, "calls", None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(running.handle().call_count("POST ISARequests"), 0);
}
