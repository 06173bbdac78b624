//! Maps a method and path to an API operation, the way the real server does: path segments are matched
//! case-insensitively and the base path may carry a version (`/v3/`, `/v3.1/`, `/v3.2/`).

use http::Method;

/// The API operations the simulator counts and can inject faults into. The names are CONTRACT.md's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    SignAppIn,
    Signout,
    ConnectToken,
    ManagedAccounts,
    CreateRequest,
    ListRequests,
    Checkin,
    Credentials,
    IsaRequest,
    Aliases,
    AliasRequest,
    AliasCredentials,
    Secrets,
    SecretText,
    SecretFileDownload,
    SecretFile,
    Folders,
}

impl Endpoint {
    pub const ALL: [Endpoint; 17] = [
        Endpoint::SignAppIn,
        Endpoint::Signout,
        Endpoint::ConnectToken,
        Endpoint::ManagedAccounts,
        Endpoint::CreateRequest,
        Endpoint::ListRequests,
        Endpoint::Checkin,
        Endpoint::Credentials,
        Endpoint::IsaRequest,
        Endpoint::Aliases,
        Endpoint::AliasRequest,
        Endpoint::AliasCredentials,
        Endpoint::Secrets,
        Endpoint::SecretText,
        Endpoint::SecretFileDownload,
        Endpoint::SecretFile,
        Endpoint::Folders,
    ];

    /// The counter key and fault-rule name of this endpoint.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::SignAppIn => "POST Auth/SignAppIn",
            Endpoint::Signout => "POST Auth/Signout",
            Endpoint::ConnectToken => "POST Auth/Connect/Token",
            Endpoint::ManagedAccounts => "GET ManagedAccounts",
            Endpoint::CreateRequest => "POST Requests",
            Endpoint::ListRequests => "GET Requests",
            Endpoint::Checkin => "PUT Requests/Checkin",
            Endpoint::Credentials => "GET Credentials",
            Endpoint::IsaRequest => "POST ISARequests",
            Endpoint::Aliases => "GET Aliases",
            Endpoint::AliasRequest => "POST Aliases/Requests",
            Endpoint::AliasCredentials => "GET Aliases/Credentials",
            Endpoint::Secrets => "GET Secrets-Safe/Secrets",
            Endpoint::SecretText => "GET Secrets-Safe/Secrets/text",
            Endpoint::SecretFileDownload => "GET Secrets-Safe/Secrets/file/download",
            Endpoint::SecretFile => "GET Secrets-Safe/Secrets/file",
            Endpoint::Folders => "GET Secrets-Safe/Folders",
        }
    }

    /// Looks a name up case-insensitively; the guide's `POST ISARRequests` spelling names `POST ISARequests`.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("POST ISARRequests") {
            return Some(Endpoint::IsaRequest);
        }
        Endpoint::ALL.into_iter().find(|e| e.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// API version selected by the base path or `?version=`. Only Secrets Safe listings differ by version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ApiVersion {
    V3_0,
    V3_1,
    V3_2,
}

impl ApiVersion {
    fn parse(text: &str) -> Option<ApiVersion> {
        let text = text.trim().trim_start_matches(['v', 'V']);
        match text {
            "3" | "3.0" => Some(ApiVersion::V3_0),
            "3.1" => Some(ApiVersion::V3_1),
            "3.2" => Some(ApiVersion::V3_2),
            _ => None,
        }
    }
}

/// One API operation with its path parameters (still unparsed: bad ids are the handler's 400 to give).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    SignAppIn,
    Signout,
    ConnectToken,
    ManagedAccounts,
    CreateRequest,
    ListRequests,
    Checkin(String),
    Credentials(String),
    IsaRequest,
    Aliases,
    AliasById(String),
    AliasRequest(String),
    AliasCredentials { alias: String, request: String },
    Secrets,
    SecretById(String),
    SecretText(String),
    SecretFile(String),
    SecretFileDownload(String),
    Folders,
}

impl Route {
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Route::SignAppIn => Endpoint::SignAppIn,
            Route::Signout => Endpoint::Signout,
            Route::ConnectToken => Endpoint::ConnectToken,
            Route::ManagedAccounts => Endpoint::ManagedAccounts,
            Route::CreateRequest => Endpoint::CreateRequest,
            Route::ListRequests => Endpoint::ListRequests,
            Route::Checkin(_) => Endpoint::Checkin,
            Route::Credentials(_) => Endpoint::Credentials,
            Route::IsaRequest => Endpoint::IsaRequest,
            Route::Aliases | Route::AliasById(_) => Endpoint::Aliases,
            Route::AliasRequest(_) => Endpoint::AliasRequest,
            Route::AliasCredentials { .. } => Endpoint::AliasCredentials,
            Route::Secrets | Route::SecretById(_) => Endpoint::Secrets,
            Route::SecretText(_) => Endpoint::SecretText,
            Route::SecretFile(_) => Endpoint::SecretFile,
            Route::SecretFileDownload(_) => Endpoint::SecretFileDownload,
            Route::Folders => Endpoint::Folders,
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Routing {
    Api {
        route: Route,
        version: ApiVersion,
    },
    /// `/admin/...`: the remaining path segments (original case).
    Admin(Vec<String>),
    /// The path names an operation, but not with this method.
    MethodNotAllowed,
    NotFound,
}

const BASE: [&str; 3] = ["beyondtrust", "api", "public"];

/// Routes a request. `query` is only consulted for `?version=`.
pub(crate) fn route(method: &Method, path: &str, query: Option<&str>) -> Routing {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.first().is_some_and(|s| s.eq_ignore_ascii_case("admin")) {
        return Routing::Admin(segments[1..].iter().map(|s| s.to_string()).collect());
    }
    let is_base =
        segments.len() > BASE.len() && BASE.iter().zip(&segments).all(|(want, got)| got.eq_ignore_ascii_case(want));
    if !is_base {
        return Routing::NotFound;
    }
    let Some(mut version) = ApiVersion::parse(segments[BASE.len()]) else {
        return Routing::NotFound;
    };
    if let Some(v) = version_param(query) {
        version = v;
    }
    let rest: Vec<String> = segments[BASE.len() + 1..].iter().map(|s| s.to_ascii_lowercase()).collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match operation(method, &rest) {
        Some(route) => Routing::Api { route, version },
        None if [Method::GET, Method::POST, Method::PUT]
            .iter()
            .any(|other| other != method && operation(other, &rest).is_some()) =>
        {
            Routing::MethodNotAllowed
        }
        None => Routing::NotFound,
    }
}

/// `?version=3.1` selects a version like a `/v3.1/` base path does.
fn version_param(query: Option<&str>) -> Option<ApiVersion> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("version"))
        .and_then(|(_, v)| ApiVersion::parse(&v))
}

/// The operation table. Segments are lower-cased; ids keep their text (digits and GUIDs are unaffected).
fn operation(method: &Method, rest: &[&str]) -> Option<Route> {
    let own = |s: &str| s.to_string();
    let route = match (method.as_str(), rest) {
        ("POST", ["auth", "signappin"]) => Route::SignAppIn,
        ("POST", ["auth", "signout"]) => Route::Signout,
        ("POST", ["auth", "connect", "token"]) => Route::ConnectToken,
        ("GET", ["managedaccounts"]) => Route::ManagedAccounts,
        ("POST", ["requests"]) => Route::CreateRequest,
        ("GET", ["requests"]) => Route::ListRequests,
        ("PUT", ["requests", id, "checkin"]) => Route::Checkin(own(id)),
        ("PUT", ["requests", "release", id]) => Route::Checkin(own(id)),
        ("GET", ["credentials", id]) => Route::Credentials(own(id)),
        ("POST", ["isarequests" | "isarrequests"]) => Route::IsaRequest,
        ("GET", ["aliases"]) => Route::Aliases,
        ("GET", ["aliases", id]) => Route::AliasById(own(id)),
        ("POST", ["aliases", id, "requests"]) => Route::AliasRequest(own(id)),
        ("GET", ["aliases", alias, "credentials", request]) => {
            Route::AliasCredentials { alias: own(alias), request: own(request) }
        }
        ("GET", ["secrets-safe", "secrets"]) => Route::Secrets,
        ("GET", ["secrets-safe", "secrets", id]) => Route::SecretById(own(id)),
        ("GET", ["secrets-safe", "secrets", id, "text"]) => Route::SecretText(own(id)),
        ("GET", ["secrets-safe", "secrets", id, "file"]) => Route::SecretFile(own(id)),
        ("GET", ["secrets-safe", "secrets", id, "file", "download"]) => Route::SecretFileDownload(own(id)),
        ("GET", ["secrets-safe", "folders"]) => Route::Folders,
        _ => return None,
    };
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(method: Method, path: &str) -> Option<(Route, ApiVersion)> {
        match route(&method, path, None) {
            Routing::Api { route, version } => Some((route, version)),
            _ => None,
        }
    }

    #[test]
    fn matches_case_insensitively_on_every_version() {
        let base = "/BeyondTrust/api/public/v3";
        assert_eq!(api(Method::POST, &format!("{base}/Auth/SignAppin")).unwrap().0, Route::SignAppIn);
        assert_eq!(api(Method::POST, "/beyondtrust/API/public/v3.1/auth/signAppIn").unwrap().1, ApiVersion::V3_1);
        assert_eq!(api(Method::PUT, &format!("{base}/requests/12/checkin")).unwrap().0, Route::Checkin("12".into()));
        assert_eq!(api(Method::PUT, &format!("{base}/Requests/Release/12")).unwrap().0, Route::Checkin("12".into()));
        assert_eq!(api(Method::POST, &format!("{base}/ISARRequests")).unwrap().0, Route::IsaRequest);
        assert_eq!(
            api(Method::GET, &format!("{base}/secrets-safe/secrets/abc/file/download/")).unwrap().0,
            Route::SecretFileDownload("abc".into())
        );
    }

    #[test]
    fn version_query_overrides_base_path() {
        let routing = route(&Method::GET, "/BeyondTrust/api/public/v3/Secrets-Safe/Secrets", Some("version=3.2"));
        assert!(matches!(routing, Routing::Api { version: ApiVersion::V3_2, .. }));
    }

    #[test]
    fn distinguishes_unknown_paths_from_wrong_methods() {
        let base = "/BeyondTrust/api/public/v3";
        assert_eq!(route(&Method::DELETE, &format!("{base}/Requests"), None), Routing::MethodNotAllowed);
        assert_eq!(route(&Method::GET, &format!("{base}/Nope"), None), Routing::NotFound);
        assert_eq!(route(&Method::GET, "/BeyondTrust/api/public/v4/ManagedAccounts", None), Routing::NotFound);
        assert_eq!(route(&Method::GET, "/admin/calls", None), Routing::Admin(vec!["calls".into()]));
    }

    #[test]
    fn endpoint_names_round_trip() {
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(endpoint.name()), Some(endpoint));
            assert_eq!(Endpoint::ALL[endpoint.index()], endpoint);
        }
        assert_eq!(Endpoint::from_name("post isarrequests"), Some(Endpoint::IsaRequest));
    }
}
