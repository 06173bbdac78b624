//! Large generated seeds and throughput.

use std::time::Instant;

use passwordsafe_simulator::{GeneratedSeed, Seed};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Client, json as body, start_seed};

const BENCH_AUTH: &str = "PS-Auth key=bench-key; runas=bench;";

#[tokio::test]
async fn generated_seed_serves_ten_thousand_accounts() {
    let running = start_seed(Seed::generated(10_000)).await;
    let client = Client::signed_in(&running, BENCH_AUTH).await;
    let first = body(client.get("ManagedAccounts").await).await;
    assert_eq!(first.as_array().unwrap().len(), 1000);
    let last = body(client.get("ManagedAccounts?offset=9990").await).await;
    assert_eq!(last.as_array().unwrap().len(), 10);
    assert_eq!(last[9]["AccountName"], "acct-09999");
    assert_eq!(last[9]["IsISAAccess"], true);
    let one = body(client.get("ManagedAccounts?systemName=sys-0042&accountName=acct-04200").await).await;
    let (status, id) =
        client.request_account(one["SystemId"].as_i64().unwrap(), one["AccountId"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(client.credentials(id.as_i64().unwrap()).await.1, json!("initial-password-04200"));
    let secrets = body(client.get("Secrets-Safe/Secrets?Path=bench/f000").await).await;
    assert_eq!(secrets.as_array().unwrap().len(), 100);
    let _ = GeneratedSeed::default();
}

/// `cargo test -p passwordsafe-simulator --release --test http -- --ignored --nocapture throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement, run by hand"]
async fn throughput() {
    let running = start_seed(Seed::generated(10_000)).await;
    let client = Client::signed_in(&running, BENCH_AUTH).await;
    let started = Instant::now();
    let calls = 20_000;
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let http = client.http.clone();
        let base = client.base.clone();
        let cookie = format!("ASP.NET_SessionId={}", client.session.clone().unwrap());
        tasks.push(tokio::spawn(async move {
            for i in 0..calls / 16 {
                let n = (worker * 1000 + i) % 10_000;
                let url = format!("{base}/ManagedAccounts?systemName=sys-{:04}&accountName=acct-{n:05}", n / 100);
                let response = http.get(url).header("Cookie", &cookie).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.bytes().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!("{calls} calls in {elapsed:?}: {:.0} calls/s", calls as f64 / elapsed.as_secs_f64());
}
