//! `GET Aliases?name=`: resolve an alias to the managed account it currently maps to.

use reqwest::Method;

use super::client::Client;
use super::error::{Error, ErrorKind, Result};
use super::models::{Alias, OneOrMany};
use super::transport::Call;

const EP: &str = "GET Aliases";

impl Client {
    pub async fn find_alias(&self, name: &str) -> Result<Alias> {
        let not_found = || {
            Error::new(
                EP,
                ErrorKind::NotFound(format!(
                    "alias {name} (it may not exist, be unmapped, or the user may have no role on its account)"
                )),
            )
        };
        let response = match self.send(Call::new(EP, Method::GET, "Aliases").query("name", name)).await {
            Err(e) if e.status() == Some(404) => return Err(not_found()),
            other => other?,
        };
        let alias = response
            .json::<OneOrMany<Alias>>()?
            .into_vec()
            .into_iter()
            .find(|a| a.alias_name.eq_ignore_ascii_case(name))
            .ok_or_else(not_found)?;
        if !alias.is_requestable() {
            return Err(Error::new(
                EP,
                ErrorKind::NotFound(format!("alias {name} is unmapped (AliasState 0) and cannot be requested")),
            ));
        }
        Ok(alias)
    }
}

impl Client {
    /// Every requestable alias (state 1 and 2), with rotation fields: one call for change detection.
    pub async fn list_aliases(&self) -> Result<Vec<Alias>> {
        Ok(self.send(Call::new(EP, Method::GET, "Aliases")).await?.json::<OneOrMany<Alias>>()?.into_vec())
    }
}
