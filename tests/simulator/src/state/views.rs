//! Read-only API views of managed accounts and aliases.

use http::StatusCode;
use jiff::Timestamp;

use super::{State, same_name};
use crate::clock::WireDate;
use crate::input::Query;
use crate::reply::{Answer, Reply};
use crate::wire;

/// The node every account prefers (the simulator is a single node).
pub(crate) const NODE_ID: &str = "6b6b5b2e-9a38-4f7c-b8a3-5a1d3c1e2f00";

/// Listings default to and are capped at this many records, like the server's default `limit`.
const DEFAULT_LIMIT: usize = 1000;

/// Account types of `GET ManagedAccounts?type=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountType {
    System,
    Recent,
    DomainLinked,
    Other,
}

impl AccountType {
    fn parse(text: &str) -> Result<AccountType, Reply> {
        match text.to_ascii_lowercase().as_str() {
            "system" => Ok(AccountType::System),
            "recent" => Ok(AccountType::Recent),
            "domainlinked" => Ok(AccountType::DomainLinked),
            "database" | "cloud" | "application" => Ok(AccountType::Other),
            _ => Err(Reply::bad_request(&format!("The value '{text}' is not valid for type."))),
        }
    }
}

/// Filters of a `GET ManagedAccounts` listing.
struct AccountFilter {
    system: Option<SystemFilter>,
    account_name: Option<String>,
    account_type: Option<AccountType>,
}

enum SystemFilter {
    Name(String),
    Id(i64),
}

impl AccountFilter {
    fn from_query(query: &Query) -> Result<AccountFilter, Reply> {
        let system = match (query.get("systemName"), query.number::<i64>("systemID")?) {
            (Some(name), _) if !name.is_empty() => Some(SystemFilter::Name(name.to_string())),
            (_, Some(id)) => Some(SystemFilter::Id(id)),
            _ => None,
        };
        Ok(AccountFilter {
            system,
            account_name: query.get("accountName").filter(|n| !n.is_empty()).map(str::to_string),
            account_type: query.get("type").filter(|t| !t.is_empty()).map(AccountType::parse).transpose()?,
        })
    }
}

/// `limit` and `offset` of a listing; a limit below 1 is a 400 like on the server.
pub(crate) fn paging(query: &Query, limit_name: &str, offset_name: &str) -> Result<(usize, usize), Reply> {
    let limit = query.number::<usize>(limit_name)?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 {
        return Err(Reply::bad_request(&format!("{limit_name} must be greater than 0.")));
    }
    let offset = query.number::<usize>(offset_name)?.unwrap_or(0);
    Ok((limit, offset))
}

impl State {
    /// `GET ManagedAccounts`: one object when a system and an account name are given, otherwise a page of
    /// the accounts `user` may request, ordered by account id.
    pub fn managed_accounts(&self, user: usize, query: &Query, now: Timestamp) -> Answer {
        let filter = AccountFilter::from_query(query)?;
        let (limit, offset) = paging(query, "limit", "offset")?;
        if filter.system.is_some() && filter.account_name.is_some() {
            return self.single_managed_account(user, &filter, now);
        }
        let records: Vec<wire::ManagedAccount<'_>> = (0..self.accounts.len())
            .filter(|index| self.account_passes(*index, user, &filter))
            .skip(offset)
            .take(limit)
            .map(|index| self.managed_account_record(index, now))
            .collect();
        Ok(Reply::json(StatusCode::OK, &records))
    }

    fn single_managed_account(&self, user: usize, filter: &AccountFilter, now: Timestamp) -> Answer {
        // The name index answers the common `systemName` + plain `accountName` lookup without a scan; domain
        // forms (`DOMAIN\name`, UPN) and `systemID` fall back to scanning.
        let direct = match (&filter.system, &filter.account_name) {
            (Some(SystemFilter::Name(system)), Some(account)) => self.find_account(system, account),
            _ => None,
        };
        let found = direct
            .filter(|index| self.account_passes(*index, user, filter))
            .or_else(|| (0..self.accounts.len()).find(|index| self.account_passes(*index, user, filter)));
        let index = found.ok_or_else(|| Reply::not_found("Managed Account not found"))?;
        let record = self.managed_account_record(index, now);
        if self.compat.single_account_as_array {
            Ok(Reply::json(StatusCode::OK, &[record]))
        } else {
            Ok(Reply::json(StatusCode::OK, &record))
        }
    }

    fn account_passes(&self, index: usize, user: usize, filter: &AccountFilter) -> bool {
        let account = &self.accounts[index];
        let system = &self.systems[account.system];
        let system_ok = match &filter.system {
            None => true,
            Some(SystemFilter::Name(name)) => same_name(&system.name, name),
            Some(SystemFilter::Id(id)) => system.id == *id,
        };
        let name_ok = filter.account_name.as_deref().is_none_or(|name| account_name_matches(account, system, name));
        let type_ok = match filter.account_type {
            None | Some(AccountType::Recent) => true,
            Some(AccountType::System) => system.domain_name.is_none(),
            Some(AccountType::DomainLinked) => system.domain_name.is_some(),
            Some(AccountType::Other) => false,
        };
        system_ok && name_ok && type_ok && account.visible_to(user)
    }

    pub(crate) fn managed_account_record(&self, index: usize, now: Timestamp) -> wire::ManagedAccount<'_> {
        let account = &self.accounts[index];
        let system = &self.systems[account.system];
        let (change_state, is_changing) = account.change_state(now);
        wire::ManagedAccount {
            platform_id: system.platform_id,
            system_id: system.id,
            system_name: &system.name,
            domain_name: system.domain_name.as_deref(),
            account_id: account.id,
            account_name: &account.name,
            instance_name: "",
            user_principal_name: None,
            application_id: None,
            application_display_name: None,
            default_release_duration: account.default_release,
            maximum_release_duration: account.max_release,
            last_change_date: WireDate(account.last_change),
            next_change_date: account.next_change.map(WireDate),
            is_changing,
            change_state,
            is_isa_access: account.isa_access,
            preferred_node_id: NODE_ID,
        }
    }

    /// `GET Aliases` (by `state`, default 1 and 2) or `GET Aliases?name=` (one object or 404).
    pub fn list_aliases(&self, user: usize, query: &Query, now: Timestamp) -> Answer {
        if let Some(name) = query.get("name").filter(|n| !n.is_empty()) {
            let alias = self.aliases.iter().position(|a| same_name(&a.name, name));
            return self.single_alias(user, alias, now);
        }
        let states = alias_states(query)?;
        let records: Vec<_> = (0..self.aliases.len())
            .filter(|index| states.contains(&self.aliases[*index].state))
            .filter(|index| self.accounts[self.aliases[*index].account].visible_to(user))
            .map(|index| self.alias_record(index, now))
            .collect();
        Ok(Reply::json(StatusCode::OK, &records))
    }

    /// `GET Aliases/{id}`.
    pub fn alias_by_id(&self, user: usize, id: &str, now: Timestamp) -> Answer {
        let id = parse_id(id, "id")?;
        let alias = self.aliases.iter().position(|a| a.id == id);
        self.single_alias(user, alias, now)
    }

    fn single_alias(&self, user: usize, alias: Option<usize>, now: Timestamp) -> Answer {
        let index = alias
            .filter(|index| self.accounts[self.aliases[*index].account].visible_to(user))
            .ok_or_else(|| Reply::not_found("Alias not found"))?;
        Ok(Reply::json(StatusCode::OK, &self.alias_record(index, now)))
    }

    fn alias_record(&self, index: usize, now: Timestamp) -> wire::Alias<'_> {
        let alias = &self.aliases[index];
        let account = &self.accounts[alias.account];
        let system = &self.systems[account.system];
        let (change_state, is_changing) = account.change_state(now);
        // An unmapped alias (state 0) keeps its account for display but maps nothing.
        let mapped_accounts = if alias.state == 0 {
            Vec::new()
        } else {
            vec![wire::MappedAccount {
                alias_id: alias.id,
                managed_system_id: system.id,
                managed_account_id: account.id,
                status: "Preferred",
            }]
        };
        wire::Alias {
            alias_id: alias.id,
            alias_name: &alias.name,
            alias_state: alias.state,
            system_id: system.id,
            system_name: &system.name,
            account_id: account.id,
            account_name: &account.name,
            domain_name: system.domain_name.as_deref(),
            instance_name: "",
            default_release_duration: account.default_release,
            maximum_release_duration: account.max_release,
            last_change_date: WireDate(account.last_change),
            next_change_date: account.next_change.map(WireDate),
            is_changing,
            change_state,
            mapped_accounts,
        }
    }
}

/// `accountName` matches the account name, or `DOMAIN\name` / `name@domain` for domain accounts.
fn account_name_matches(account: &super::Account, system: &super::System, wanted: &str) -> bool {
    if same_name(&account.name, wanted) {
        return true;
    }
    let Some(domain) = system.domain_name.as_deref() else {
        return false;
    };
    let as_down_level =
        wanted.split_once('\\').is_some_and(|(d, n)| same_name(d, domain) && same_name(n, &account.name));
    let as_upn = wanted.rsplit_once('@').is_some_and(|(n, d)| same_name(d, domain) && same_name(n, &account.name));
    as_down_level || as_upn
}

/// `state=1,2` (default 1 and 2).
fn alias_states(query: &Query) -> Result<Vec<u8>, Reply> {
    let Some(text) = query.get("state").filter(|s| !s.trim().is_empty()) else {
        return Ok(vec![1, 2]);
    };
    text.split(',')
        .map(|part| match part.trim() {
            "0" => Ok(0),
            "1" => Ok(1),
            "2" => Ok(2),
            other => Err(Reply::bad_request(&format!("The value '{other}' is not valid for state."))),
        })
        .collect()
}

/// A numeric id from the path; anything else is a 400 like ASP.NET's model binding gives.
pub(crate) fn parse_id(text: &str, name: &str) -> Result<i64, Reply> {
    text.trim().parse().map_err(|_| Reply::bad_request(&format!("The value '{text}' is not valid for {name}.")))
}
