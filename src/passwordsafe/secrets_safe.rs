//! Secrets Safe: one secret by folder path and title, every secret of a folder, and a content-free listing
//! for change detection (ModifiedOn).
//!
//! Assumption (the guide says only "Path: the full path to the secret"): `Path` is the *folder* path and
//! `Title` the secret's title, as BeyondTrust's own Go client and External Secrets use them. A server may
//! return secrets of sub-folders too, so results are filtered to the exact folder.

use jiff::Timestamp;
use reqwest::Method;

use super::client::Client;
use super::error::{Error, ErrorKind, Result};
use super::models::{OneOrMany, SecretRecord, SecretTextRecord, SecretType};
use super::secret::{SecretBytes, SecretString};
use super::transport::Call;

const LIST: &str = "GET Secrets-Safe/Secrets";

/// A folder path such as `prod/db`, with the separator it is written with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FolderPath {
    pub path: String,
    pub separator: String,
}

impl FolderPath {
    pub fn new(path: impl Into<String>) -> Self {
        Self { path: path.into(), separator: "/".into() }
    }

    pub fn with_separator(path: impl Into<String>, separator: impl Into<String>) -> Self {
        Self { path: path.into(), separator: separator.into() }
    }

    fn segments(&self) -> Vec<String> {
        split_path(&self.path, &self.separator)
    }

    /// The folder as `a/b/c` in lower case, whatever its separator: equal to [`SecretSummary::folder_key`]
    /// of the secrets it holds.
    pub fn key(&self) -> String {
        self.segments().join("/")
    }
}

impl std::fmt::Display for FolderPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

fn split_path(path: &str, separator: &str) -> Vec<String> {
    let separator = if separator.is_empty() { "/" } else { separator };
    path.split(separator).map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase).collect()
}

/// A secret's identity and dates, without its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSummary {
    pub id: String,
    pub title: String,
    pub folder_path: String,
    pub kind: SecretType,
    pub description: Option<String>,
    pub file_name: Option<String>,
    pub created_on: Option<Timestamp>,
    pub modified_on: Option<Timestamp>,
}

/// A secret with its content.
#[derive(Clone, Debug)]
pub struct SecretsSafeSecret {
    pub summary: SecretSummary,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub text: Option<SecretString>,
    pub file: Option<SecretBytes>,
    pub notes: Option<SecretString>,
}

impl SecretSummary {
    /// The secret's folder as `a/b/c` in lower case (servers write `FolderPath` with `/` or `\`); empty
    /// when the server gave no folder path.
    pub fn folder_key(&self) -> String {
        self.folder_path
            .split(['/', '\\'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl From<&SecretRecord> for SecretSummary {
    fn from(r: &SecretRecord) -> Self {
        Self {
            id: r.id.clone(),
            title: r.title.clone(),
            folder_path: r.folder_path.clone().or_else(|| r.folder.clone()).unwrap_or_default(),
            kind: r.kind(),
            description: r.description.clone(),
            file_name: r.file_name.clone(),
            created_on: r.created_on,
            modified_on: r.modified_on,
        }
    }
}

impl Client {
    /// The secret titled `title` in `folder`, with its content.
    pub async fn secret(&self, folder: &FolderPath, title: &str) -> Result<SecretsSafeSecret> {
        let matches: Vec<SecretRecord> = self
            .secret_records(folder, Some(title))
            .await?
            .into_iter()
            .filter(|r| r.title.eq_ignore_ascii_case(title))
            .collect();
        match matches.as_slice() {
            [] => Err(Error::new(
                LIST,
                ErrorKind::NotFound(format!("no secret titled {title:?} in Secrets Safe folder {folder}")),
            )),
            [record] => self.with_content(record).await,
            _ => Err(Error::new(
                LIST,
                ErrorKind::Ambiguous(format!("{} secrets titled {title:?} in folder {folder}", matches.len())),
            )),
        }
    }

    /// Every secret of `folder` (not of its sub-folders), with content.
    pub async fn folder_secrets(&self, folder: &FolderPath) -> Result<Vec<SecretsSafeSecret>> {
        let records = self.secret_records(folder, None).await?;
        let mut secrets = Vec::with_capacity(records.len());
        for record in &records {
            secrets.push(self.with_content(record).await?);
        }
        Ok(secrets)
    }

    /// The secrets of `folder` without content: one listing call per page, for change detection.
    pub async fn list_secrets(&self, folder: &FolderPath) -> Result<Vec<SecretSummary>> {
        Ok(self.secret_records(folder, None).await?.iter().map(SecretSummary::from).collect())
    }

    /// Every secret the user can read, of every folder, without content: one listing call per page. Change
    /// detection uses it instead of one listing per folder when that takes fewer calls.
    pub async fn list_all_secrets(&self) -> Result<Vec<SecretSummary>> {
        let limit = self.inner.page_size;
        let mut summaries: Vec<SecretSummary> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let offset = summaries.len();
            let call = Call::new(LIST, Method::GET, "Secrets-Safe/Secrets")
                .query("Limit", limit.to_string())
                .query("Offset", offset.to_string());
            let (page, total) = self.send(call).await?.json::<super::models::SecretList>()?.into_parts();
            let received = page.len();
            if page.iter().filter(|r| seen.insert(r.id.clone())).count() == 0 && received > 0 {
                return Err(Error::invalid(
                    LIST,
                    format!("page at offset {offset} repeats listed secrets (Offset ignored?)"),
                ));
            }
            summaries.extend(page.iter().map(SecretSummary::from));
            let more = match total {
                Some(total) => (summaries.len() as u64) < total && received > 0,
                None => received as u32 >= limit,
            };
            if !more {
                return Ok(summaries);
            }
        }
    }

    /// Page size of the bulk listings.
    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    async fn secret_records(&self, folder: &FolderPath, title: Option<&str>) -> Result<Vec<SecretRecord>> {
        let limit = self.inner.page_size;
        let wanted = folder.segments();
        let mut records = Vec::new();
        let mut offset = 0usize;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut call = Call::new(LIST, Method::GET, "Secrets-Safe/Secrets")
                .query("Path", folder.path.clone())
                .query("Separator", folder.separator.clone())
                .query("Limit", limit.to_string())
                .query("Offset", offset.to_string());
            if let Some(title) = title {
                call = call.query("Title", title);
            }
            let (page, total) = self.send(call).await?.json::<super::models::SecretList>()?.into_parts();
            let received = page.len();
            // A server that ignores `Offset` answers the same page forever: stop instead of looping.
            let new = page.iter().filter(|r| seen.insert(r.id.clone())).count();
            if received > 0 && new == 0 {
                return Err(Error::invalid(
                    LIST,
                    format!("page at offset {offset} repeats listed secrets (Offset ignored?)"),
                ));
            }
            offset += received;
            records.extend(page.into_iter().filter(|r| in_folder(r, &wanted)));
            let more = match total {
                Some(total) => (offset as u64) < total && received > 0,
                None => received as u32 >= limit,
            };
            if !more {
                return Ok(records);
            }
        }
    }

    async fn with_content(&self, record: &SecretRecord) -> Result<SecretsSafeSecret> {
        let summary = SecretSummary::from(record);
        let mut secret = SecretsSafeSecret {
            username: record.username.clone(),
            password: None,
            text: None,
            file: None,
            notes: record.notes.clone().map(SecretString::from),
            summary,
        };
        match secret.summary.kind {
            SecretType::Credential => {
                secret.password = match &record.password {
                    Some(p) => Some(SecretString::from(p.as_str())),
                    // Listings of some versions leave the password out; the single-secret call has it.
                    None => self.secret_by_id(&record.id).await?.password.map(SecretString::from),
                };
            }
            SecretType::Text => secret.text = Some(self.secret_text(&record.id).await?),
            SecretType::File => secret.file = Some(self.secret_file(&record.id).await?),
        }
        Ok(secret)
    }

    async fn secret_by_id(&self, id: &str) -> Result<SecretRecord> {
        const EP: &str = "GET Secrets-Safe/Secrets/{id}";
        let call = Call::new(EP, Method::GET, format!("Secrets-Safe/Secrets/{}", path_segment(id)));
        self.send(call)
            .await?
            .json::<OneOrMany<SecretRecord>>()?
            .into_vec()
            .into_iter()
            .next()
            .ok_or_else(|| Error::invalid(EP, "empty answer"))
    }

    async fn secret_text(&self, id: &str) -> Result<SecretString> {
        const EP: &str = "GET Secrets-Safe/Secrets/text";
        let call = Call::new(EP, Method::GET, format!("Secrets-Safe/Secrets/{}/text", path_segment(id)));
        let record = self.send(call).await?.json::<OneOrMany<SecretTextRecord>>()?.into_vec().into_iter().next();
        record.and_then(|r| r.text).map(SecretString::from).ok_or_else(|| Error::invalid(EP, "the answer has no Text"))
    }

    /// The file's exact bytes (`application/octet-stream`), bounded by the client's response size cap.
    async fn secret_file(&self, id: &str) -> Result<SecretBytes> {
        let call = Call::new(
            "GET Secrets-Safe/Secrets/file/download",
            Method::GET,
            format!("Secrets-Safe/Secrets/{}/file/download", path_segment(id)),
        );
        let response = self.send(call).await?;
        Ok(response.body.clone())
    }
}

fn in_folder(record: &SecretRecord, wanted: &[String]) -> bool {
    match record.folder_path.as_deref().or(record.folder.as_deref()) {
        // Servers write FolderPath with '/' or '\'; compare segment by segment.
        Some(path) => path
            .split(['/', '\\'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
            .eq(wanted.iter().cloned()),
        // No folder in the record: trust the server's Path filter.
        None => true,
    }
}

/// Secret IDs are GUIDs; anything else is percent-encoded so it cannot change the path.
fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_paths_compare_by_segment_case_insensitively() {
        let record =
            |p: &str| serde_json::from_value::<SecretRecord>(serde_json::json!({"Id": "1", "FolderPath": p})).unwrap();
        let wanted = FolderPath::new("Prod/DB").segments();
        assert!(in_folder(&record("prod/db"), &wanted));
        assert!(in_folder(&record("prod\\db"), &wanted));
        assert!(!in_folder(&record("prod/db/sub"), &wanted));
        assert!(!in_folder(&record("prod"), &wanted));
        assert_eq!(FolderPath::with_separator("a|b", "|").segments(), vec!["a", "b"]);
    }

    #[test]
    fn folder_keys_of_paths_and_listed_secrets_agree() {
        let summary = |p: &str| {
            SecretSummary::from(
                &serde_json::from_value::<SecretRecord>(serde_json::json!({"Id": "1", "FolderPath": p})).unwrap(),
            )
        };
        assert_eq!(FolderPath::new("Prod/DB").key(), "prod/db");
        assert_eq!(FolderPath::with_separator("Prod|DB", "|").key(), "prod/db");
        assert_eq!(summary("prod\\db").folder_key(), "prod/db");
        assert_eq!(summary(" prod/db/ ").folder_key(), "prod/db");
        assert_eq!(summary("").folder_key(), "");
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(path_segment("../x?y"), "..%2Fx%3Fy");
    }
}
