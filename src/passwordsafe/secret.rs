//! Types that hold secret material.
//!
//! Every value that could let someone into a system (passwords, DSS keys, passphrases, API keys, client
//! secrets, access tokens, session cookies, Secrets Safe text and files) lives in one of these types. Their
//! `Debug` and `Display` print `[redacted]`, they are not `Serialize`, and their memory is zeroed on drop.
//! The only way to the bytes is an explicit `expose*` call, which is easy to find in review.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

const REDACTED: &str = "[redacted]";

/// A secret UTF-8 string.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call only where the value must leave this type: an HTTP header, a Secret's data.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Secret binary content (a Secrets Safe file, a raw response body that may carry a credential).
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same bytes without spare capacity (a value read from a response body keeps the body's buffer size).
    /// The old buffer is zeroized when it is dropped.
    pub fn shrunk(self) -> Self {
        if self.0.capacity() == self.0.len() { self } else { Self(self.0.clone()) }
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REDACTED} ({} bytes)", self.0.len())
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_never_formats_its_value() {
        let s = SecretString::new("hunter2-very-secret");
        for shown in [format!("{s:?}"), format!("{s}"), format!("{s:#?}"), format!("{:?}", Some(&s))] {
            assert!(!shown.contains("hunter2"), "leaked in {shown}");
            assert!(shown.contains("[redacted]"));
        }
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn secret_bytes_never_formats_its_value() {
        let s = SecretBytes::new(b"-----BEGIN KEY----- abc".to_vec());
        let shown = format!("{s:?} {s}");
        assert!(!shown.contains("BEGIN"), "leaked in {shown}");
        assert!(shown.contains("23 bytes"));
    }
}
