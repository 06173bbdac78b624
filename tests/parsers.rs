//! Property tests of every parser that reads Password Safe's answers (JSON shapes, dates, sub-codes, statuses,
//! sizes, paging) and of the spec validation a PasswordSafeSecret goes through (durations, keys, templates,
//! target types, URLs). Inputs are generated and mutated; the property is always the same: no panic, no hang,
//! and either a value or a clear, typed error that names the operation, and never quotes a credential.
//!
//! Response parsers are reached the way the operator reaches them: through the public client, against the
//! simulator answering each endpoint with the generated body (its `Status` fault). Pure parsers (dates,
//! sub-codes, durations, keys) are called directly. Case counts are small and the seed fixed, so a run takes
//! seconds and a failure reproduces; `PROPTEST_CASES` and `PROPTEST_RNG_SEED` explore further.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use passwordsafe_operator::api::{PasswordSafeSecretSpec, SecretTarget, SecretTemplate};
use passwordsafe_operator::passwordsafe::{
    ApiCode, Auth, ChangeState, Client, CredentialKinds, Error, ErrorKind, FolderPath, ManagedAccount, RequestOptions,
    SecretBytes, SecretString, SignedInUser, parse_base_url, parse_ps_date,
};
use passwordsafe_operator::sync::desired::{Owner, desired_secret};
use passwordsafe_operator::sync::resolve::Source;
use passwordsafe_operator::sync::{SecretData, duration, keys, template};
use passwordsafe_simulator::{Fault, FaultRule, Running};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// Stands for a credential in generated bodies and values: it must never show in an error.
const MARKER: &str = "s3cr3t-MARKER-9f2";
/// No single client call may take longer than this, whatever the body (paging included).
const CALL_LIMIT: Duration = Duration::from_secs(20);

/// Runs `cases` generated cases (fixed seed unless `PROPTEST_RNG_SEED` is set; `PROPTEST_CASES` overrides the
/// count) and panics with the smallest failing input.
fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut config = Config { failure_persistence: None, max_shrink_iters: 256, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0x05EE_D0F7_E57A);
    }
    if let Err(failure) = TestRunner::new(config).run(&strategy, test) {
        panic!("{failure}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------------------

/// Strings that look like Password Safe dates, broken ones and junk.
fn date_like() -> impl Strategy<Value = String> {
    prop_oneof![
        valid_date().prop_map(|(text, _)| text),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        "[0-9T:.Z+\\- ]{0,30}",
        Just(String::new()),
        Just("0000-00-00T00:00:00".to_owned()),
        Just("2024-02-30T00:00:00".to_owned()),
        Just("9999-12-31T23:59:59.9999999".to_owned()),
        Just("-009999-01-01T00:00:00Z".to_owned()),
        ".{0,24}",
    ]
}

/// A valid zone-less, `Z` or offset date and the instant it means.
fn valid_date() -> impl Strategy<Value = (String, jiff::Timestamp)> {
    (
        1970i16..2200,
        1i8..=12,
        1i8..=28,
        0i8..24,
        0i8..60,
        0i8..60,
        prop::option::of(0u32..10_000_000),
        0u8..3,
        -14i8..=14,
    )
        .prop_map(|(y, mo, d, h, mi, s, fraction, zone, offset_h)| {
            let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
            let mut nanos = 0i32;
            if let Some(f) = fraction {
                text.push_str(&format!(".{f:07}"));
                nanos = (f * 100) as i32;
            }
            let civil = jiff::civil::DateTime::new(y, mo, d, h, mi, s, nanos).unwrap();
            let instant = match zone {
                0 => civil.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp(),
                1 => {
                    text.push('Z');
                    civil.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp()
                }
                _ => {
                    text.push_str(&format!("{}{:02}:00", if offset_h < 0 { '-' } else { '+' }, offset_h.abs()));
                    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::from_hours(offset_h).unwrap());
                    civil.to_zoned(tz).unwrap().timestamp()
                }
            };
            (text, instant)
        })
}

/// Object keys: the fields our parsers look for (any case), and others.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "SystemId",
            "SystemID",
            "SystemName",
            "AccountId",
            "AccountID",
            "AccountName",
            "DomainName",
            "LastChangeDate",
            "NextChangeDate",
            "IsChanging",
            "ChangeState",
            "IsISAAccess",
            "AliasId",
            "AliasName",
            "AliasState",
            "Id",
            "Title",
            "FolderPath",
            "Folder",
            "SecretType",
            "Password",
            "Username",
            "Text",
            "FileName",
            "ModifiedOn",
            "CreatedOn",
            "TotalCount",
            "Data",
            "RequestID",
            "RequestId",
            "Status",
            "AccessType",
            "Credentials",
            "PrivateKey",
            "Passphrase",
            "UserId",
            "UserName",
            "access_token",
            "expires_in",
            "token_type",
            "ErrorCode",
            "MaximumReleaseDuration",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z_]{1,12}",
    ]
}

/// Any JSON value; strings are often dates, sub-codes or the credential marker.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, -1, 2, 4031, 4034, 1000, i64::MAX, i64::MIN]).prop_map(Value::from),
        date_like().prop_map(Value::String),
        Just(Value::String(MARKER.to_owned())),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What a template answer can have done to it.
#[derive(Clone, Debug)]
enum Mutation {
    Keep,
    Set(usize, Value),
    Remove(usize),
    WrapInArray,
    Duplicate,
    Replace(Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::Keep),
        6 => (any::<usize>(), json_value()).prop_map(|(i, v)| Mutation::Set(i, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => Just(Mutation::WrapInArray),
        1 => Just(Mutation::Duplicate),
        2 => json_value().prop_map(Mutation::Replace),
    ]
}

fn apply(template: &Value, mutations: &[Mutation]) -> Value {
    let mut value = template.clone();
    for m in mutations {
        value = match (m, value) {
            (Mutation::Keep, v) => v,
            (Mutation::Set(i, new), Value::Object(mut map)) if !map.is_empty() => {
                let key = map.keys().nth(i % map.len()).cloned().unwrap();
                map.insert(key, new.clone());
                Value::Object(map)
            }
            (Mutation::Set(i, new), Value::Array(mut items)) if !items.is_empty() => {
                let n = items.len();
                items[i % n] = new.clone();
                Value::Array(items)
            }
            (Mutation::Remove(i), Value::Object(mut map)) if !map.is_empty() => {
                let key = map.keys().nth(i % map.len()).cloned().unwrap();
                map.remove(&key);
                Value::Object(map)
            }
            (Mutation::WrapInArray, v) => Value::Array(vec![v]),
            (Mutation::Duplicate, v) => Value::Array(vec![v.clone(), v]),
            (Mutation::Replace(new), _) => new.clone(),
            (_, v) => v,
        };
    }
    value
}

/// Bodies derived from a valid answer: mutated JSON, cut or garbled text, or anything at all.
fn body_from(template: Value) -> impl Strategy<Value = String> {
    let text = template.to_string();
    prop_oneof![
        4 => prop::collection::vec(mutation(), 0..3).prop_map(move |m| apply(&template, &m).to_string()),
        2 => (0..=text.len()).prop_map(move |cut| String::from_utf8_lossy(&text.as_bytes()[..cut]).into_owned()),
        1 => json_value().prop_map(|v| v.to_string()),
        1 => ".{0,40}",
        1 => Just(String::new()),
    ]
}

// ---------------------------------------------------------------------------------------------------------
// The simulator answering one endpoint with generated bodies
// ---------------------------------------------------------------------------------------------------------

struct Fuzz {
    rt: tokio::runtime::Runtime,
    sim: Running,
}

impl Fuzz {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let sim = rt.block_on(support::start_default());
        Self { rt, sim }
    }

    fn client(&self) -> Client {
        self.client_with(|_| {})
    }

    fn client_with(&self, adjust: impl FnOnce(&mut passwordsafe_operator::passwordsafe::ClientConfig)) -> Client {
        let mut config = support::config(&self.sim, support::api_key_auth());
        config.retry.max_attempts = 2;
        adjust(&mut config);
        let _runtime = self.rt.enter();
        Client::new(config).unwrap()
    }

    /// Every call of `endpoint` answers `status` with `body` (raw, as `application/json`).
    fn answer(&self, endpoint: &str, status: u16, body: &str) {
        self.sim.handle().set_faults(vec![FaultRule::new(endpoint, Fault::Status { status, body: Some(body.into()) })]);
    }

    /// Runs one client call to completion, failing the case if it hangs.
    fn run<T>(&self, call: impl Future<Output = T>) -> Result<T, TestCaseError> {
        self.rt
            .block_on(async { tokio::time::timeout(CALL_LIMIT, call).await })
            .map_err(|_| TestCaseError::fail(format!("the call did not finish within {CALL_LIMIT:?}")))
    }

    /// No release request may stay open after a call, whatever the server answered.
    fn no_open_requests(&self) -> Result<(), TestCaseError> {
        let open = self.sim.handle().open_requests();
        prop_assert!(open.is_empty(), "requests left open: {open:?}");
        Ok(())
    }
}

/// A failure caused by a bad answer: typed, naming one of `operations`, and never quoting the body's values.
fn clear_error(error: &Error, operations: &[&str]) -> Result<(), TestCaseError> {
    let text = error.to_string();
    prop_assert!(operations.contains(&error.operation), "unexpected operation in {text:?}");
    prop_assert!(text.starts_with(error.operation), "the message names the operation first: {text:?}");
    prop_assert!(
        ["InvalidResponse", "NotFound", "Ambiguous", "ResponseTooLarge"].contains(&error.reason()),
        "a bad answer is reported as a bad answer, not as {} ({text:?})",
        error.reason()
    );
    prop_assert!(!error.is_retryable(), "a malformed answer is not retried in a loop: {text:?}");
    prop_assert!(!text.contains(MARKER) && !format!("{error:?}").contains(MARKER), "the error quotes a value: {text}");
    Ok(())
}

fn account_template() -> Value {
    json!({"PlatformID": 4, "SystemId": 1, "SystemName": "db01", "DomainName": null, "AccountId": 1,
        "AccountName": "app_user", "UserPrincipalName": null, "DefaultReleaseDuration": 120,
        "MaximumReleaseDuration": 525600, "LastChangeDate": "2024-12-10T08:57:45.9", "NextChangeDate": null,
        "IsChanging": false, "ChangeState": 0, "IsISAAccess": false})
}

fn alias_template() -> Value {
    json!({"AliasId": 1, "AliasName": "db-app", "AliasState": 1, "SystemId": 1, "SystemName": "db01",
        "AccountId": 1, "AccountName": "app_user", "DomainName": null, "LastChangeDate": "2024-12-10T08:57:45",
        "NextChangeDate": "2025-01-01T00:00:00Z", "IsChanging": false, "ChangeState": 0})
}

fn secret_template(kind: &str) -> Value {
    json!({"Id": "6f1c0000-0000-4000-8000-000000000001", "Title": "db-creds", "FolderPath": "prod/db",
        "SecretType": kind, "Username": "dbuser", "Password": MARKER, "FileName": "bundle.bin",
        "CreatedOn": "2024-01-01T00:00:00", "ModifiedOn": "2024-06-01T12:00:00.123"})
}

// ---------------------------------------------------------------------------------------------------------
// Response parsers, through the client
// ---------------------------------------------------------------------------------------------------------

#[test]
fn managed_account_answers_of_any_shape_give_an_account_or_a_clear_error() {
    let fuzz = Fuzz::new();
    let client = fuzz.client();
    let template = account_template();
    let listing = json!([template.clone(), template.clone()]);
    let bodies = prop_oneof![body_from(template), body_from(listing)];
    check(96, (bodies, any::<bool>()), |(body, list)| {
        fuzz.answer("GET ManagedAccounts", 200, &body);
        if list {
            match fuzz.run(client.list_managed_accounts())? {
                Ok(accounts) => {
                    prop_assert!(accounts.iter().all(|a| a.rotation().change_state != ChangeState::Idle
                    || a.change_state.unwrap_or(0) == 0))
                }
                Err(e) => clear_error(&e, &["GET ManagedAccounts"])?,
            }
        } else {
            match fuzz.run(client.find_managed_account("db01", "app_user"))? {
                Ok(account) => prop_assert!(account.account_name.eq_ignore_ascii_case("app_user")),
                Err(e) => clear_error(&e, &["GET ManagedAccounts"])?,
            }
        }
        Ok(())
    });
}

#[test]
fn alias_answers_of_any_shape_give_an_alias_or_a_clear_error() {
    let fuzz = Fuzz::new();
    let client = fuzz.client();
    check(64, (body_from(alias_template()), any::<bool>()), |(body, list)| {
        fuzz.answer("GET Aliases", 200, &body);
        if list {
            if let Err(e) = fuzz.run(client.list_aliases())? {
                clear_error(&e, &["GET Aliases"])?;
            }
        } else {
            match fuzz.run(client.find_alias("db-app"))? {
                Ok(alias) => prop_assert!(alias.is_requestable()),
                Err(e) => clear_error(&e, &["GET Aliases"])?,
            }
        }
        Ok(())
    });
}

/// Whatever `POST Requests` or `GET Credentials` answer, the request the server opened is checked in, and a
/// credential is either a non-empty value or an error.
#[test]
fn request_and_credential_answers_never_leave_a_request_open() {
    let fuzz = Fuzz::new();
    let client = fuzz.client();
    let options = RequestOptions::default();
    let request_ids = prop_oneof![body_from(json!(124)), body_from(json!("124")), body_from(json!({"RequestID": 124}))];
    let credentials = prop_oneof![
        body_from(json!(MARKER)),
        body_from(json!({"Credentials": MARKER})),
        body_from(json!({"Password": MARKER})),
    ];
    let cases = prop_oneof![
        request_ids.prop_map(|b| ("POST Requests", b)),
        credentials.clone().prop_map(|b| ("GET Credentials", b)),
        credentials.prop_map(|b| ("POST ISARequests", b)),
    ];
    check(96, cases, |(endpoint, body)| {
        fuzz.answer(endpoint, 200, &body);
        let account = if endpoint == "POST ISARequests" { "isa_admin" } else { "app_user" };
        match fuzz.run(client.managed_account("db01", account, CredentialKinds::PASSWORD, &options))? {
            Ok(credential) => {
                let password = credential.password.as_ref().map(SecretString::expose).unwrap_or_default();
                prop_assert!(!password.is_empty(), "an empty password is never a success");
            }
            // A generated request id the server never issued: `GET Credentials` is refused with the server's
            // own status, which is just as clear.
            Err(e) if endpoint == "POST Requests" && e.operation == "GET Credentials" => {
                prop_assert!(e.status().is_some(), "{e}");
            }
            Err(e) => clear_error(&e, &["POST Requests", "GET Credentials", "POST ISARequests"])?,
        }
        fuzz.no_open_requests()
    });
}

#[test]
fn alias_credential_answers_never_leave_a_request_open() {
    let fuzz = Fuzz::new();
    let client = fuzz.client();
    let options = RequestOptions::default();
    let bodies = prop_oneof![
        body_from(json!({"Password": MARKER, "PrivateKey": null, "Passphrase": null})),
        body_from(json!(MARKER)),
    ];
    check(48, bodies, |body| {
        fuzz.answer("GET Aliases/Credentials", 200, &body);
        match fuzz.run(client.alias("db-app", CredentialKinds::PASSWORD, &options))? {
            Ok(credential) => prop_assert!(credential.password.as_ref().is_some_and(|p| !p.is_empty())),
            Err(e) => clear_error(&e, &["GET Aliases/Credentials"])?,
        }
        fuzz.no_open_requests()
    });
}

#[test]
fn secrets_safe_answers_of_any_shape_give_a_secret_or_a_clear_error() {
    let fuzz = Fuzz::new();
    let client = fuzz.client();
    let folder = FolderPath::new("prod/db");
    let list = |kind: &str| json!([secret_template(kind)]);
    let paged = json!({"TotalCount": 1, "Data": [secret_template("Credential")]});
    let cases = prop_oneof![
        prop_oneof![body_from(list("Credential")), body_from(paged), body_from(list("TEXT")), body_from(list("file"))]
            .prop_map(|b| ("GET Secrets-Safe/Secrets", b)),
        prop_oneof![body_from(json!([{"Text": MARKER}])), body_from(json!({"Text": MARKER}))]
            .prop_map(|b| ("GET Secrets-Safe/Secrets/text", b)),
    ];
    check(96, cases, |(endpoint, body)| {
        fuzz.answer(endpoint, 200, &body);
        let title = if endpoint == "GET Secrets-Safe/Secrets/text" { "app-config" } else { "db-creds" };
        let operations = [
            "GET Secrets-Safe/Secrets",
            "GET Secrets-Safe/Secrets/text",
            "GET Secrets-Safe/Secrets/{id}",
            "GET Secrets-Safe/Secrets/file/download",
        ];
        match fuzz.run(client.secret(&folder, title))? {
            Ok(secret) => {
                let content = secret.password.is_some() || secret.text.is_some() || secret.file.is_some();
                prop_assert!(content, "a secret comes with its content");
            }
            // A generated record can name an id the server does not have: its 404 is clear too.
            Err(e) if e.status() == Some(404) => prop_assert!(operations.contains(&e.operation), "{e}"),
            Err(e) => clear_error(&e, &operations)?,
        }
        if endpoint == "GET Secrets-Safe/Secrets"
            && let Err(e) = fuzz.run(client.list_secrets(&folder))?
        {
            clear_error(&e, &operations)?;
        }
        Ok(())
    });
}

#[test]
fn sign_in_and_token_answers_of_any_shape_sign_in_or_fail_clearly() {
    let fuzz = Fuzz::new();
    let user = json!({"UserId": 2, "UserName": "svc-operator", "Name": "Operator", "EmailAddress": "op@example.test"});
    let token = json!({"access_token": MARKER, "expires_in": 600, "token_type": "Bearer"});
    let cases = prop_oneof![
        body_from(user).prop_map(|b| ("POST Auth/SignAppIn", b)),
        body_from(token).prop_map(|b| ("POST Auth/Connect/Token", b)),
    ];
    check(64, cases, |(endpoint, body)| {
        fuzz.answer(endpoint, 200, &body);
        let client = if endpoint == "POST Auth/Connect/Token" {
            fuzz.client_with(|c| c.auth = support::oauth_auth("operator-client"))
        } else {
            fuzz.client()
        };
        match fuzz.run(client.sign_in())? {
            Ok(_) => {}
            Err(e) if e.operation == "POST Auth/SignAppIn" && e.status() == Some(401) => {
                // A generated token the server does not know: refused with the server's words.
                prop_assert_eq!(e.reason(), "Unauthenticated");
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(["POST Auth/SignAppIn", "POST Auth/Connect/Token"].contains(&e.operation), "{text}");
                prop_assert_eq!(e.reason(), "InvalidResponse", "{}", text);
                // `token_type` is named when it is not Bearer; it is no credential. Anything else is.
                let token_type = serde_json::from_str::<Value>(&body).ok().map(|v| v["token_type"].to_string());
                if !token_type.is_some_and(|t| t.contains(MARKER)) {
                    prop_assert!(!text.contains(MARKER), "the error quotes the token: {text}");
                }
            }
        }
        fuzz.rt.block_on(client.sign_out());
        Ok(())
    });
    assert_eq!(fuzz.sim.handle().active_sessions(), 0, "every session opened was signed out");
}

/// Error statuses keep their status and the sub-code the body carries, in any of its shapes, and map to the
/// condition reason of that sub-code.
#[test]
fn error_statuses_keep_the_status_and_the_sub_code_of_any_body() {
    let fuzz = Fuzz::new();
    let client = fuzz.client();
    let code_body = (4000u16..5000, 0u8..5, ".{0,20}").prop_map(|(code, shape, text)| match shape {
        0 => code.to_string(),
        1 => format!("\"{code}\""),
        2 => format!("{code} - {text}"),
        3 => json!({"ErrorCode": code, "Message": text}).to_string(),
        _ => json!({"code": code.to_string()}).to_string(),
    });
    let bodies = prop_oneof![code_body, ".{0,40}", json_value().prop_map(|v| v.to_string())];
    let statuses = prop::sample::select(vec![400u16, 401, 403, 405, 409, 410, 418, 500, 502, 503, 504]);
    check(96, (statuses, bodies), |(status, body)| {
        fuzz.answer("GET ManagedAccounts", status, &body);
        let err = fuzz.run(client.find_managed_account("db01", "app_user"))?.unwrap_err();
        let text = err.to_string();
        prop_assert_eq!(err.operation, "GET ManagedAccounts");
        prop_assert_eq!(err.status(), Some(status), "{}", text);
        let code = ApiCode::parse(&body);
        prop_assert_eq!(err.api_code(), code, "{}", text);
        if let Some(code) = code {
            prop_assert!(text.contains(&code.number().to_string()), "the message names the sub-code: {text}");
        }
        prop_assert!(text.contains(&format!("HTTP {status}")), "the message names the status: {text}");
        let expected = match (status, code) {
            (_, Some(ApiCode::NoPermission)) => "PermissionDenied",
            (_, Some(ApiCode::ApproverOnly)) => "ApproverOnly",
            (_, Some(ApiCode::NotApproved)) => "PendingApproval",
            (_, Some(ApiCode::NotEnoughApprovers)) => "NotEnoughApprovers",
            (_, Some(ApiCode::ConflictingRequest)) => "ConflictingRequest",
            (_, Some(_)) => "Forbidden",
            (400, None) => "BadRequest",
            (401, None) => "Unauthenticated",
            (403, None) => "Forbidden",
            (409, None) => "ConflictingRequest",
            (410, None) => "ApiVersionDisabled",
            (500..=599, None) => "ServerError",
            _ => "UnexpectedStatus",
        };
        prop_assert_eq!(err.reason(), expected, "{}", text);
        prop_assert_eq!(
            err.is_retryable(),
            status >= 500 || status == 409 || matches!(code, Some(ApiCode::NotApproved | ApiCode::ConflictingRequest))
        );
        Ok(())
    });
}

#[test]
fn bodies_over_the_size_cap_are_refused_and_others_parsed() {
    let fuzz = Fuzz::new();
    let client = fuzz.client_with(|c| c.max_response_bytes = 2_000);
    check(48, 0usize..6_000, |bytes| {
        fuzz.sim.handle().set_faults(vec![FaultRule::new("GET ManagedAccounts", Fault::Oversized { bytes })]);
        let err = fuzz.run(client.find_managed_account("db01", "app_user"))?.unwrap_err();
        if bytes > 2_000 {
            prop_assert!(matches!(err.kind, ErrorKind::ResponseTooLarge { limit: 2_000 }), "{err}");
        } else {
            prop_assert_eq!(err.reason(), "InvalidResponse", "{}", err);
        }
        Ok(())
    });
}

/// A server that ignores `offset` answers the same full page forever: paging must end, not loop.
#[test]
fn paging_ends_when_the_server_repeats_its_pages() {
    let fuzz = Fuzz::new();
    let client = fuzz.client_with(|c| c.page_size = 2);
    let account = account_template();
    let page = json!([account.clone(), account]).to_string();
    fuzz.answer("GET ManagedAccounts", 200, &page);
    let err = fuzz.run(client.list_managed_accounts()).expect("paging over a repeated page ends").unwrap_err();
    assert_eq!(err.reason(), "InvalidResponse", "{err}");
    assert!(err.to_string().contains("offset"), "{err}");

    let secret = secret_template("Credential");
    for body in [
        json!([secret.clone(), secret.clone()]),
        json!({"TotalCount": 1_000_000_000u64, "Data": [secret.clone(), secret.clone()]}),
    ] {
        fuzz.answer("GET Secrets-Safe/Secrets", 200, &body.to_string());
        let listed = fuzz.run(client.list_secrets(&FolderPath::new("prod/db")));
        let err = listed.expect("paging over a repeated page ends").unwrap_err();
        assert_eq!(err.reason(), "InvalidResponse", "{err}");
    }
    // A server that pages properly is read to the end.
    fuzz.sim.handle().clear_faults();
    let all = fuzz.run(client.list_managed_accounts()).unwrap().expect("the simulator pages properly");
    assert!(all.len() > 2, "{} accounts", all.len());
}

#[test]
fn request_durations_outside_the_api_range_are_refused_before_any_call() {
    let fuzz = Fuzz::new();
    let client = fuzz.client();
    fuzz.sim.handle().reset_calls();
    check(64, prop_oneof![0u32..3, 525_598u32..525_603, any::<u32>()], |minutes| {
        let options = RequestOptions { duration_minutes: minutes, ..RequestOptions::default() };
        let before = fuzz.sim.handle().call_count("POST Requests");
        let result = fuzz.run(client.managed_account("db01", "app_user", CredentialKinds::PASSWORD, &options))?;
        if (1..=525_600).contains(&minutes) {
            prop_assert!(result.is_ok(), "{:?}", result.err());
        } else {
            let err = result.unwrap_err();
            prop_assert_eq!(err.reason(), "InvalidConfig", "{}", err);
            prop_assert!(err.to_string().contains(&minutes.to_string()), "{}", err);
            prop_assert_eq!(fuzz.sim.handle().call_count("POST Requests"), before, "refused before any request");
        }
        fuzz.no_open_requests()
    });
}

// ---------------------------------------------------------------------------------------------------------
// Pure parsers
// ---------------------------------------------------------------------------------------------------------

#[test]
fn dates_parse_exactly_or_fail_with_a_clear_error() {
    check(512, date_like(), |raw| {
        match parse_ps_date(&raw) {
            Ok(None) => prop_assert!(raw.trim().is_empty()),
            Ok(Some(_)) => prop_assert!(!raw.trim().is_empty()),
            Err(message) => prop_assert!(message.starts_with("invalid date"), "{message}"),
        }
        // Inside a record, a bad date is a typed decode error, never a panic.
        let record = json!({"SystemId": 1, "AccountId": 2, "LastChangeDate": raw});
        let _ = serde_json::from_value::<ManagedAccount>(record);
        Ok(())
    });
    check(512, valid_date(), |(text, instant)| {
        prop_assert_eq!(parse_ps_date(&text), Ok(Some(instant)));
        prop_assert_eq!(parse_ps_date(&format!("  {text}\n")), Ok(Some(instant)));
        Ok(())
    });
}

#[test]
fn sub_codes_are_found_in_every_shape_and_nowhere_else() {
    check(512, (4000u16..5000, ".{0,20}"), |(code, text)| {
        let expected = Some(ApiCode::from_number(code));
        for body in [
            code.to_string(),
            format!("\"{code}\""),
            format!(" {code} "),
            format!("{code} - {text}"),
            format!("\"{code}: {text}\""),
            json!({"ErrorCode": code, "Message": text}).to_string(),
            json!({"Code": code.to_string()}).to_string(),
        ] {
            prop_assert_eq!(ApiCode::parse(&body), expected, "{}", body);
        }
        prop_assert_eq!(ApiCode::from_number(code).number(), code);
        Ok(())
    });
    check(512, prop_oneof![0u32..4000, 5000u32..100_000], |n| {
        prop_assert_eq!(ApiCode::parse(&n.to_string()), None);
        prop_assert_eq!(ApiCode::parse(&json!({"ErrorCode": n}).to_string()), None);
        Ok(())
    });
    check(1024, prop_oneof![".{0,40}", json_value().prop_map(|v| v.to_string())], |body| {
        if let Some(code) = ApiCode::parse(&body) {
            prop_assert!((4000..5000).contains(&code.number()), "{body}");
        }
        Ok(())
    });
    check(256, any::<i64>(), |n| {
        let state = ChangeState::from_code(n);
        prop_assert_eq!(state.is_in_flux(), n == 1 || n == 2);
        Ok(())
    });
}

#[test]
fn response_records_decode_or_fail_without_panicking() {
    check(512, json_value(), |value| {
        let _ = serde_json::from_value::<ManagedAccount>(value.clone());
        let _ = serde_json::from_value::<passwordsafe_operator::passwordsafe::Alias>(value.clone());
        let _ = serde_json::from_value::<SignedInUser>(value.clone());
        let _ = serde_json::from_value::<Vec<ManagedAccount>>(value);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------------------
// Spec validation
// ---------------------------------------------------------------------------------------------------------

/// Every string the CRD's `refreshInterval` pattern admits parses to the sum of its parts (or is refused as too
/// long); anything else is a clear error naming the input.
#[test]
fn durations_admitted_by_the_crd_pattern_parse_to_their_value() {
    let part = ("[0-9]{1,6}", prop::option::of("[0-9]{1,3}"), prop::sample::select(vec!["ms", "s", "m", "h"]));
    check(512, prop::collection::vec(part, 1..4), |parts| {
        let mut text = String::new();
        let mut seconds = 0f64;
        for (whole, fraction, unit) in &parts {
            let number = match fraction {
                Some(f) => format!("{whole}.{f}"),
                None => whole.clone(),
            };
            text.push_str(&number);
            text.push_str(unit);
            let value: f64 = number.parse().unwrap();
            seconds += match *unit {
                "ms" => value / 1000.0,
                "s" => value,
                "m" => value * 60.0,
                _ => value * 3600.0,
            };
        }
        match duration::parse(&text) {
            Ok(d) => prop_assert!((d.as_secs_f64() - seconds).abs() <= 1e-6 * seconds.max(1.0), "{text}: {d:?}"),
            Err(message) => {
                prop_assert!(seconds > 10.0 * 365.0 * 86400.0, "{text} refused: {message}");
                prop_assert!(message.contains("too long"), "{message}");
            }
        }
        let min = Duration::from_secs(10);
        if let Ok(d) = duration::parse_at_least(&text, min) {
            prop_assert!(d >= min);
        }
        Ok(())
    });
    check(512, prop_oneof![".{0,12}", "[0-9.hms ]{0,10}"], |text| {
        if let Err(message) = duration::parse(&text) {
            prop_assert!(!message.is_empty());
        }
        Ok(())
    });
}

#[test]
fn secret_keys_from_titles_are_always_valid() {
    check(512, ("[-._a-zA-Z0-9]{0,100}", ".{0,300}"), |(prefix, title)| {
        let key = keys::sanitize_key(&title);
        prop_assert!(keys::is_valid_key(&key), "{key:?}");
        let derived = keys::folder_key(Some(&prefix), &title);
        prop_assert!(keys::is_valid_key(&derived) && keys::is_valid_key(&keys::username_key(&derived)), "{derived:?}");
        Ok(())
    });
    // The CRD's secretKey pattern and the Secret API's key rule agree but for "." and "..", which the
    // operator refuses with a clear error (InvalidKey) when it builds the Secret.
    check(512, "[-._a-zA-Z0-9]{1,253}", |key| {
        prop_assert!(keys::is_valid_key(&key) || key == "." || key == "..", "{key:?}");
        Ok(())
    });
}

/// A spec from any JSON: it deserializes or not; when it does, planning its sources and building its Secret
/// either works or fails with an error that names keys and types, never values.
#[test]
fn specs_of_any_shape_are_validated_without_panicking_or_quoting_values() {
    let valid = json!({
        "storeRef": {"name": "passwordsafe"},
        "data": [
            {"secretKey": "password", "managedAccount": {"system": "db01", "account": "app_user"}},
            {"secretKey": "u", "alias": {"name": "db-app", "field": "username"}},
            {"secretKey": "ca.pem", "secretsSafe": {"folderPath": "prod/db", "title": "tls-bundle", "field": "file"}}
        ],
        "dataFrom": [{"secretsSafeFolder": {"folderPath": "prod/db", "keyPrefix": "db_"}}],
        "target": {"name": "out", "type": "kubernetes.io/basic-auth", "creationPolicy": "Owner",
            "template": {"data": {"url": "postgres://{{ username }}:{{ password }}@db"}, "keepSourceKeys": true}},
        "refreshInterval": "1h30m",
        "request": {"durationMinutes": 5, "rotateOnCheckin": false}
    });
    let types = prop::sample::select(vec![
        "Opaque",
        "kubernetes.io/basic-auth",
        "kubernetes.io/ssh-auth",
        "kubernetes.io/tls",
        "kubernetes.io/dockerconfigjson",
        "kubernetes.io/dockercfg",
        "kubernetes.io/service-account-token",
        "bootstrap.kubernetes.io/token",
        "",
        "x",
    ]);
    let owner = Owner { name: "p".into(), namespace: "ns".into(), uid: "u".into() };
    check(
        256,
        (prop::collection::vec(mutation(), 0..4), types, prop::collection::vec("[-._a-zA-Z0-9]{0,6}", 0..5)),
        |(m, secret_type, extra)| {
            let value = apply(&valid, &m);
            if let Ok(spec) = serde_json::from_value::<PasswordSafeSecretSpec>(value) {
                let _ = Source::all_of(&spec);
                if let Some(text) = &spec.refresh_interval {
                    let _ = duration::parse(text);
                }
                let mut data: SecretData = spec
                    .data
                    .iter()
                    .map(|item| (item.secret_key.clone(), SecretBytes::new(MARKER.as_bytes().to_vec())))
                    .collect();
                data.extend(extra.iter().map(|k| (k.clone(), SecretBytes::new(MARKER.as_bytes().to_vec()))));
                let target = SecretTarget { type_: Some(secret_type.to_owned()), ..spec.target.clone() };
                if let Err(e) = desired_secret(&target, &owner, data.clone()) {
                    prop_assert!(!e.to_string().contains(MARKER), "{e}");
                }
                if let Some(t) = &spec.target.template
                    && let Err(e) = template::render(t, &data)
                {
                    prop_assert!(!e.to_string().contains(MARKER), "{e}");
                }
            }
            Ok(())
        },
    );
}

/// Templates written by whoever may create a PasswordSafeSecret: any mix of valid and broken syntax renders
/// or fails with an error that never contains a fetched value.
#[test]
fn templates_render_or_fail_without_quoting_a_value() {
    let fragments = prop::sample::select(vec![
        "{{ password }}",
        "{{ username }}",
        "{{ data['password'] }}",
        "{{ data.password }}",
        "{{ password | upper }}",
        "{{ password | b64encode }}",
        "{{ password | b64decode }}",
        "{{ password * 2 }}",
        "{{ password + 1 }}",
        "{{ password - 1 }}",
        "{{ password | int }}",
        "{{ password | float }}",
        "{{ password[100] }}",
        "{{ password[1:3] }}",
        "{{ missing }}",
        "{% for c in password %}{{ c }}{% endfor %}",
        "{{ password | map('upper') | join }}",
        "{{ password | attr(password) }}",
        "{{ range(password) }}",
        "{{ password | join(password) }}",
        "{{",
        "}}",
        "{%",
        "%}",
        "{% if password %}",
        "{% endif %}",
        "{{ password ~ password }}",
        "{{ password.foo }}",
        "{{ password() }}",
        "{{ password | tojson }}",
        "{{ password | replace('a', 'b') }}",
        "{{ (password | length) / 0 }}",
        "{{ password is divisibleby 0 }}",
        "{{ data[password] }}",
        "{{ username[password] }}",
        "{{ password | bogus }}",
        "{{ password | urlencode }}",
        "{{ password | dictsort }}",
        "{{ password | round }}",
        "{{ 1 / 0 }}",
        "{% set x = password %}{{ x.y }}",
        "{{ password | indent(password) }}",
        "{{ password | truncate(password) }}",
        "{{ password | format(password) }}",
        "{{ '%d' | format(password) }}",
        "{{ password | abs }}",
        "x",
        "\n",
        " ",
    ]);
    let values: SecretData = [("password", MARKER), ("username", "dbuser")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), SecretBytes::new(v.as_bytes().to_vec())))
        .collect();
    check(512, prop::collection::vec(fragments, 1..5), |parts| {
        let source = parts.concat();
        let template =
            SecretTemplate { data: BTreeMap::from([("out".to_owned(), source.clone())]), keep_source_keys: false };
        if let Err(e) = template::render(&template, &values) {
            let text = e.to_string();
            prop_assert!(!text.contains(MARKER) && !text.contains("s3cr3t"), "{source:?} -> {text}");
            prop_assert!(text.contains("\"out\""), "the error names the key: {text}");
        }
        Ok(())
    });
}

#[test]
fn store_urls_parse_or_fail_clearly() {
    check(512, prop_oneof![".{0,40}", "(https?|ftp)://[a-z0-9.:/?#@\\[\\]-]{0,30}"], |raw| {
        match parse_base_url(&raw) {
            Ok(url) => {
                prop_assert!(matches!(url.scheme(), "http" | "https"), "{url}");
                prop_assert!(url.path().ends_with('/') && url.query().is_none(), "{url}");
            }
            Err(e) => prop_assert_eq!(e.reason(), "InvalidConfig", "{}", e),
        }
        let auth = Auth::ApiKey { key: SecretString::new(MARKER), run_as: "u".into(), password: None };
        if let Err(e) = passwordsafe_operator::passwordsafe::ClientConfig::new(&raw, auth) {
            prop_assert!(!e.to_string().contains(MARKER), "{e}");
        }
        Ok(())
    });
}
