//! An in-process stand-in for the few Kubernetes API calls one reconcile makes, on kube-rs's tower-test
//! mock service: objects are kept by URL path; GET, server-side apply, merge patch, status patch, DELETE and
//! event creation are answered the way the API server answers them; every request is recorded.
//! For unit-level reconcile tests only: the end-to-end suite runs against a real kube-apiserver.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct KubeMock {
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    faults: Arc<Mutex<Vec<(String, String, MockFault)>>>,
}

/// What happens to the next request that [`KubeMock::fault_next`] names.
#[derive(Clone, Copy, Debug)]
pub enum MockFault {
    /// Answered with this error status (a `Status` body), not carried out.
    Status(u16),
    /// Carried out, then the connection breaks before the response (the client cannot tell whether it was).
    BreakAfterApplying,
}

impl KubeMock {
    /// A kube client whose every call is answered by the returned mock.
    pub fn start() -> (kube::Client, KubeMock) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let mock = KubeMock::default();
        let server = mock.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                match server.answer(request).await {
                    Ok(response) => respond.send_response(response),
                    Err(broken) => respond.send_error(broken),
                }
            }
        });
        (kube::Client::new(service, "default"), mock)
    }

    /// The next `method` request whose path ends with `suffix` meets `fault` (once).
    pub fn fault_next(&self, method: &str, suffix: &str, fault: MockFault) {
        self.faults.lock().unwrap().push((method.to_owned(), suffix.to_owned(), fault));
    }

    fn take_fault(&self, method: &str, path: &str) -> Option<MockFault> {
        let mut faults = self.faults.lock().unwrap();
        let at = faults.iter().position(|(m, suffix, _)| m == method && path.ends_with(suffix.as_str()))?;
        Some(faults.remove(at).2)
    }

    pub fn put(&self, path: &str, object: Value) {
        self.objects.lock().unwrap().insert(path.to_owned(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    pub fn remove(&self, path: &str) {
        self.objects.lock().unwrap().remove(path);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.requests.lock().unwrap().clear();
    }

    /// Requests whose method is `method` and whose path ends with `suffix`.
    pub fn calls(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path.ends_with(suffix)).collect()
    }

    /// Every request as one text, for leak checks.
    pub fn transcript(&self) -> String {
        self.requests().iter().map(|r| format!("{} {}?{} {}\n", r.method, r.path, r.query, r.body)).collect()
    }

    async fn answer(&self, request: Request<Body>) -> Result<Response<Body>, std::io::Error> {
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_owned();
        let content_type =
            parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        self.requests.lock().unwrap().push(Recorded {
            method: parts.method.to_string(),
            path: path.clone(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: content_type.clone(),
            body: body.clone(),
        });
        let (status, reply) = match self.take_fault(parts.method.as_str(), &path) {
            Some(MockFault::Status(code)) => (
                StatusCode::from_u16(code).unwrap(),
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "message": "injected by the mock"}),
            ),
            Some(MockFault::BreakAfterApplying) => {
                self.handle(parts.method.as_str(), &path, &content_type, body);
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection broken by the mock"));
            }
            None => self.handle(parts.method.as_str(), &path, &content_type, body),
        };
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(reply.to_string().into_bytes()))
            .unwrap())
    }

    fn handle(&self, method: &str, path: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
        let mut objects = self.objects.lock().unwrap();
        let (object_path, subresource_status) = match path.strip_suffix("/status") {
            Some(p) => (p.to_owned(), true),
            None => (path.to_owned(), false),
        };
        match method {
            "GET" => match objects.get(&object_path) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => not_found(path),
            },
            "DELETE" => match objects.remove(&object_path) {
                Some(o) => (StatusCode::OK, o),
                None => not_found(path),
            },
            "POST" => {
                // Event creation (and any other create): stored under its name, echoed.
                let mut created = body;
                if created["metadata"]["name"].is_null() {
                    created["metadata"]["name"] = json!(format!("generated-{}", objects.len()));
                }
                let name = created["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                objects.insert(format!("{object_path}/{name}"), created.clone());
                (StatusCode::CREATED, created)
            }
            "PATCH" if content_type.starts_with("application/apply-patch") => {
                // Server-side apply: the applied fields replace ours; server-set metadata is kept.
                let mut applied = body;
                if let Some(existing) = objects.get(&object_path) {
                    for key in ["uid", "resourceVersion", "creationTimestamp"] {
                        if let Some(v) = existing["metadata"].get(key) {
                            applied["metadata"][key] = v.clone();
                        }
                    }
                } else {
                    applied["metadata"]["uid"] = json!(format!("uid-{}", objects.len()));
                }
                objects.insert(object_path, applied.clone());
                (StatusCode::OK, applied)
            }
            "PATCH" => match objects.get_mut(&object_path) {
                Some(existing) => {
                    if content_type.starts_with("application/merge-patch") {
                        if subresource_status {
                            merge(&mut existing["status"], &body["status"]);
                        } else {
                            merge(existing, &body);
                        }
                    }
                    // JSON patches (finalizer bookkeeping) are acknowledged without change.
                    (StatusCode::OK, existing.clone())
                }
                None => not_found(path),
            },
            _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
        }
    }
}

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
    )
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in fields {
                if v.is_null() {
                    target.as_object_mut().unwrap().remove(k);
                } else {
                    merge(&mut target[k], v);
                }
            }
        }
        other => *target = other.clone(),
    }
}
