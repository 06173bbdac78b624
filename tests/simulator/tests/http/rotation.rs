//! Scheduled, on-demand and release-triggered credential changes.

use std::time::Duration;

use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Client, admin, json as body, start_yaml};

/// Sessions never idle out here: the tests jump the clock by hours (or years).
const SEED: &str = "
sessionIdleTimeoutSeconds: 1000000000
users: [{name: u}]
apiKeys: [{key: k, runAs: [u]}]
systems:
  - name: s
    accounts:
      - {name: scheduled, id: 1, password: p1, rotationIntervalSeconds: 3600, changeDurationSeconds: 30,
         lastChangeDate: '2030-01-01T00:00:00'}
      - {name: released, id: 2, password: p2, changePasswordAfterAnyRelease: true}
      - {name: plain, id: 3, password: p3, changeDurationSeconds: 10}
";

/// Parses an API date (UTC without zone).
fn api_date(value: &serde_json::Value) -> jiff::Timestamp {
    let text = value.as_str().expect("date string");
    format!("{text}Z").parse().expect("API date")
}

#[tokio::test]
async fn scheduled_rotation_queues_changes_and_reschedules() {
    let running = start_yaml(SEED).await;
    let handle = running.handle();
    let client = Client::signed_in(&running, "PS-Auth key=k; runas=u;").await;
    let path = "ManagedAccounts?systemName=s&accountName=scheduled";
    let before = body(client.get(path).await).await;
    assert_eq!(before["LastChangeDate"], "2030-01-01T00:00:00");
    assert_eq!(before["NextChangeDate"], "2030-01-01T01:00:00");
    assert_eq!((before["ChangeState"].clone(), before["IsChanging"].clone()), (json!(0), json!(false)));

    // Jump to four minutes before the change: queued.
    let next = api_date(&before["NextChangeDate"]);
    let to_queue = next.duration_since(handle.now()) - SignedDuration::from_mins(4);
    handle.advance_clock(Duration::try_from(to_queue).unwrap());
    assert_eq!(body(client.get(path).await).await["ChangeState"], 2);

    // Past the scheduled time: changing for 30 s, the old password still in place.
    handle.advance_clock(Duration::from_secs(4 * 60 + 10));
    let changing = body(client.get(path).await).await;
    assert_eq!((changing["ChangeState"].clone(), changing["IsChanging"].clone()), (json!(1), json!(true)));
    assert_eq!(handle.account("s", "scheduled").unwrap().password, "p1");

    handle.advance_clock(Duration::from_secs(30));
    let state = handle.account("s", "scheduled").unwrap();
    assert_ne!(state.password, "p1");
    assert!(state.password.len() >= 24);
    assert_eq!(state.rotations, 1);
    assert_eq!(state.last_change_date, next + SignedDuration::from_secs(30));
    assert_eq!(state.next_change_date, Some(state.last_change_date + SignedDuration::from_hours(1)));
    let after = body(client.get(path).await).await;
    assert_eq!(api_date(&after["LastChangeDate"]), state.last_change_date);
    assert_eq!((after["ChangeState"].clone(), after["IsChanging"].clone()), (json!(0), json!(false)));

    // The next cycle rotates again, to a different password.
    handle.advance_clock(Duration::from_secs(3600 + 30));
    let again = handle.account("s", "scheduled").unwrap();
    assert_eq!(again.rotations, 2);
    assert_ne!(again.password, state.password);
    // Far overdue (many cycles skipped): one catch-up change, not one per missed cycle.
    handle.advance_clock(Duration::from_secs(10 * 3600));
    handle.advance_clock(Duration::from_secs(30));
    assert_eq!(handle.account("s", "scheduled").unwrap().rotations, 3);
}

#[tokio::test]
async fn on_demand_rotation_honours_change_duration() {
    let running = start_yaml(SEED).await;
    let handle = running.handle();
    let (status, _) =
        admin(&running, Method::POST, "accounts/rotate", Some(json!({"system": "S", "account": "PLAIN"}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let changing = handle.account("s", "plain").unwrap();
    assert!(changing.is_changing);
    assert_eq!(changing.change_state, 1);
    assert_eq!(changing.password, "p3");
    handle.advance_clock(Duration::from_secs(10));
    let done = handle.account("s", "plain").unwrap();
    assert!(!done.is_changing);
    assert_ne!(done.password, "p3");
    assert_eq!(done.rotations, 1);
    assert_eq!(done.next_change_date, None);
    assert!(handle.rotate_account("s", "nope").is_err());
    let (status, _) =
        admin(&running, Method::POST, "accounts/rotate", Some(json!({"system": "s", "account": "nope"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn release_end_rotates_when_rotate_on_checkin() {
    let running = start_yaml(SEED).await;
    let handle = running.handle();
    let client = Client::signed_in(&running, "PS-Auth key=k; runas=u;").await;

    // Check-in with the default RotateOnCheckin (true): rotates.
    let (_, id) = client.request_account(1, 2, json!({})).await;
    assert_eq!(client.credentials(id.as_i64().unwrap()).await.1, json!("p2"));
    assert_eq!(client.checkin(id.as_i64().unwrap()).await, StatusCode::NO_CONTENT);
    let rotated = handle.account("s", "released").unwrap();
    assert_eq!(rotated.rotations, 1);
    assert_ne!(rotated.password, "p2");

    // RotateOnCheckin false: no rotation.
    let (_, id) = client.request_account(1, 2, json!({"RotateOnCheckin": false})).await;
    assert!(!handle.open_requests()[0].rotate_on_checkin);
    assert_eq!(client.checkin(id.as_i64().unwrap()).await, StatusCode::NO_CONTENT);
    assert_eq!(handle.account("s", "released").unwrap().rotations, 1);

    // Expiry counts as the end of the release.
    client.request_account(1, 2, json!({"DurationMinutes": 5})).await;
    handle.advance_clock(Duration::from_secs(301));
    assert_eq!(handle.account("s", "released").unwrap().rotations, 2);

    // Accounts without changePasswordAfterAnyRelease never rotate on check-in.
    let (_, id) = client.request_account(1, 3, json!({})).await;
    client.checkin(id.as_i64().unwrap()).await;
    assert_eq!(handle.account("s", "plain").unwrap().rotations, 0);
}
