//! A keyed digest of a Secret's data, for `status.dataHmac`.
//!
//! Status is readable by more people than the Secret. A plain hash of a short password can be brute-forced
//! from status, so the digest is an HMAC keyed by an operator-held key (as Vault Secrets Operator does): it
//! tells a changed or tampered Secret without saying anything about the values.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;

use super::SecretData;
use crate::passwordsafe::SecretBytes;

/// Prefix of every digest, so a later change of algorithm is visible in status.
pub const DIGEST_PREFIX: &str = "hmac-sha256:";
/// Shortest accepted key: SHA-256's output size.
pub const MIN_KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Computes and checks `status.dataHmac` values.
#[derive(Clone)]
pub struct DataHmac {
    key: SecretBytes,
}

impl DataHmac {
    /// Fails when the key is shorter than [`MIN_KEY_LEN`] bytes (the message names only the length).
    pub fn new(key: SecretBytes) -> Result<Self, String> {
        if key.len() < MIN_KEY_LEN {
            return Err(format!("HMAC key is {} bytes; at least {MIN_KEY_LEN} are needed", key.len()));
        }
        Ok(Self { key })
    }

    /// A fresh random key of [`MIN_KEY_LEN`] bytes, for the operator to store on first start.
    pub fn generate_key() -> SecretBytes {
        let mut bytes = vec![0u8; MIN_KEY_LEN];
        rand::rng().fill(&mut bytes[..]);
        SecretBytes::new(bytes)
    }

    /// `hmac-sha256:<lowercase hex>` of the data.
    pub fn digest(&self, data: &SecretData) -> String {
        let tag = self.mac_of(data).finalize().into_bytes();
        format!("{DIGEST_PREFIX}{}", hex::encode(tag))
    }

    /// Whether `digest` is this key's digest of `data`, compared in constant time. A malformed digest or one
    /// from another algorithm does not match.
    pub fn matches(&self, data: &SecretData, digest: &str) -> bool {
        let Some(tag) = digest.strip_prefix(DIGEST_PREFIX).and_then(|hex_tag| hex::decode(hex_tag).ok()) else {
            return false;
        };
        self.mac_of(data).verify_slice(&tag).is_ok()
    }

    fn mac_of(&self, data: &SecretData) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail; `new` has checked the length we want.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.key.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        for (key, value) in data {
            update_canonical(&mut mac, key.as_bytes(), value.expose());
        }
        mac
    }
}

/// One entry in a length-prefixed encoding: without the lengths, `{"ab": "c"}` and `{"a": "bc"}` would be
/// fed as the same bytes and share a digest.
fn update_canonical(mac: &mut HmacSha256, key: &[u8], value: &[u8]) {
    mac.update(&(key.len() as u64).to_be_bytes());
    mac.update(key);
    mac.update(&(value.len() as u64).to_be_bytes());
    mac.update(value);
}

impl fmt::Debug for DataHmac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataHmac").field("key", &"[redacted]").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_with(byte: u8) -> DataHmac {
        DataHmac::new(SecretBytes::new(vec![byte; 32])).unwrap()
    }

    fn data(entries: &[(&str, &str)]) -> SecretData {
        entries.iter().map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn short_key_is_rejected_without_showing_it() {
        let err = DataHmac::new(SecretBytes::new(b"short-key".to_vec())).unwrap_err();
        assert!(err.contains("9 bytes"), "{err}");
        assert!(!err.contains("short-key"));
        assert!(DataHmac::new(SecretBytes::new(vec![0; 31])).is_err());
        assert!(DataHmac::new(SecretBytes::new(vec![0; 32])).is_ok());
    }

    #[test]
    fn generated_keys_are_32_random_bytes() {
        let a = DataHmac::generate_key();
        let b = DataHmac::generate_key();
        assert_eq!(a.len(), 32);
        assert_ne!(a.expose(), b.expose());
        assert!(DataHmac::new(a).is_ok());
    }

    #[test]
    fn digest_is_prefixed_lowercase_hex_sha256() {
        let digest = hmac_with(1).digest(&data(&[("a", "b")]));
        let hex_part = digest.strip_prefix("hmac-sha256:").unwrap();
        assert_eq!(hex_part.len(), 64);
        assert!(hex_part.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    }

    #[test]
    fn digest_is_stable_across_calls_and_instances() {
        let d = data(&[("user", "admin"), ("password", "hunter2")]);
        assert_eq!(hmac_with(1).digest(&d), hmac_with(1).digest(&d));
    }

    #[test]
    fn digest_matches_a_known_hmac_sha256() {
        // HMAC-SHA256 over the canonical encoding of {"k": "v"}, computed independently:
        // key = 32 zero bytes, message = 00..01 'k' 00..01 'v'.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&[0u8; 32]).unwrap();
        mac.update(&[0, 0, 0, 0, 0, 0, 0, 1, b'k', 0, 0, 0, 0, 0, 0, 0, 1, b'v']);
        let expected = format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(hmac_with(0).digest(&data(&[("k", "v")])), expected);
    }

    #[test]
    fn digest_changes_with_a_value() {
        let h = hmac_with(1);
        assert_ne!(h.digest(&data(&[("a", "1")])), h.digest(&data(&[("a", "2")])));
    }

    #[test]
    fn digest_changes_with_a_key_name() {
        let h = hmac_with(1);
        assert_ne!(h.digest(&data(&[("a", "1")])), h.digest(&data(&[("b", "1")])));
    }

    #[test]
    fn digest_changes_when_a_key_is_added_or_removed() {
        let h = hmac_with(1);
        let one = h.digest(&data(&[("a", "1")]));
        assert_ne!(one, h.digest(&data(&[("a", "1"), ("b", "")])));
        assert_ne!(one, h.digest(&SecretData::new()));
    }

    #[test]
    fn moving_bytes_between_key_and_value_changes_the_digest() {
        let h = hmac_with(1);
        assert_ne!(h.digest(&data(&[("ab", "c")])), h.digest(&data(&[("a", "bc")])));
        assert_ne!(h.digest(&data(&[("a", "b"), ("c", "")])), h.digest(&data(&[("a", "bc")])));
    }

    #[test]
    fn different_keys_give_different_digests() {
        let d = data(&[("a", "1")]);
        assert_ne!(hmac_with(1).digest(&d), hmac_with(2).digest(&d));
    }

    #[test]
    fn digest_never_contains_the_hex_of_a_value() {
        let value = "s3cr3t-value-that-is-long-enough";
        let digest = hmac_with(1).digest(&data(&[("password", value)]));
        assert!(!digest.contains(&hex::encode(value)));
        assert!(!digest.contains(&hex::encode(&value.as_bytes()[..4])));
        assert!(!digest.contains(value));
    }

    #[test]
    fn matches_accepts_its_own_digest() {
        let h = hmac_with(1);
        let d = data(&[("a", "1")]);
        assert!(h.matches(&d, &h.digest(&d)));
    }

    #[test]
    fn matches_rejects_other_data_other_keys_and_malformed_digests() {
        let h = hmac_with(1);
        let d = data(&[("a", "1")]);
        let digest = h.digest(&d);
        assert!(!h.matches(&data(&[("a", "2")]), &digest));
        assert!(!hmac_with(2).matches(&d, &digest));
        assert!(!h.matches(&d, digest.trim_start_matches(DIGEST_PREFIX)));
        assert!(!h.matches(&d, &digest.replace("hmac-sha256", "sha256")));
        assert!(!h.matches(&d, &digest[..digest.len() - 2]));
        assert!(!h.matches(&d, "hmac-sha256:zz"));
        assert!(!h.matches(&d, ""));
    }

    #[test]
    fn matches_accepts_uppercase_hex() {
        let h = hmac_with(1);
        let d = data(&[("a", "1")]);
        let upper = format!("{DIGEST_PREFIX}{}", h.digest(&d)[DIGEST_PREFIX.len()..].to_uppercase());
        assert!(h.matches(&d, &upper));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let h = DataHmac::new(SecretBytes::new(b"0123456789abcdef0123456789abcdef".to_vec())).unwrap();
        let shown = format!("{h:?} {h:#?}");
        assert!(!shown.contains("0123456789"), "{shown}");
        assert!(!shown.contains(&hex::encode("0123456789")));
        assert!(shown.contains("redacted"));
    }
}
