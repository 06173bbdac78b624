//! Secrets Safe.

use std::time::Duration;

use passwordsafe_simulator::SecretUpdate;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, DEMO_AUTH, demo, json as body};

async fn find(client: &Client, query: &str) -> Value {
    let list = body(client.get(&format!("Secrets-Safe/Secrets?{query}")).await).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{query}: {list}");
    list[0].clone()
}

#[tokio::test]
async fn lists_secrets_by_folder_path_and_title() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let all = body(client.get("Secrets-Safe/Secrets").await).await;
    assert_eq!(all.as_array().unwrap().len(), 5);
    let prod_db = body(client.get("Secrets-Safe/Secrets?Path=prod/db").await).await;
    assert_eq!(prod_db.as_array().unwrap().len(), 2);
    // Exact folder match: the parent folder holds no secrets itself.
    assert_eq!(body(client.get("Secrets-Safe/Secrets?Path=prod").await).await, json!([]));
    assert_eq!(body(client.get("Secrets-Safe/Secrets?Path=nope").await).await, json!([]));

    let credential = find(&client, "path=prod-db&separator=-&title=POSTGRES-ADMIN").await;
    assert_eq!(credential["Id"], "0d2c3f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6");
    assert_eq!(credential["SecretType"], "CREDENTIAL");
    assert_eq!(credential["Username"], "postgres");
    assert_eq!(credential["Password"], "Pg-Admin-Passw0rd");
    assert_eq!(credential["FolderPath"], "prod/db");
    assert_eq!(credential["Folder"], "db");
    assert_eq!(credential["FolderId"], "6f9a1c1e-2b7d-4c39-9a53-1f0d2e4b7a01");
    assert_eq!(credential["FileName"], Value::Null);
    for key in [
        "Description",
        "OwnerId",
        "CreatedOn",
        "CreatedBy",
        "ModifiedOn",
        "ModifiedBy",
        "Owner",
        "Owners",
        "OwnerType",
        "Notes",
        "Urls",
    ] {
        assert!(credential.get(key).is_some(), "missing {key}");
    }
    let by_id = body(client.get("Secrets-Safe/Secrets/0d2c3f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6").await).await;
    assert_eq!(by_id["Title"], "postgres-admin");
    assert_eq!(client.get("Secrets-Safe/Secrets/not-a-guid").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        client.get("Secrets-Safe/Secrets/00000000-0000-4000-8000-000000000000").await.status(),
        StatusCode::NOT_FOUND
    );

    // v3.2 (path or ?version=) answers a page.
    let mut v32 = Client::signed_in(&running, DEMO_AUTH).await;
    v32.base = v32.base.replace("/v3", "/v3.2");
    let page = body(v32.get("Secrets-Safe/Secrets?Path=prod/db&Limit=1").await).await;
    assert_eq!(page["TotalCount"], 2);
    assert_eq!(page["Data"].as_array().unwrap().len(), 1);
    let page = body(client.get("Secrets-Safe/Secrets?Path=dev&version=3.2").await).await;
    assert_eq!(page["TotalCount"], 1);
}

#[tokio::test]
async fn text_and_file_secrets_serve_exact_content() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let text = find(&client, "Path=prod/db&Title=connection-string").await;
    let text_value = "postgres://app@db01.example.test:5432/app?sslmode=require";
    // Listings carry a text secret's value in Password (what BeyondTrust's Go library reads).
    assert_eq!(text["Password"], text_value);
    let id = text["Id"].as_str().unwrap();
    let text_records = body(client.get(&format!("Secrets-Safe/Secrets/{id}/text")).await).await;
    assert_eq!(text_records[0]["Text"], text_value);
    assert_eq!(client.get(&format!("Secrets-Safe/Secrets/{id}/file/download")).await.status(), StatusCode::BAD_REQUEST);

    let file = find(&client, "Path=prod/tls&Title=keystore").await;
    assert_eq!(file["SecretType"], "FILE");
    assert_eq!(file["FileName"], "keystore.bin");
    let id = file["Id"].as_str().unwrap();
    let download = client.get(&format!("Secrets-Safe/Secrets/{id}/file/download")).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "application/octet-stream");
    assert_eq!(download.headers()["content-disposition"], "attachment; filename=\"keystore.bin\"");
    let bytes = download.bytes().await.unwrap();
    assert_eq!(&bytes[..], b"\x00\x01\x02\x03\xff\x00\x86\xfehtello");
    let metadata = body(client.get(&format!("Secrets-Safe/Secrets/{id}/file")).await).await;
    assert_eq!(metadata["FileName"], "keystore.bin");
    assert_eq!(metadata["FileHash"].as_str().map(str::len), Some(64));
    assert_eq!(client.get(&format!("Secrets-Safe/Secrets/{id}/text")).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(running.handle().call_count("GET Secrets-Safe/Secrets/file/download"), 2);
    assert_eq!(running.handle().call_count("GET Secrets-Safe/Secrets/file"), 1);
    assert_eq!(running.handle().call_count("GET Secrets-Safe/Secrets/text"), 2);
}

#[tokio::test]
async fn updates_bump_modified_on_and_after_date_filters() {
    let running = demo().await;
    let handle = running.handle();
    handle.advance_clock(Duration::from_secs(3600));
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let cutoff = handle.now();
    let after = format!("AfterDate={}", cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"));
    assert_eq!(body(client.get(&format!("Secrets-Safe/Secrets?{after}")).await).await, json!([]));
    handle
        .update_secret("dev", "api-token", SecretUpdate { text: Some("rotated-token".into()), ..Default::default() })
        .unwrap();
    let changed = find(&client, &after).await;
    assert_eq!(changed["Title"], "api-token");
    assert_eq!(changed["Password"], "rotated-token");
    assert_ne!(changed["ModifiedOn"], changed["CreatedOn"]);
    assert!(
        handle.update_secret("dev", "api-token", SecretUpdate { file: Some(vec![1]), ..Default::default() }).is_err()
    );
    assert!(handle.update_secret("nope", "api-token", SecretUpdate::default()).is_err());
    assert_eq!(client.get("Secrets-Safe/Secrets?AfterDate=yesterday").await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn folders_list_with_parents_and_filters() {
    let running = demo().await;
    let client = Client::signed_in(&running, DEMO_AUTH).await;
    let folders = body(client.get("Secrets-Safe/Folders").await).await;
    let names: Vec<&str> = folders.as_array().unwrap().iter().map(|f| f["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dev", "prod", "db", "tls"]);
    let prod_id = folders[1]["Id"].clone();
    assert_eq!(folders[1]["ParentId"], Value::Null);
    assert_eq!(folders[2]["ParentId"], prod_id);
    let under_prod = body(client.get("Secrets-Safe/Folders?FolderPath=prod").await).await;
    assert_eq!(under_prod.as_array().unwrap().len(), 3);
    let only_prod = body(client.get("Secrets-Safe/Folders?FolderPath=prod&IncludeSubfolders=false").await).await;
    assert_eq!(only_prod.as_array().unwrap().len(), 1);
    let roots = body(client.get("Secrets-Safe/Folders?RootOnly=true").await).await;
    assert_eq!(roots.as_array().unwrap().len(), 2);
    let by_name = body(client.get("Secrets-Safe/Folders?FolderName=T").await).await;
    assert_eq!(by_name.as_array().unwrap().len(), 1);
}
