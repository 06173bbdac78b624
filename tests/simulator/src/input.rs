//! Tolerant parsing of query strings and JSON bodies, the way ASP.NET model binding reads them: names are
//! case-insensitive and numbers may arrive as strings. Anything unreadable becomes a 400 with a message.

use std::str::FromStr;

use serde_json::{Map, Value};

use crate::reply::Reply;

/// Query string (or form body) parameters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        Self::from_bytes(query.unwrap_or("").as_bytes())
    }

    /// `application/x-www-form-urlencoded` bodies use the same encoding as query strings.
    pub fn from_bytes(bytes: &[u8]) -> Query {
        Query { pairs: form_urlencoded::parse(bytes).into_owned().collect() }
    }

    /// First value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// A value that must be blank or parse as `T`.
    pub fn number<T: FromStr>(&self, name: &str) -> Result<Option<T>, Reply> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| Reply::bad_request(&format!("The value '{text}' is not valid for {name}."))),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, Reply> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(text) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(text) => Err(Reply::bad_request(&format!("The value '{text}' is not valid for {name}."))),
        }
    }
}

/// A JSON object body with case-insensitive member names.
#[derive(Debug, Default)]
pub(crate) struct JsonBody {
    fields: Map<String, Value>,
}

impl JsonBody {
    /// An empty body reads as `{}` (check-in accepts no body at all); anything else must be a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<JsonBody, Reply> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody::default());
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Reply::bad_request(&format!("The request body is not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => {
                Ok(JsonBody { fields: map.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect() })
            }
            Value::Null => Ok(JsonBody::default()),
            _ => Err(Reply::bad_request("The request body must be a JSON object.")),
        }
    }

    fn value(&self, name: &str) -> Option<&Value> {
        self.fields.get(&name.to_ascii_lowercase()).filter(|v| !v.is_null())
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, Reply> {
        let invalid = || Reply::bad_request(&format!("{name} must be an integer."));
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(invalid),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
            Some(_) => Err(invalid()),
        }
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, Reply> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(Reply::bad_request(&format!("{name} must be a string."))),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, Reply> {
        let invalid = || Reply::bad_request(&format!("{name} must be true or false."));
        match self.value(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_are_case_insensitive_and_decoded() {
        let q = Query::parse(Some("systemName=db%2001&AccountName=a+b&limit=5"));
        assert_eq!(q.get("systemname"), Some("db 01"));
        assert_eq!(q.get("accountName"), Some("a b"));
        assert_eq!(q.number::<u32>("Limit").unwrap(), Some(5));
        assert!(q.number::<u32>("systemName").is_err());
    }

    #[test]
    fn json_body_is_case_insensitive_and_lenient_on_numbers() {
        let body = JsonBody::parse(br#"{"systemId": "12", "ACCOUNTID": 7, "RotateOnCheckin": "false"}"#).unwrap();
        assert_eq!(body.integer("SystemID").unwrap(), Some(12));
        assert_eq!(body.integer("AccountID").unwrap(), Some(7));
        assert_eq!(body.boolean("rotateOnCheckin").unwrap(), Some(false));
        assert!(JsonBody::parse(b"[1]").is_err());
        assert!(JsonBody::parse(b"{").is_err());
        assert!(JsonBody::parse(b"  ").is_ok());
    }
}
