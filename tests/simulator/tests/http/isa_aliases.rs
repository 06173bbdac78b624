//! ISA releases and aliases.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, DEMO_AUTH, MALLORY_AUTH, demo, json as body};

#[tokio::test]
async fn isa_request_releases_credentials_and_rotates_on_expiry() {
    let running = demo().await;
    let handle = running.handle();
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let root = json!({"SystemID": 2, "AccountID": 7, "Reason": "maintenance"});
    let response = client.post("ISARequests", root.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(body(response).await, json!("Isa-Root-Passw0rd"));
    // The guide's spelling works and is counted under the same name.
    let response =
        client.post("ISARRequests?type=password", json!({"SystemID": 2, "AccountID": 7, "DurationMinutes": 5})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(handle.call_count("POST ISARequests"), 2);
    let releases = handle.isa_releases();
    assert_eq!(releases.len(), 2);
    assert_eq!(releases[0].account_name, "root");
    assert!(handle.open_requests().is_empty());

    // Not an ISA account, or unknown: 4031. Missing ids: 400.
    let not_isa = client.post("ISARequests", json!({"SystemID": 1, "AccountID": 101})).await;
    assert_eq!((not_isa.status(), body(not_isa).await), (StatusCode::FORBIDDEN, json!(4031)));
    assert_eq!(client.post("ISARequests", json!({"SystemID": 2})).await.status(), StatusCode::BAD_REQUEST);

    // The 5-minute release ends first and rotates (changePasswordAfterAnyRelease); the 60-minute one later.
    handle.advance_clock(Duration::from_secs(301));
    assert_eq!(handle.isa_releases().len(), 1);
    let rotated = handle.account("web01.example.test", "root").unwrap();
    assert_eq!(rotated.rotations, 1);
    let again = client.post("ISARequests", root).await;
    assert_eq!(body(again).await, json!(rotated.password));
    handle.advance_clock(Duration::from_secs(3600));
    assert!(handle.isa_releases().is_empty());
}

#[tokio::test]
async fn aliases_list_lookup_request_and_credentials() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let list = body(client.get("Aliases").await).await;
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|a| a["AliasName"].as_str().unwrap()).collect();
    assert_eq!(names, ["app-db", "web-deploy"]);
    assert_eq!(body(client.get("Aliases?state=2").await).await.as_array().unwrap().len(), 1);
    let by_name = body(client.get("Aliases?name=APP-DB").await).await;
    assert_eq!(by_name["AliasId"], 1);
    assert_eq!(by_name["AccountId"], 101);
    assert_eq!(by_name["MappedAccounts"][0]["ManagedAccountID"], 101);
    assert_eq!(body(client.get("Aliases/2").await).await["AliasName"], "web-deploy");
    assert_eq!(client.get("Aliases?name=nope").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(client.get("Aliases/99").await.status(), StatusCode::NOT_FOUND);

    let created = client.post("Aliases/2/Requests", json!({"DurationMinutes": 10})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let request_id = body(created).await;
    assert_eq!(running.handle().open_requests()[0].alias_id, Some(2));
    let creds = body(client.get(&format!("Aliases/2/Credentials/{request_id}?type=dsskey")).await).await;
    assert_eq!(creds["AliasName"], "web-deploy");
    assert_eq!(creds["SystemName"], "web01.example.test");
    assert_eq!(creds["Password"], Value::Null);
    assert!(creds["PrivateKey"].as_str().unwrap().contains("OPENSSH PRIVATE KEY"));
    let password = body(client.get(&format!("Aliases/2/Credentials/{request_id}")).await).await;
    let expected = running.handle().account("web01.example.test", "deploy").unwrap().password;
    assert_eq!(password["Password"], json!(expected));
    // The request is for another alias's account: not found there.
    let wrong = client.get(&format!("Aliases/1/Credentials/{request_id}")).await;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    // The same account through POST Requests conflicts with the alias request.
    assert_eq!(client.request_account(2, 6, json!({})).await.0, StatusCode::CONFLICT);
    assert_eq!(running.handle().call_count("GET Aliases/Credentials"), 3);

    // Users denied on the account see no alias for it and cannot request it.
    let mallory = Client::signed_in(&running, MALLORY_AUTH).await;
    let listed = body(mallory.get("Aliases").await).await;
    assert!(listed.as_array().unwrap().iter().all(|a| a["AliasName"] != "app-db"));
    let denied = mallory.post("Aliases/1/Requests", json!({"DurationMinutes": 10})).await;
    assert_eq!((denied.status(), body(denied).await), (StatusCode::FORBIDDEN, json!(4031)));
}
