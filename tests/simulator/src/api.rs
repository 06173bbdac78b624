//! Dispatches one routed API call to the state, with the session check every endpoint but sign-in needs.

use jiff::Timestamp;

use crate::input::{JsonBody, Query};
use crate::reply::{Answer, Reply, settle};
use crate::router::{ApiVersion, Route};
use crate::state::State;

/// The parts of an HTTP request an API operation reads.
pub(crate) struct Call<'a> {
    pub route: &'a Route,
    pub version: ApiVersion,
    pub query: Query,
    pub authorization: Option<&'a str>,
    pub session: Option<&'a str>,
    pub body: &'a [u8],
}

/// Runs one API operation against the state (the caller holds the lock).
pub(crate) fn dispatch(state: &mut State, call: &Call<'_>) -> Reply {
    let query = &call.query;
    match call.route {
        Route::SignAppIn => state.sign_in(call.authorization),
        Route::Signout => state.sign_out(call.session),
        Route::ConnectToken => state.issue_token(&Query::from_bytes(call.body)),
        Route::ManagedAccounts => as_user(state, call, |s, user, now| s.managed_accounts(user, query, now)),
        Route::CreateRequest => {
            as_user(state, call, |s, user, now| s.create_request(user, &JsonBody::parse(call.body)?, now))
        }
        Route::ListRequests => as_user(state, call, |s, user, _| s.list_requests(user, query)),
        Route::Checkin(id) => {
            as_user(state, call, |s, user, now| s.checkin(user, id, &JsonBody::parse(call.body)?, now))
        }
        Route::Credentials(id) => as_user(state, call, |s, user, _| s.credentials(user, id, query)),
        Route::IsaRequest => {
            as_user(state, call, |s, user, now| s.isa_request(user, query, &JsonBody::parse(call.body)?, now))
        }
        Route::Aliases => as_user(state, call, |s, user, now| s.list_aliases(user, query, now)),
        Route::AliasById(id) => as_user(state, call, |s, user, now| s.alias_by_id(user, id, now)),
        Route::AliasRequest(id) => {
            as_user(state, call, |s, user, now| s.create_alias_request(user, id, &JsonBody::parse(call.body)?, now))
        }
        Route::AliasCredentials { alias, request } => {
            as_user(state, call, |s, user, _| s.alias_credentials(user, alias, request, query))
        }
        Route::Secrets => as_user(state, call, |s, _, _| s.list_secrets(query, call.version)),
        Route::SecretById(id) => as_user(state, call, |s, _, _| s.secret_by_id(id)),
        Route::SecretText(id) => as_user(state, call, |s, _, _| s.secret_text(id)),
        Route::SecretFile(id) => as_user(state, call, |s, _, _| s.secret_file(id)),
        Route::SecretFileDownload(id) => as_user(state, call, |s, _, _| s.secret_download(id)),
        Route::Folders => as_user(state, call, |s, _, _| s.list_folders(query)),
    }
}

/// Runs `operation` for the session's user, or answers 401 without a live session.
fn as_user(
    state: &mut State,
    call: &Call<'_>,
    operation: impl FnOnce(&mut State, usize, Timestamp) -> Answer,
) -> Reply {
    let now = state.tick();
    settle(state.authenticate(call.session, now).and_then(|user| operation(state, user, now)))
}
