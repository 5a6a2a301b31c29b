//! The refresh token grant (RFC 6749 §6, OAuth 2.1 §4.3): a refresh may narrow what was granted
//! (scopes, one of the resources), never widen it.

use super::Refusal;
use crate::directory::clients::Client;
use crate::error::ErrorCode::{InvalidScope, InvalidTarget, UnauthorizedClient};

/// Whether `client` may use refresh tokens.
pub(crate) fn permitted(client: &Client) -> Result<(), Refusal> {
    if client.refresh_token {
        Ok(())
    } else {
        Err(Refusal::new(
            UnauthorizedClient,
            "the client may not use refresh tokens",
        ))
    }
}

/// The scopes of the refreshed token: the granted ones, or the requested subset of them.
pub(crate) fn scopes(granted: &[String], requested: Option<&str>) -> Result<Vec<String>, Refusal> {
    let Some(s) = requested else {
        return Ok(granted.to_vec());
    };
    let Some(v) = crate::scope::parse(s) else {
        return Err(Refusal::new(InvalidScope, "malformed scope"));
    };
    if !crate::scope::covers(granted, &v) {
        return Err(Refusal::new(InvalidScope, "scope exceeds what was granted"));
    }
    Ok(v)
}

/// The resources of the refreshed token: the granted ones, or the one requested among them.
pub(crate) fn resources(
    granted: &[String],
    requested: Option<&str>,
) -> Result<Vec<String>, Refusal> {
    match requested {
        None => Ok(granted.to_vec()),
        Some(r) if granted.iter().any(|x| x == r) => Ok(vec![r.to_string()]),
        Some(_) => Err(Refusal::new(InvalidTarget, "resource was not granted")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_may_narrow_never_widen() {
        let granted = v(&["openid", "tool:read"]);
        assert_eq!(scopes(&granted, None).unwrap(), granted);
        assert_eq!(
            scopes(&granted, Some("tool:read")).unwrap(),
            v(&["tool:read"])
        );
        assert_eq!(
            scopes(&granted, Some("tool:write")).unwrap_err().code,
            InvalidScope
        );
        assert_eq!(
            scopes(&granted, Some("a\"b")).unwrap_err().code,
            InvalidScope
        );
    }

    #[test]
    fn one_granted_resource_may_be_chosen() {
        let granted = v(&["https://a.example", "https://b.example"]);
        assert_eq!(resources(&granted, None).unwrap(), granted);
        assert_eq!(
            resources(&granted, Some("https://b.example")).unwrap(),
            v(&["https://b.example"])
        );
        assert_eq!(
            resources(&granted, Some("https://c.example"))
                .unwrap_err()
                .code,
            InvalidTarget
        );
    }
}
