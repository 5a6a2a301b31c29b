//! Scopes: parsing, validation and the words shown to people on the consent page.

/// Whether `s` is a scope token (RFC 6749 §3.3: `%x21 / %x23-5B / %x5D-7E`).
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Parses a space-separated scope parameter (duplicates removed, order kept).
pub(crate) fn parse(s: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(' ') {
        if part.is_empty() {
            continue;
        }
        if !is_scope_token(part) {
            return None;
        }
        if !out.iter().any(|o| o == part) {
            out.push(part.to_string());
        }
    }
    Some(out)
}

/// Scopes with a meaning in OpenID Connect (not granted to client_credentials tokens).
pub(crate) const OIDC_SCOPES: [&str; 5] =
    ["openid", "profile", "email", "groups", "offline_access"];

/// Plain words for a scope on the consent page.
pub(crate) fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are (sign you in)".into(),
        "profile" => "See your name and your groups".into(),
        "email" => "See your email address".into(),
        "groups" => "See which groups you belong to".into(),
        "offline_access" => "Stay connected when you are not using it".into(),
        other => format!("Use the permission \u{201c}{other}\u{201d}"),
    }
}

/// Whether `granted` covers every scope of `wanted`.
pub(crate) fn covers(granted: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| granted.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_scope_token("tool:read"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token("é"));
        assert_eq!(
            parse("openid  email openid"),
            Some(vec!["openid".into(), "email".into()])
        );
        assert_eq!(parse("open\u{7f}id"), None);
    }
}
