//! Secrets Safe: folders, secrets and file downloads.

use anyhow::{Context, ensure};
use http::StatusCode;
use jiff::Timestamp;

use super::build::normalize_folder_path;
use super::views::paging;
use super::{Secret, State, same_name};
use crate::clock::{WireDate, parse_date};
use crate::handle::SecretUpdate;
use crate::input::Query;
use crate::reply::{Answer, Reply};
use crate::router::ApiVersion;
use crate::seed::SecretKind;
use crate::wire;

/// Every secret and folder is owned by this (simulated) administrator.
const OWNER_ID: i64 = 1;
const OWNER: &str = "ps-admin";

/// Which members a secret record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecretView {
    /// Listings and `GET Secrets/{id}`: username and password (the text, for text secrets) plus file name
    /// and hash, each null where it does not apply.
    Full,
    /// `GET Secrets/{id}/text`.
    Text,
    /// `GET Secrets/{id}/file`.
    File,
}

/// SHA-256 of a file's content in lower-case hex, the `FileHash` of file secrets.
pub(crate) fn file_hash(content: &[u8]) -> String {
    use std::fmt::Write;
    let digest = ring::digest::digest(&ring::digest::SHA256, content);
    digest.as_ref().iter().fold(String::with_capacity(64), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

impl State {
    /// `GET Secrets-Safe/Secrets?Path=&Separator=&Title=&AfterDate=&Limit=&Offset=`. `Path` is the folder
    /// path and must match a folder exactly (sub-folders are not included).
    pub fn list_secrets(&self, query: &Query, version: ApiVersion) -> Answer {
        let folder = match query.get("Path").filter(|p| !p.trim().is_empty()) {
            Some(path) => match self.folder_for_path(path, query.get("Separator")) {
                Some(folder) => Some(folder),
                None => return Ok(self.secrets_page(Vec::new(), 0, version)),
            },
            None => None,
        };
        let title = query.get("Title").filter(|t| !t.is_empty());
        let after = match query.get("AfterDate").filter(|d| !d.trim().is_empty()) {
            Some(text) => Some(
                parse_date(text)
                    .map_err(|_| Reply::bad_request("AfterDate must be in the UTC format yyyy-MM-ddTHH:mm:ssZ."))?,
            ),
            None => None,
        };
        let (limit, offset) = paging(query, "Limit", "Offset")?;
        let matching: Vec<&Secret> = self
            .secrets
            .iter()
            .filter(|s| folder.is_none_or(|f| s.folder == f))
            .filter(|s| title.is_none_or(|t| same_name(&s.title, t)))
            .filter(|s| after.is_none_or(|a| s.created >= a || s.modified >= a))
            .collect();
        let total = matching.len();
        let records =
            matching.into_iter().skip(offset).take(limit).map(|s| self.secret_record(s, SecretView::Full)).collect();
        Ok(self.secrets_page(records, total, version))
    }

    /// A bare array on v3.0/v3.1, `{"TotalCount", "Data"}` on v3.2 or with `compat.pagedSecrets`.
    fn secrets_page(&self, records: Vec<wire::Secret<'_>>, total: usize, version: ApiVersion) -> Reply {
        if version >= ApiVersion::V3_2 || self.compat.paged_secrets {
            Reply::json(StatusCode::OK, &wire::Page { total_count: total, data: records })
        } else {
            Reply::json(StatusCode::OK, &records)
        }
    }

    fn folder_for_path(&self, path: &str, separator: Option<&str>) -> Option<usize> {
        let separator = separator.filter(|s| !s.is_empty()).unwrap_or("/");
        let levels: Vec<&str> = path.split(separator).map(str::trim).filter(|l| !l.is_empty()).collect();
        self.folder_by_path.get(&levels.join("/").to_lowercase()).copied()
    }

    /// `GET Secrets-Safe/Secrets/{id}`: one object (the guide draws brackets around it, but the server and
    /// its clients treat it as a single record).
    pub fn secret_by_id(&self, id: &str) -> Answer {
        let secret = self.secret(id)?;
        Ok(Reply::json(StatusCode::OK, &self.secret_record(secret, SecretView::Full)))
    }

    /// `GET Secrets-Safe/Secrets/{id}/text`: an array holding one record with `Text`, as the guide shows.
    pub fn secret_text(&self, id: &str) -> Answer {
        let secret = self.secret_of_kind(id, SecretKind::Text)?;
        Ok(Reply::json(StatusCode::OK, &[self.secret_record(secret, SecretView::Text)]))
    }

    /// `GET Secrets-Safe/Secrets/{id}/file`: the file's metadata as one object.
    pub fn secret_file(&self, id: &str) -> Answer {
        let secret = self.secret_of_kind(id, SecretKind::File)?;
        Ok(Reply::json(StatusCode::OK, &self.secret_record(secret, SecretView::File)))
    }

    /// `GET Secrets-Safe/Secrets/{id}/file/download`: the exact bytes as an attachment.
    pub fn secret_download(&self, id: &str) -> Answer {
        let secret = self.secret_of_kind(id, SecretKind::File)?;
        let file_name = secret.file_name.as_deref().unwrap_or("secret.bin");
        // Quotes and control characters would break the header; the name is seed data, so just drop them.
        let safe_name: String = file_name.chars().filter(|c| *c != '"' && !c.is_control()).collect();
        Ok(Reply::binary("application/octet-stream", secret.content.clone())
            .with_header(http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe_name}\"")))
    }

    fn secret(&self, id: &str) -> Result<&Secret, Reply> {
        let id: uuid::Uuid = id
            .trim()
            .parse()
            .map_err(|_| Reply::bad_request(&format!("The value '{id}' is not a valid secret id (GUID).")))?;
        self.secret_by_id
            .get(&id)
            .map(|index| &self.secrets[*index])
            .ok_or_else(|| Reply::not_found("Secret not found"))
    }

    /// A secret that must be of `kind`: asking a credential secret for its text (or file) is a 400, the
    /// secret exists but the question does not apply to it.
    fn secret_of_kind(&self, id: &str, kind: SecretKind) -> Result<&Secret, Reply> {
        let secret = self.secret(id)?;
        if secret.kind != kind {
            return Err(Reply::bad_request(&format!(
                "Secret {} is a {} secret, not a {} secret.",
                secret.id,
                type_name(secret.kind),
                type_name(kind)
            )));
        }
        Ok(secret)
    }

    fn secret_record<'a>(&'a self, secret: &'a Secret, view: SecretView) -> wire::Secret<'a> {
        let folder = &self.folders[secret.folder];
        let is_file = secret.kind == SecretKind::File;
        let full = view == SecretView::Full;
        let with_file = full || view == SecretView::File;
        // Text secrets carry their text in `Password` as well: real servers do, and BeyondTrust's own Go
        // library reads text secrets from there.
        let password = secret.password.as_deref().or(secret.text.as_deref());
        wire::Secret {
            id: secret.id,
            title: &secret.title,
            description: secret.description.as_deref(),
            username: full.then_some(secret.username.as_deref()),
            password: full.then_some(password),
            text: (view == SecretView::Text).then_some(secret.text.as_deref()),
            owner_id: OWNER_ID,
            folder_id: folder.id,
            created_on: WireDate(secret.created),
            created_by: OWNER,
            modified_on: WireDate(secret.modified),
            modified_by: OWNER,
            owner: OWNER,
            folder: &folder.name,
            folder_path: &folder.path,
            owners: [wire::SecretOwner { owner_id: OWNER_ID, owner: OWNER, email: None }],
            owner_type: "User",
            notes: secret.notes.as_deref(),
            urls: [],
            secret_type: type_name(secret.kind),
            file_name: with_file.then_some(secret.file_name.as_deref().filter(|_| is_file)),
            file_hash: with_file.then(|| is_file.then(|| secret.file_hash.clone())),
        }
    }

    /// `GET Secrets-Safe/Folders?FolderName=&FolderPath=&IncludeSubfolders=&RootOnly=&Limit=&Offset=`.
    pub fn list_folders(&self, query: &Query) -> Answer {
        let name = query.get("FolderName").filter(|n| !n.is_empty()).map(str::to_lowercase);
        let include_subfolders = query.boolean("IncludeSubfolders")?.unwrap_or(true);
        let root_only = query.boolean("RootOnly")?.unwrap_or(false);
        let (limit, offset) = paging(query, "Limit", "Offset")?;
        let base = match query.get("FolderPath").filter(|p| !p.trim().is_empty()) {
            Some(path) => match self.folder_for_path(path, None) {
                Some(folder) => Some(self.folders[folder].path.to_lowercase()),
                None => return Ok(Reply::json(StatusCode::OK, &[(); 0])),
            },
            None => None,
        };
        let mut folders: Vec<&super::Folder> = self
            .folders
            .iter()
            .filter(|f| name.as_deref().is_none_or(|n| f.name.to_lowercase().contains(n)))
            .filter(|f| !root_only || f.parent.is_none())
            .filter(|f| base.as_deref().is_none_or(|b| under_path(&f.path.to_lowercase(), b, include_subfolders)))
            .collect();
        folders.sort_by_key(|f| f.path.to_lowercase());
        let records: Vec<_> = folders
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|f| wire::Folder {
                id: f.id,
                name: &f.name,
                description: f.description.as_deref(),
                parent_id: f.parent.map(|p| self.folders[p].id),
                user_group_id: None,
            })
            .collect();
        Ok(Reply::json(StatusCode::OK, &records))
    }

    /// Changes a secret in place and bumps its `ModifiedOn` (admin API / `Handle::update_secret`).
    pub fn update_secret(&mut self, folder_path: &str, title: &str, update: SecretUpdate) -> anyhow::Result<()> {
        let now = self.tick();
        let path = normalize_folder_path(folder_path)?;
        let folder = *self.folder_by_path.get(&path.to_lowercase()).with_context(|| format!("no folder {path:?}"))?;
        let secret = self
            .secrets
            .iter_mut()
            .find(|s| s.folder == folder && same_name(&s.title, title))
            .with_context(|| format!("no secret {title:?} in folder {path:?}"))?;
        apply_update(secret, update, now)
    }
}

fn apply_update(secret: &mut Secret, update: SecretUpdate, now: Timestamp) -> anyhow::Result<()> {
    let kind = secret.kind;
    let fits = |wanted: SecretKind, present: bool, field: &str| {
        ensure!(
            !present || kind == wanted,
            "{field} only applies to {} secrets; {:?} is a {} secret",
            type_name(wanted),
            secret.title,
            type_name(kind)
        );
        Ok(())
    };
    fits(SecretKind::Credential, update.username.is_some() || update.password.is_some(), "username/password")?;
    fits(SecretKind::Text, update.text.is_some(), "text")?;
    fits(SecretKind::File, update.file.is_some(), "file")?;
    if let Some(username) = update.username {
        secret.username = Some(username);
    }
    if let Some(password) = update.password {
        secret.password = Some(password);
    }
    if let Some(text) = update.text {
        secret.text = Some(text);
    }
    if let Some(file) = update.file {
        secret.file_hash = file_hash(&file);
        secret.content = bytes::Bytes::from(file);
    }
    if let Some(notes) = update.notes {
        secret.notes = Some(notes);
    }
    secret.modified = now;
    Ok(())
}

/// Whether `path` is `base` or (with sub-folders) below it. Both are lower-case.
fn under_path(path: &str, base: &str, include_subfolders: bool) -> bool {
    path == base || (include_subfolders && path.strip_prefix(base).is_some_and(|rest| rest.starts_with('/')))
}

fn type_name(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Credential => "CREDENTIAL",
        SecretKind::Text => "TEXT",
        SecretKind::File => "FILE",
    }
}
