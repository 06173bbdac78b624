//! Domain logic between a PasswordSafeSecret and its Kubernetes Secret: what to fetch, when to look again,
//! and what the Secret should contain. Pure where it can be; unit-tested without a cluster.

use std::collections::BTreeMap;

use crate::passwordsafe::SecretBytes;

pub mod desired;
pub mod duration;
pub mod hmac;
pub mod keys;
pub mod resolve;
pub mod schedule;
pub mod template;

/// The values of a Secret being built: key → bytes, held redacted.
pub type SecretData = BTreeMap<String, SecretBytes>;

/// Secret data as kept in memory between syncs: the same pairs in key order, sized exactly. A `BTreeMap`
/// allocates a node for eleven entries even for one, and the operator keeps one of these per resource.
#[derive(Clone, Default)]
pub struct StoredData(Box<[(Box<str>, SecretBytes)]>);

impl StoredData {
    pub fn to_data(&self) -> SecretData {
        self.0.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<SecretData> for StoredData {
    fn from(data: SecretData) -> Self {
        Self(data.into_iter().map(|(k, v)| (k.into_boxed_str(), v.shrunk())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_data_gives_back_what_it_was_given() {
        let data: SecretData =
            [("b".to_owned(), SecretBytes::new(b"2".to_vec())), ("a".to_owned(), SecretBytes::new(b"1".to_vec()))]
                .into();
        let stored = StoredData::from(data.clone());
        assert_eq!(stored.len(), 2);
        assert_eq!(stored.to_data(), data);
        assert!(StoredData::default().is_empty());
    }
}
