//! GET ManagedAccounts.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Client, DEMO_AUTH, MALLORY_AUTH, demo, json as body, start_yaml};

#[tokio::test]
async fn lists_requestable_accounts_in_id_order_with_guide_fields() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let list = body(client.get("ManagedAccounts").await).await;
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|a| a["AccountName"].as_str().unwrap()).collect();
    assert!(!names.contains(&"hidden_user"), "apiEnabled: false is not listed");
    let ids: Vec<i64> = list.iter().map(|a| a["AccountId"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let app = list.iter().find(|a| a["AccountName"] == "app_user").unwrap();
    for key in [
        "PlatformID",
        "SystemId",
        "SystemName",
        "DomainName",
        "AccountId",
        "AccountName",
        "InstanceName",
        "UserPrincipalName",
        "ApplicationID",
        "ApplicationDisplayName",
        "DefaultReleaseDuration",
        "MaximumReleaseDuration",
        "LastChangeDate",
        "NextChangeDate",
        "IsChanging",
        "ChangeState",
        "IsISAAccess",
        "PreferredNodeID",
    ] {
        assert!(app.get(key).is_some(), "missing {key}");
    }
    assert_eq!(app["SystemId"], 1);
    assert_eq!(app["AccountId"], 101);
    let last_change = app["LastChangeDate"].as_str().unwrap();
    assert!(!last_change.ends_with('Z') && last_change.len() <= 27, "{last_change}");
    let readonly = list.iter().find(|a| a["AccountName"] == "readonly_user").unwrap();
    assert_eq!(readonly["NextChangeDate"], serde_json::Value::Null);

    let page = body(client.get("managedaccounts?limit=2&offset=1").await).await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["AccountId"], list[1]["AccountId"]);
    let web = body(client.get("ManagedAccounts?systemName=WEB01.example.test").await).await;
    assert_eq!(web.as_array().unwrap().len(), 2);
    assert_eq!(client.get("ManagedAccounts?limit=abc").await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn single_account_lookup_answers_object_or_404() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let one = client.get("ManagedAccounts?systemName=db01.example.test&accountName=APP_USER").await;
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(body(one).await["AccountId"], 101);
    let missing = client.get("ManagedAccounts?systemName=db01.example.test&accountName=nobody").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(missing).await, json!("Managed Account not found"));
    let hidden = client.get("ManagedAccounts?systemName=db01.example.test&accountName=hidden_user").await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);

    // Denied users neither see nor find the account.
    let mallory = Client::signed_in(&running, MALLORY_AUTH).await;
    let denied = mallory.get("ManagedAccounts?systemName=db01.example.test&accountName=app_user").await;
    assert_eq!(denied.status(), StatusCode::NOT_FOUND);
    let listed = body(mallory.get("ManagedAccounts").await).await;
    assert!(listed.as_array().unwrap().iter().all(|a| a["AccountName"] != "app_user"));
}

#[tokio::test]
async fn compat_single_account_as_array_and_case_insensitive_versioned_paths() {
    let running = start_yaml(
        "compat: {singleAccountAsArray: true}
users: [{name: u}]
apiKeys: [{key: k, runAs: [u]}]
systems: [{name: s, accounts: [{name: a, password: p}]}]",
    )
    .await;
    let mut client = Client::signed_in(&running, "PS-Auth key=k; runas=u;").await;
    client.base = client.base.replace("/BeyondTrust/api/public/v3", "/beyondtrust/API/PUBLIC/v3.1");
    let one = body(client.get("MANAGEDACCOUNTS?SystemName=s&AccountName=a").await).await;
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert_eq!(one[0]["AccountName"], "a");
}
