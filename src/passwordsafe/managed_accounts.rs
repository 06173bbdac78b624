//! `GET ManagedAccounts`: one account by system and account name, and the paged bulk listing used for cheap
//! change detection.

use reqwest::Method;

use super::client::Client;
use super::error::{Error, ErrorKind, Result};
use super::models::{ManagedAccount, OneOrMany};
use super::transport::Call;

const LIST: &str = "GET ManagedAccounts";

impl Client {
    /// The requestable managed account `account` on system `system`. Domain accounts may be named
    /// `DOMAIN\account` or by UPN, as the guide requires.
    pub async fn find_managed_account(&self, system: &str, account: &str) -> Result<ManagedAccount> {
        let call =
            Call::new(LIST, Method::GET, "ManagedAccounts").query("systemName", system).query("accountName", account);
        let not_found = || {
            Error::new(
                LIST,
                ErrorKind::NotFound(format!(
                    "managed account {system}/{account} (it may not exist, not be enabled for API access, or the user may have no role on it)"
                )),
            )
        };
        let response = match self.send(call).await {
            Err(e) if e.status() == Some(404) => return Err(not_found()),
            other => other?,
        };
        // Documented as one object; some servers answer an array. Filter to exact matches either way, because
        // a server may treat the parameters as filters and answer more than one account.
        let found: Vec<ManagedAccount> = response
            .json::<OneOrMany<ManagedAccount>>()?
            .into_vec()
            .into_iter()
            .filter(|a| names_account(a, system, account))
            .collect();
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(found.into_iter().next().expect("one element")),
            n => Err(Error::new(LIST, ErrorKind::Ambiguous(format!("{n} managed accounts match {system}/{account}")))),
        }
    }

    /// Every managed account the user can request, read page by page (`limit`/`offset`). Carries
    /// LastChangeDate, NextChangeDate, IsChanging and ChangeState for each: one call per page tells which
    /// accounts rotated since we last looked.
    pub async fn list_managed_accounts(&self) -> Result<Vec<ManagedAccount>> {
        self.list_managed_accounts_as(|account| account).await
    }

    /// [`Client::list_managed_accounts`], each account turned into what the caller keeps as its page arrives,
    /// so that a listing of many thousand accounts is never held whole.
    pub async fn list_managed_accounts_as<T>(&self, mut keep: impl FnMut(ManagedAccount) -> T) -> Result<Vec<T>> {
        let limit = self.inner.page_size;
        let mut all = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let call = Call::new(LIST, Method::GET, "ManagedAccounts")
                .query("limit", limit.to_string())
                .query("offset", all.len().to_string());
            let page = self.send(call).await?.json::<OneOrMany<ManagedAccount>>()?.into_vec();
            let full = page.len() as u32 >= limit;
            // A server that ignores `offset` answers the same full page forever: stop instead of looping.
            let new = page.iter().filter(|a| seen.insert((a.system_id, a.account_id))).count();
            if full && new == 0 {
                let offset = all.len();
                return Err(Error::invalid(
                    LIST,
                    format!("page at offset {offset} repeats listed accounts (offset ignored?)"),
                ));
            }
            all.extend(page.into_iter().map(&mut keep));
            if !full {
                return Ok(all);
            }
        }
    }
}

/// Whether a listing record is the account the user named. Names compare case-insensitively (Windows and
/// Password Safe do); a domain account matches `DOMAIN\name`, `name` or its UPN.
fn names_account(a: &ManagedAccount, system: &str, account: &str) -> bool {
    let system_matches = a.system_name.eq_ignore_ascii_case(system)
        || a.domain_name.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(system));
    let qualified = a.domain_name.as_deref().filter(|d| !d.is_empty()).map(|d| format!("{d}\\{}", a.account_name));
    let account_matches = a.account_name.eq_ignore_ascii_case(account)
        || qualified.is_some_and(|q| q.eq_ignore_ascii_case(account))
        || a.user_principal_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(account));
    system_matches && account_matches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(system: &str, name: &str, domain: Option<&str>, upn: Option<&str>) -> ManagedAccount {
        serde_json::from_value(serde_json::json!({
            "SystemId": 1, "SystemName": system, "AccountId": 2, "AccountName": name,
            "DomainName": domain, "UserPrincipalName": upn
        }))
        .unwrap()
    }

    #[test]
    fn accounts_match_by_plain_domain_qualified_and_upn_names() {
        let local = account("db01", "app_user", None, None);
        assert!(names_account(&local, "DB01", "App_User"));
        assert!(!names_account(&local, "db02", "app_user"));
        let domain = account("corp.example", "svc", Some("CORP"), Some("svc@corp.example"));
        assert!(names_account(&domain, "corp.example", "CORP\\svc"));
        assert!(names_account(&domain, "corp.example", "svc@corp.example"));
        assert!(!names_account(&domain, "corp.example", "other"));
    }
}
