//! Release requests, credentials, ISA releases and alias requests.

use http::StatusCode;
use jiff::Timestamp;

use super::build::MAX_DURATION_MINUTES;
use super::views::parse_id;
use super::{EventKind, IsaRelease, Request, State, plus_mins};
use crate::clock::WireDate;
use crate::input::{JsonBody, Query};
use crate::reply::{Answer, Reply, SubCode};
use crate::wire;

/// `AccessType` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessType {
    View,
    Rdp,
    Ssh,
    App,
}

impl AccessType {
    fn parse(text: &str) -> Result<AccessType, Reply> {
        match text.trim().to_ascii_lowercase().as_str() {
            "view" => Ok(AccessType::View),
            "rdp" => Ok(AccessType::Rdp),
            "ssh" => Ok(AccessType::Ssh),
            "app" => Ok(AccessType::App),
            _ => Err(Reply::bad_request(&format!("AccessType '{text}' is not valid (View, RDP, SSH, App)."))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccessType::View => "View",
            AccessType::Rdp => "RDP",
            AccessType::Ssh => "SSH",
            AccessType::App => "App",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConflictOption {
    /// 409 when the user already has an open request for the account.
    Fail,
    Reuse,
    Renew,
}

/// What `type=` asks `GET Credentials` (and friends) for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CredentialType {
    Password,
    DssKey,
    Passphrase,
}

impl CredentialType {
    fn from_query(query: &Query) -> Result<CredentialType, Reply> {
        match query.get("type").map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("password") => Ok(CredentialType::Password),
            Some("dsskey") => Ok(CredentialType::DssKey),
            Some("passphrase") => Ok(CredentialType::Passphrase),
            Some(other) => {
                Err(Reply::bad_request(&format!("type '{other}' is not valid (password, dsskey, passphrase).")))
            }
        }
    }
}

/// The body of `POST Requests` / `POST Aliases/{id}/Requests` without the account reference.
struct NewRequest {
    access_type: AccessType,
    duration_minutes: u32,
    reason: Option<String>,
    conflict: ConflictOption,
    rotate_on_checkin: bool,
}

impl NewRequest {
    fn from_body(body: &JsonBody) -> Result<NewRequest, Reply> {
        let access_type = match body.string("AccessType")? {
            Some(text) => AccessType::parse(&text)?,
            None => AccessType::View,
        };
        if access_type == AccessType::App && body.integer("ApplicationID")?.is_none() {
            return Err(Reply::bad_request("ApplicationID is required when AccessType is App."));
        }
        let conflict = match body.string("ConflictOption")?.map(|c| c.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => ConflictOption::Fail,
            Some("reuse") => ConflictOption::Reuse,
            Some("renew") => ConflictOption::Renew,
            Some(other) => {
                return Err(Reply::bad_request(&format!("ConflictOption '{other}' is not valid (reuse, renew).")));
            }
        };
        if body.string("TicketNumber")?.is_some_and(|t| t.chars().count() > 20) {
            return Err(Reply::bad_request("TicketNumber is longer than 20 characters."));
        }
        let duration = body.integer("DurationMinutes")?;
        Ok(NewRequest {
            access_type,
            duration_minutes: required_duration(duration)?,
            reason: body.string("Reason")?,
            conflict,
            rotate_on_checkin: body.boolean("RotateOnCheckin")?.unwrap_or(true),
        })
    }
}

/// `DurationMinutes` must be 1..=525600.
fn required_duration(minutes: Option<i64>) -> Result<u32, Reply> {
    let minutes = minutes.ok_or_else(|| Reply::bad_request("DurationMinutes is required."))?;
    u32::try_from(minutes)
        .ok()
        .filter(|m| (1..=MAX_DURATION_MINUTES).contains(m))
        .ok_or_else(|| Reply::bad_request(&format!("DurationMinutes must be between 1 and {MAX_DURATION_MINUTES}.")))
}

fn required_id(body: &JsonBody, name: &str) -> Result<i64, Reply> {
    body.integer(name)?.ok_or_else(|| Reply::bad_request(&format!("{name} is required.")))
}

/// `Reason` of a check-in is at most 1000 characters.
fn checkin_reason_ok(body: &JsonBody) -> Result<(), Reply> {
    match body.string("Reason")? {
        Some(reason) if reason.chars().count() > 1000 => {
            Err(Reply::bad_request("Reason is longer than 1000 characters."))
        }
        _ => Ok(()),
    }
}

impl State {
    /// `POST Requests`.
    pub fn create_request(&mut self, user: usize, body: &JsonBody, now: Timestamp) -> Answer {
        let system_id = required_id(body, "SystemID")?;
        let account_id = required_id(body, "AccountID")?;
        let new = NewRequest::from_body(body)?;
        let account = self.account_for_ids(system_id, account_id)?;
        if self.accounts[account].isa_access {
            // ISA accounts are released through POST ISARequests; the user holds no requestor role on them.
            return Err(Reply::forbidden(SubCode::NoPermission));
        }
        self.open_request(user, account, None, new, now)
    }

    /// `POST Aliases/{aliasId}/Requests`: like `POST Requests` for the alias's account.
    pub fn create_alias_request(&mut self, user: usize, alias_id: &str, body: &JsonBody, now: Timestamp) -> Answer {
        let alias_id = parse_id(alias_id, "aliasId")?;
        let new = NewRequest::from_body(body)?;
        let alias =
            self.aliases.iter().find(|a| a.id == alias_id).ok_or_else(|| Reply::not_found("Alias not found"))?;
        if alias.state == 0 {
            return Err(Reply::forbidden(SubCode::NoPermission));
        }
        let account = alias.account;
        self.open_request(user, account, Some(alias_id), new, now)
    }

    /// The account `AccountID` names, if it belongs to `SystemID`; otherwise 403 4031 ("the account is not
    /// valid for the system").
    fn account_for_ids(&self, system_id: i64, account_id: i64) -> Result<usize, Reply> {
        self.account_by_id
            .get(&account_id)
            .copied()
            .filter(|index| self.systems[self.accounts[*index].system].id == system_id)
            .ok_or_else(|| Reply::forbidden(SubCode::NoPermission))
    }

    fn open_request(
        &mut self,
        user: usize,
        account: usize,
        alias: Option<i64>,
        new: NewRequest,
        now: Timestamp,
    ) -> Answer {
        self.check_requestable(user, account, new.duration_minutes)?;
        match new.conflict {
            ConflictOption::Reuse => {
                if let Some(id) = self.reusable_request(user, account, new.access_type) {
                    return Ok(self.request_id_reply(StatusCode::OK, id));
                }
            }
            ConflictOption::Renew => self.cancel_user_requests(user, account, now),
            ConflictOption::Fail => {}
        }
        let open = self.open_by_account.get(&account).map(Vec::as_slice).unwrap_or_default();
        let mine = open.iter().any(|id| self.requests.get(id).is_some_and(|r| r.user == user));
        let limit = self.accounts[account].max_concurrent;
        if mine || (limit > 0 && open.len() >= limit as usize) {
            return Err(Reply::conflict());
        }
        let id = self.insert_request(user, account, alias, new, now);
        Ok(self.request_id_reply(StatusCode::CREATED, id))
    }

    /// Permission and policy checks shared by direct and alias requests.
    fn check_requestable(&self, user: usize, account: usize, duration_minutes: u32) -> Result<(), Reply> {
        let acct = &self.accounts[account];
        if !acct.visible_to(user) {
            return Err(Reply::forbidden(SubCode::NoPermission));
        }
        if acct.approver_only {
            return Err(Reply::forbidden(SubCode::ApproverOnly));
        }
        if acct.not_enough_approvers {
            return Err(Reply::forbidden(SubCode::NotEnoughApprovers));
        }
        if duration_minutes > acct.max_release {
            return Err(Reply::bad_request(&format!(
                "DurationMinutes exceeds the account's maximum release duration of {} minutes.",
                acct.max_release
            )));
        }
        Ok(())
    }

    /// An approved request of `user` for `account` with the same access type.
    fn reusable_request(&self, user: usize, account: usize, access_type: AccessType) -> Option<i64> {
        let open = self.open_by_account.get(&account)?;
        open.iter().copied().find(|id| {
            self.requests
                .get(id)
                .is_some_and(|r| r.user == user && r.access_type == access_type && r.approved.is_some())
        })
    }

    /// `renew`: the user's open requests for the account are cancelled. The account stays released to the
    /// same user, so the cancellation does not count as a release ending (no rotation).
    fn cancel_user_requests(&mut self, user: usize, account: usize, now: Timestamp) {
        let mine: Vec<i64> = self
            .open_by_account
            .get(&account)
            .into_iter()
            .flatten()
            .copied()
            .filter(|id| self.requests.get(id).is_some_and(|r| r.user == user))
            .collect();
        for id in mine {
            self.close_request(id, now, false);
        }
    }

    fn insert_request(
        &mut self,
        user: usize,
        account: usize,
        alias: Option<i64>,
        new: NewRequest,
        now: Timestamp,
    ) -> i64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        let expires = plus_mins(now, new.duration_minutes);
        let approved = (!self.accounts[account].requires_approval).then_some(now);
        self.requests.insert(
            id,
            Request {
                id,
                user,
                account,
                alias,
                access_type: new.access_type,
                reason: new.reason,
                created: now,
                approved,
                expires,
                rotate_on_checkin: new.rotate_on_checkin,
            },
        );
        self.open_by_account.entry(account).or_default().push(id);
        self.schedule(expires, EventKind::RequestExpiry(id));
        id
    }

    /// The bare id (`124`) or, with `compat.requestIdAsObject`, `{"RequestID": 124}`.
    fn request_id_reply(&self, status: StatusCode, id: i64) -> Reply {
        if self.compat.request_id_as_object {
            Reply::json(status, &wire::RequestId { request_id: id })
        } else {
            Reply::json(status, &id)
        }
    }

    /// `GET Requests?status=all|active|pending&queue=req|app`.
    pub fn list_requests(&self, user: usize, query: &Query) -> Answer {
        let status = query.get("status").map(|s| s.trim().to_ascii_lowercase());
        let (active, pending) = match status.as_deref() {
            None | Some("") | Some("all") => (true, true),
            Some("active") => (true, false),
            Some("pending") => (false, true),
            Some(other) => {
                return Err(Reply::bad_request(&format!("status '{other}' is not valid (all, active, pending).")));
            }
        };
        match query.get("queue").map(|q| q.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("req") => {}
            // The simulator has no approvers, so the approver queue is always empty.
            Some("app") => return Ok(Reply::json(StatusCode::OK, &[(); 0])),
            Some(other) => return Err(Reply::bad_request(&format!("queue '{other}' is not valid (req, app)."))),
        }
        let mut mine: Vec<&Request> = self
            .requests
            .values()
            .filter(|r| r.user == user && if r.approved.is_some() { active } else { pending })
            .collect();
        mine.sort_by_key(|r| r.id);
        let records: Vec<_> = mine.into_iter().map(|r| self.request_record(r)).collect();
        Ok(Reply::json(StatusCode::OK, &records))
    }

    fn request_record<'a>(&'a self, request: &'a Request) -> wire::RequestRecord<'a> {
        let account = &self.accounts[request.account];
        let system = &self.systems[account.system];
        wire::RequestRecord {
            request_id: request.id,
            system_id: system.id,
            system_name: &system.name,
            account_id: account.id,
            account_name: &account.name,
            domain_name: system.domain_name.as_deref(),
            alias_id: request.alias,
            application_id: None,
            request_release_date: WireDate(request.created),
            approved_date: request.approved.map(WireDate),
            expires_date: WireDate(request.expires),
            status: if request.approved.is_some() { "Active" } else { "Pending" },
            access_type: request.access_type.as_str(),
            reason: request.reason.as_deref(),
        }
    }

    /// `PUT Requests/{id}/Checkin` (and the deprecated `PUT Requests/Release/{id}`).
    pub fn checkin(&mut self, user: usize, id: &str, body: &JsonBody, now: Timestamp) -> Answer {
        let id = parse_id(id, "id")?;
        checkin_reason_ok(body)?;
        self.usable_request(user, id)?;
        self.close_request(id, now, true);
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    }

    /// An open request of `user` that is approved: 404 when unknown, closed or expired, 403 4031 when it is
    /// another user's, 403 4034 while pending.
    fn usable_request(&self, user: usize, id: i64) -> Result<&Request, Reply> {
        let request = self
            .requests
            .get(&id)
            .ok_or_else(|| Reply::not_found("Request not found; it may have been released or have expired."))?;
        if request.user != user {
            return Err(Reply::forbidden(SubCode::NoPermission));
        }
        if request.approved.is_none() {
            return Err(Reply::forbidden(SubCode::NotApproved));
        }
        Ok(request)
    }

    /// `GET Credentials/{requestId}?type=`: the credential as a JSON string.
    pub fn credentials(&self, user: usize, id: &str, query: &Query) -> Answer {
        let id = parse_id(id, "requestId")?;
        let kind = CredentialType::from_query(query)?;
        let request = self.usable_request(user, id)?;
        let value = self.credential_value(request.account, kind)?;
        Ok(Reply::json(StatusCode::OK, value))
    }

    /// The credential `kind` of an account. An account without a DSS key (or passphrase) answers 400: the
    /// request itself exists, it is the question that does not apply to the account.
    fn credential_value(&self, account: usize, kind: CredentialType) -> Result<&str, Reply> {
        let acct = &self.accounts[account];
        match kind {
            CredentialType::Password => Ok(&acct.password),
            CredentialType::DssKey => {
                acct.dss_key.as_deref().ok_or_else(|| Reply::bad_request("The managed account has no DSS key."))
            }
            CredentialType::Passphrase => acct
                .passphrase
                .as_deref()
                .ok_or_else(|| Reply::bad_request("The managed account has no DSS key passphrase.")),
        }
    }

    /// `GET Aliases/{aliasId}/Credentials/{requestId}?type=`.
    pub fn alias_credentials(&self, user: usize, alias_id: &str, request_id: &str, query: &Query) -> Answer {
        let alias_id = parse_id(alias_id, "aliasId")?;
        let request_id = parse_id(request_id, "requestId")?;
        let kind = CredentialType::from_query(query)?;
        let alias =
            self.aliases.iter().find(|a| a.id == alias_id).ok_or_else(|| Reply::not_found("Alias not found"))?;
        let request = self.usable_request(user, request_id)?;
        if request.account != alias.account {
            return Err(Reply::not_found("Request not found for this alias."));
        }
        let value = self.credential_value(request.account, kind)?;
        let account = &self.accounts[alias.account];
        let system = &self.systems[account.system];
        let pick = |wanted: CredentialType| (kind == wanted).then_some(value);
        let record = wire::AliasCredentials {
            alias_id: alias.id,
            alias_name: &alias.name,
            system_id: system.id,
            system_name: &system.name,
            account_id: account.id,
            account_name: &account.name,
            domain_name: system.domain_name.as_deref(),
            password: pick(CredentialType::Password),
            private_key: pick(CredentialType::DssKey),
            passphrase: pick(CredentialType::Passphrase),
        };
        Ok(Reply::json(StatusCode::OK, &record))
    }

    /// `POST ISARequests` / `POST ISARRequests`: releases the credential at once (201 with it as a JSON
    /// string, like `GET Credentials`) and records an ISA release that expires on its own.
    pub fn isa_request(&mut self, user: usize, query: &Query, body: &JsonBody, now: Timestamp) -> Answer {
        let kind = CredentialType::from_query(query)?;
        let system_id = required_id(body, "SystemID")?;
        let account_id = required_id(body, "AccountID")?;
        let duration = body.integer("DurationMinutes")?.map(|m| required_duration(Some(m))).transpose()?;
        let account = self.account_for_ids(system_id, account_id)?;
        let acct = &self.accounts[account];
        if !acct.isa_access || !acct.visible_to(user) {
            return Err(Reply::forbidden(SubCode::NoPermission));
        }
        let expires = plus_mins(now, duration.unwrap_or(acct.isa_release));
        let reply = Reply::json(StatusCode::CREATED, self.credential_value(account, kind)?);
        let id = self.next_isa_id;
        self.next_isa_id += 1;
        self.isa_releases.insert(id, IsaRelease { id, user, account, expires });
        self.schedule(expires, EventKind::IsaExpiry(id));
        Ok(reply)
    }

    /// Approves a pending request (admin API; the simulator has no approver users).
    pub fn approve_request(&mut self, id: i64) -> anyhow::Result<()> {
        let now = self.tick();
        let request = self.requests.get_mut(&id).ok_or_else(|| anyhow::anyhow!("request {id} is not open"))?;
        anyhow::ensure!(request.approved.is_none(), "request {id} is already approved");
        request.approved = Some(now);
        Ok(())
    }
}
