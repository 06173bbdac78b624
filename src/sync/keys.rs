//! Secret keys: the Kubernetes key rule, and how `dataFrom` folders turn secret titles into keys.
//!
//! A Secrets Safe title is free text (`DB password (prod)`); a Secret key is not. Each character outside
//! `[-._a-zA-Z0-9]` becomes `_` and `keyPrefix` is prepended. Different titles can end up as the same key
//! (`a b` and `a_b`), so callers run [`find_collisions`] over every key of a Secret and report each one.

use std::collections::BTreeMap;
use std::fmt;

/// Longest Secret key Kubernetes accepts (a DNS subdomain's length).
pub const MAX_KEY_LEN: usize = 253;
/// Suffix of the key that holds a credential's username next to its password.
pub const USERNAME_SUFFIX: &str = ".username";
/// Longest key derived from a folder title. Shorter than [`MAX_KEY_LEN`] so that the `.username` key of a
/// credential with a very long title is still a valid key.
pub const MAX_DERIVED_KEY_LEN: usize = MAX_KEY_LEN - USERNAME_SUFFIX.len();

/// Kubernetes' Secret key rule: 1 to 253 characters of `[-._a-zA-Z0-9]`, and not `.` or `..`.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(is_key_byte) && key != "." && key != ".."
}

/// A title made into a valid Secret key: characters outside `[-._a-zA-Z0-9]` become `_`, an empty title
/// becomes `_`, `.` and `..` get a `_` in front, and the result is cut to 253 bytes.
pub fn sanitize_key(title: &str) -> String {
    make_valid(replace_invalid_chars(title), MAX_KEY_LEN)
}

/// The key for one secret of a `dataFrom` folder: `keyPrefix` followed by the sanitised title, cut to
/// [`MAX_DERIVED_KEY_LEN`] bytes so that [`username_key`] of it is valid too.
pub fn folder_key(prefix: Option<&str>, title: &str) -> String {
    // The CRD restricts the prefix to key characters; sanitising it again costs nothing and keeps this
    // function total.
    let joined = format!("{}{}", prefix.unwrap_or_default(), sanitize_key(title));
    make_valid(replace_invalid_chars(&joined), MAX_DERIVED_KEY_LEN)
}

/// The key holding a credential's username next to its password key: `<key>.username`.
pub fn username_key(key: &str) -> String {
    format!("{key}{USERNAME_SUFFIX}")
}

/// Keys that occur more than once, each reported once, in sorted order.
pub fn find_collisions<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    counts.into_iter().filter(|(_, count)| *count > 1).map(|(key, _)| key.to_owned()).collect()
}

/// One key produced by several sources (titles, `data` items), for an error that names all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collision {
    pub key: String,
    /// What produced the key, in the order given.
    pub sources: Vec<String>,
}

impl fmt::Display for Collision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {:?} is produced by ", self.key)?;
        for (i, source) in self.sources.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{source:?}")?;
        }
        Ok(())
    }
}

/// Like [`find_collisions`], but over `(key, source)` pairs, keeping every source of a colliding key so the
/// error can name them all (e.g. the titles `a b` and `a_b`).
pub fn find_collisions_with_sources<K, S>(entries: impl IntoIterator<Item = (K, S)>) -> Vec<Collision>
where
    K: Into<String>,
    S: Into<String>,
{
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, source) in entries {
        by_key.entry(key.into()).or_default().push(source.into());
    }
    by_key
        .into_iter()
        .filter(|(_, sources)| sources.len() > 1)
        .map(|(key, sources)| Collision { key, sources })
        .collect()
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

fn replace_invalid_chars(text: &str) -> String {
    // Per character, not per byte: `é` becomes one `_`, not two.
    text.chars().map(|c| if c.is_ascii() && is_key_byte(c as u8) { c } else { '_' }).collect()
}

/// Fixes the two remaining ways a string of key characters can be invalid: empty or dots only, and length.
fn make_valid(mut key: String, max_len: usize) -> String {
    if key.is_empty() {
        key.push('_');
    }
    if key == "." || key == ".." {
        key.insert(0, '_');
    }
    // Only ASCII is left, so any byte index is a character boundary.
    key.truncate(max_len);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys_are_accepted() {
        for key in ["password", "tls.crt", ".dockerconfigjson", "a-b_c.D9", "_", "...", "a..b", &"k".repeat(253)] {
            assert!(is_valid_key(key), "{key}");
        }
    }

    #[test]
    fn invalid_keys_are_rejected() {
        for key in ["", ".", "..", "a b", "a/b", "é", "key\n", "a:b", &"k".repeat(254)] {
            assert!(!is_valid_key(key), "{key:?}");
        }
    }

    #[test]
    fn sanitize_keeps_key_characters() {
        assert_eq!(sanitize_key("db-01.app_user"), "db-01.app_user");
    }

    #[test]
    fn sanitize_replaces_each_other_character_with_underscore() {
        assert_eq!(sanitize_key("DB password (prod)"), "DB_password__prod_");
        assert_eq!(sanitize_key("a/b\\c:d"), "a_b_c_d");
    }

    #[test]
    fn sanitize_replaces_a_multibyte_character_with_one_underscore() {
        assert_eq!(sanitize_key("café"), "caf_");
        assert_eq!(sanitize_key("🔑key"), "_key");
    }

    #[test]
    fn sanitize_of_empty_title_is_underscore() {
        assert_eq!(sanitize_key(""), "_");
    }

    #[test]
    fn sanitize_never_returns_dot_or_dot_dot() {
        assert_eq!(sanitize_key("."), "_.");
        assert_eq!(sanitize_key(".."), "_..");
        assert_eq!(sanitize_key("..."), "...");
    }

    #[test]
    fn sanitize_truncates_to_253_bytes() {
        let key = sanitize_key(&"x".repeat(300));
        assert_eq!(key.len(), 253);
        assert!(is_valid_key(&key));
        assert_eq!(sanitize_key(&"é".repeat(300)).len(), 253);
    }

    #[test]
    fn sanitize_always_returns_a_valid_key() {
        for title in ["", ".", "..", " ", "\u{0}", "a b", "ü", "../etc/passwd", &"ä".repeat(400)] {
            assert!(is_valid_key(&sanitize_key(title)), "{title:?}");
        }
    }

    #[test]
    fn folder_key_prepends_the_prefix() {
        assert_eq!(folder_key(Some("app-"), "DB password"), "app-DB_password");
        assert_eq!(folder_key(None, "DB password"), "DB_password");
        assert_eq!(folder_key(Some(""), "x"), "x");
    }

    #[test]
    fn folder_key_with_dot_prefix_and_dot_title_is_valid() {
        let key = folder_key(Some("."), ".");
        assert_eq!(key, "._.");
        assert!(is_valid_key(&key));
    }

    #[test]
    fn folder_key_replaces_invalid_prefix_characters() {
        assert_eq!(folder_key(Some("a b/"), "c"), "a_b_c");
    }

    #[test]
    fn folder_key_leaves_room_for_the_username_suffix() {
        let key = folder_key(Some("prefix-"), &"t".repeat(256));
        assert_eq!(key.len(), MAX_DERIVED_KEY_LEN);
        assert!(key.starts_with("prefix-t"));
        assert!(is_valid_key(&username_key(&key)));
    }

    #[test]
    fn username_key_appends_username_suffix() {
        assert_eq!(username_key("db"), "db.username");
    }

    #[test]
    fn find_collisions_reports_each_repeated_key_once_sorted() {
        let keys = ["b", "a", "c", "b", "a", "b"];
        assert_eq!(find_collisions(keys), vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn find_collisions_is_empty_for_distinct_keys() {
        assert!(find_collisions(["a", "b", "a.username"]).is_empty());
        assert!(find_collisions(std::iter::empty()).is_empty());
    }

    #[test]
    fn titles_that_sanitise_alike_collide() {
        let keys: Vec<String> = ["a b", "a_b", "a/b"].iter().map(|t| folder_key(None, t)).collect();
        assert_eq!(find_collisions(keys.iter().map(String::as_str)), vec!["a_b".to_owned()]);
    }

    #[test]
    fn a_text_title_can_collide_with_a_credentials_username_key() {
        let password = folder_key(None, "db");
        let keys = [password.clone(), username_key(&password), folder_key(None, "db.username")];
        assert_eq!(find_collisions(keys.iter().map(String::as_str)), vec!["db.username".to_owned()]);
    }

    #[test]
    fn collisions_with_sources_name_every_source() {
        let titles = ["a b", "other", "a_b"];
        let collisions = find_collisions_with_sources(titles.iter().map(|t| (folder_key(None, t), *t)));
        assert_eq!(collisions, vec![Collision { key: "a_b".into(), sources: vec!["a b".into(), "a_b".into()] }]);
        assert_eq!(collisions[0].to_string(), r#"key "a_b" is produced by "a b" and "a_b""#);
    }

    #[test]
    fn collisions_with_sources_is_empty_without_repeats() {
        assert!(find_collisions_with_sources([("a", "x"), ("b", "x")]).is_empty());
    }
}
