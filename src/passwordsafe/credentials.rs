//! Reading released credentials: `GET Credentials/{requestId}`, `GET Aliases/{aliasId}/Credentials/{requestId}`
//! and the one-call `POST ISARequests`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::Client;
use super::error::{Error, Result};
use super::models::AliasCredentialBody;
use super::secret::SecretString;
use super::transport::{Call, Replay, Response};

/// The `type` query parameter of credential calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialType {
    Password,
    DssKey,
    Passphrase,
}

impl CredentialType {
    pub fn query_value(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::DssKey => "dsskey",
            Self::Passphrase => "passphrase",
        }
    }
}

impl Client {
    pub(crate) async fn read_credential(&self, request_id: i64, kind: CredentialType) -> Result<SecretString> {
        let call = Call::new("GET Credentials", Method::GET, format!("Credentials/{request_id}"))
            .query("type", kind.query_value());
        credential_from(&self.send(call).await?)
    }

    pub(crate) async fn read_alias_credential(
        &self,
        alias_id: i64,
        request_id: i64,
        kind: CredentialType,
    ) -> Result<SecretString> {
        const EP: &str = "GET Aliases/Credentials";
        let call = Call::new(EP, Method::GET, format!("Aliases/{alias_id}/Credentials/{request_id}"))
            .query("type", kind.query_value());
        let body: AliasCredentialBody = self.send(call).await?.json()?;
        let (value, field) = match kind {
            CredentialType::Password => (body.password, "Password"),
            CredentialType::DssKey => (body.private_key, "PrivateKey"),
            CredentialType::Passphrase => (body.passphrase, "Passphrase"),
        };
        match value {
            Some(v) if !v.is_empty() => Ok(SecretString::from(v)),
            _ => Err(Error::invalid(EP, format!("the answer has no {field}"))),
        }
    }

    /// `POST ISARequests`: request and credential in one call. Not repeated after an unknown outcome (each call
    /// opens a release), only after a refused connection or a 429.
    pub(crate) async fn isa_request(
        &self,
        system_id: i64,
        account_id: i64,
        duration_minutes: u32,
        reason: &str,
        kind: CredentialType,
    ) -> Result<SecretString> {
        let call = Call::new("POST ISARequests", Method::POST, "ISARequests")
            .query("type", kind.query_value())
            .json(json!({ "SystemID": system_id, "AccountID": account_id, "DurationMinutes": duration_minutes, "Reason": reason }))
            .replay(Replay::OnlyIfNotProcessed);
        credential_from(&self.send(call).await?)
    }
}

/// A credential answer. Real servers send a JSON string (`"the-password"`); the guide shows
/// `{Credentials: string}` for ISA requests; some proxies send the bare text. A JSON content type must parse
/// as JSON: a malformed body is an error, never a password, and never an empty one.
pub(crate) fn credential_from(response: &Response) -> Result<SecretString> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Text(String),
        Object {
            #[serde(rename = "Credentials", alias = "Credential", alias = "Password")]
            credentials: String,
        },
    }
    let bytes = response.body.expose();
    let looks_json = matches!(bytes.iter().find(|b| !b.is_ascii_whitespace()), Some(b'"') | Some(b'{'));
    let value = if response.is_json() || looks_json {
        match response.json::<Body>()? {
            Body::Text(s) | Body::Object { credentials: s } => SecretString::from(s),
        }
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::invalid(response.endpoint, "credential is not UTF-8 text"))?;
        SecretString::new(text)
    };
    if value.is_empty() {
        return Err(Error::invalid(response.endpoint, "empty credential"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passwordsafe::secret::SecretBytes;
    use reqwest::StatusCode;
    use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

    fn response(content_type: Option<&'static str>, body: &str) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        Response {
            endpoint: "GET Credentials",
            status: StatusCode::OK,
            headers,
            body: SecretBytes::new(body.as_bytes().to_vec()),
        }
    }

    #[test]
    fn credentials_parse_as_json_string_object_or_plain_text() {
        assert_eq!(
            credential_from(&response(Some("application/json"), "\"p@ss \\\"w\\\"\"")).unwrap().expose(),
            "p@ss \"w\""
        );
        assert_eq!(credential_from(&response(None, "{\"Credentials\":\"abc\"}")).unwrap().expose(), "abc");
        assert_eq!(credential_from(&response(Some("text/plain"), "raw pass ")).unwrap().expose(), "raw pass ");
    }

    #[test]
    fn malformed_or_empty_credentials_are_errors_that_do_not_echo_the_body() {
        for (ct, body) in [
            (Some("application/json"), "{\"broken secret"),
            (Some("application/json"), "\"\""),
            (None, ""),
            (Some("application/json"), "12345"),
        ] {
            let err = credential_from(&response(ct, body)).unwrap_err();
            assert_eq!(err.reason(), "InvalidResponse", "{body}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }
}
