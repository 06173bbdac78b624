//! Small stand-ins for what the controller keeps per resource for as long as it runs: a UID as a number, and
//! 64-bit digests of things that are only ever compared for equality (resourceVersions, a Secret as it would
//! be applied, a status message, an event). The digests live in memory only and are never written anywhere.

use std::hash::{Hash, Hasher};

/// A 64-bit digest of `value` (std's SipHash with fixed keys: stable within the process).
pub fn digest(value: &impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// A 128-bit digest of `value`, for keys of large maps where a 64-bit collision would be merely unlikely.
pub fn wide_digest(value: &impl Hash) -> u128 {
    (u128::from(digest(&(0u8, value))) << 64) | u128::from(digest(&(1u8, value)))
}

/// A Kubernetes UID (an RFC 4122 UUID) as a number; anything else as a digest of its text.
pub fn uid_key(uid: &str) -> u128 {
    let hex: String = uid.chars().filter(|c| *c != '-').collect();
    match u128::from_str_radix(&hex, 16) {
        Ok(n) if hex.len() == 32 => n,
        _ => u128::from(digest(&uid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_numbers_and_other_text_a_digest() {
        assert_eq!(uid_key("00000000-0000-0000-0000-00000000000a"), 10);
        assert_ne!(uid_key("x"), uid_key("y"));
        assert_eq!(uid_key("x"), uid_key("x"));
    }

    #[test]
    fn digests_are_stable_and_tell_values_apart() {
        assert_eq!(digest(&("a", 1)), digest(&("a", 1)));
        assert_ne!(digest(&("a", 1)), digest(&("a", 2)));
        assert_eq!(wide_digest(&("a", 1)), wide_digest(&("a", 1)));
        assert_ne!(wide_digest(&("a", 1)), wide_digest(&("a", 2)));
    }
}
