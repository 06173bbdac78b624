//! Starting simulators and talking to them.

use std::sync::Once;

use passwordsafe_simulator::{Running, Seed, ServeOptions, start};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

/// The demo seed's API key for `svc-k8s-operator` (and `mallory`).
pub const DEMO_AUTH: &str = "PS-Auth key=demo-api-key-0123456789abcdef; runas=svc-k8s-operator;";
pub const MALLORY_AUTH: &str = "PS-Auth key=demo-api-key-0123456789abcdef; runas=mallory;";

/// reqwest is built without a bundled crypto provider; tests install ring once for the process.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub async fn demo() -> Running {
    start_seed(Seed::demo()).await
}

pub async fn start_yaml(yaml: &str) -> Running {
    start_seed(Seed::from_yaml_str(yaml).expect("test seed")).await
}

pub async fn start_seed(seed: Seed) -> Running {
    install_crypto();
    start(seed, ServeOptions::default()).await.expect("simulator starts")
}

/// A client of one simulator that keeps the session cookie like a browser would.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub session: Option<String>,
}

impl Client {
    pub fn new(running: &Running) -> Client {
        install_crypto();
        Client { http: reqwest::Client::new(), base: running.base_url(), session: None }
    }

    /// A client signed in with `authorization`; panics unless sign-in answers 200.
    pub async fn signed_in(running: &Running, authorization: &str) -> Client {
        let mut client = Client::new(running);
        let response = client.sign_in(authorization).await;
        assert_eq!(response.status(), StatusCode::OK, "sign-in");
        client
    }

    /// `POST Auth/SignAppIn`; keeps the session cookie when one is set.
    pub async fn sign_in(&mut self, authorization: &str) -> Response {
        let response = self
            .http
            .post(format!("{}/Auth/SignAppIn", self.base))
            .header("Authorization", authorization)
            .send()
            .await
            .expect("sign-in call");
        if let Some(cookie) = response.headers().get("set-cookie") {
            let cookie = cookie.to_str().expect("ascii cookie");
            let value = cookie.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v);
            self.session = value.map(str::to_string);
        }
        response
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut builder = self.http.request(method, format!("{}/{}", self.base, path));
        if let Some(session) = &self.session {
            builder = builder.header("Cookie", format!("ASP.NET_SessionId={session}"));
        }
        builder
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path).json(&body).send().await.expect("POST")
    }

    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.request(Method::PUT, path).json(&body).send().await.expect("PUT")
    }

    /// `POST Requests` for `View` access; returns (status, body).
    pub async fn request_account(&self, system_id: i64, account_id: i64, extra: Value) -> (StatusCode, Value) {
        let mut body = serde_json::json!({ "SystemID": system_id, "AccountID": account_id, "DurationMinutes": 30 });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let response = self.post("Requests", body).await;
        let status = response.status();
        (status, json(response).await)
    }

    pub async fn credentials(&self, request_id: i64) -> (StatusCode, Value) {
        let response = self.get(&format!("Credentials/{request_id}")).await;
        let status = response.status();
        (status, json(response).await)
    }

    pub async fn checkin(&self, request_id: i64) -> StatusCode {
        self.put(&format!("Requests/{request_id}/Checkin"), serde_json::json!({})).await.status()
    }
}

/// The body as JSON (`Null` for an empty body); panics on invalid JSON.
pub async fn json(response: Response) -> Value {
    let bytes = response.bytes().await.expect("body");
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("invalid JSON {:?}: {e}", String::from_utf8_lossy(&bytes)))
}

/// Calls the admin API.
pub async fn admin(running: &Running, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    install_crypto();
    let mut builder = reqwest::Client::new().request(method, format!("{}/{}", running.admin_url(), path));
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.send().await.expect("admin call");
    let status = response.status();
    (status, json(response).await)
}
