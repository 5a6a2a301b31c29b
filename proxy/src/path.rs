//! Request-path normalisation, before any access rule is matched and before the request goes to
//! the tool, so that the tool receives exactly the path that was authorised.
//!
//! - percent-encoding is decoded (invalid escapes, encoded `/`, `\`, NUL and control characters
//!   are refused: they let a path mean different things to different servers);
//! - duplicate slashes collapse, `.` and `..` segments are resolved (never above the root);
//! - a raw `\` is refused;
//! - an escape that decodes to another escape (`%2561` is `%61`) is refused, as IIS and Spring
//!   Security do: a tool that decodes twice would route `/%2561dmin` to `/admin`;
//! - `;` parameters stay in the forwarded path but are ignored for matching (`/admin;x` matches
//!   the rules for `/admin`), and a segment that is a dot segment or empty once its parameters
//!   are removed (`..;x`, `;x`) is refused.
//!
//! Case is left as it is; [`contract::access`] matches restricted rules in any case and public
//! rules exactly: `/ADMIN` gets the protection of `/admin`, `/PUBLIC` is not the public
//! `/public`, so case tricks can only lose access, never gain it.

use std::fmt::Write as _;

/// A request path that cannot be normalised unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// Not an absolute path.
    #[error("path must start with /")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding")]
    BadEscape,
    /// `%2F`, `%5C`, `\`, NUL or a control character.
    #[error("encoded slash, backslash or control character in path")]
    Forbidden,
    /// Not UTF-8 once decoded.
    #[error("path is not UTF-8")]
    NotUtf8,
    /// A dot or empty segment hidden behind `;` parameters.
    #[error("ambiguous dot or empty segment")]
    AmbiguousDot,
    /// An escape that decodes to another escape (`%2541`).
    #[error("double percent-encoding")]
    DoubleEncoded,
}

/// A normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NormalPath {
    /// For matching rules: decoded, dot segments resolved, `;` parameters removed.
    pub(crate) matching: String,
    /// For the tool: the same segments re-encoded, `;` parameters kept.
    pub(crate) forward: String,
}

/// Normalises a raw (percent-encoded) request path.
pub(crate) fn normalise(raw: &str) -> Result<NormalPath, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Fast path: nothing to decode, resolve or collapse, and nothing outside `pchar`.
    let plain = raw
        .bytes()
        .all(|b| b == b'/' || (b != b';' && PCHAR[usize::from(b)]))
        && !raw.contains("//")
        && !raw.contains("/./")
        && !raw.contains("/../")
        && !raw.ends_with("/.")
        && !raw.ends_with("/..");
    if plain {
        return Ok(NormalPath {
            matching: raw.to_string(),
            forward: raw.to_string(),
        });
    }
    let bytes = raw.as_bytes();
    let mut segments: Vec<String> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut i = 0;
    let flush = |current: &mut Vec<u8>, segments: &mut Vec<String>| -> Result<(), PathError> {
        // Only `%25` can have put a `%` here: a literal one would have been decoded.
        if current
            .windows(3)
            .any(|w| w[0] == b'%' && hex_val(w[1]).is_some() && hex_val(w[2]).is_some())
        {
            return Err(PathError::DoubleEncoded);
        }
        let seg = String::from_utf8(std::mem::take(current)).map_err(|_| PathError::NotUtf8)?;
        let bare = seg.split(';').next().unwrap_or("");
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            // Empty or a dot segment once its parameters are removed, as servers that drop them
            // (Tomcat, Spring) see it.
            _ if bare.is_empty() || bare == "." || bare == ".." => {
                return Err(PathError::AmbiguousDot);
            }
            _ => segments.push(seg),
        }
        Ok(())
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' => flush(&mut current, &mut segments)?,
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
                let v = (hex_val(hex[0]).ok_or(PathError::BadEscape)? << 4)
                    | hex_val(hex[1]).ok_or(PathError::BadEscape)?;
                if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7f {
                    return Err(PathError::Forbidden);
                }
                current.push(v);
                i += 2;
            }
            b'\\' => return Err(PathError::Forbidden),
            _ if b < 0x20 || b == 0x7f => return Err(PathError::Forbidden),
            _ => current.push(b),
        }
        i += 1;
    }
    flush(&mut current, &mut segments)?;
    // As RFC 3986 remove_dot_segments: a final `.` or `..` leaves a trailing slash.
    let trailing =
        !segments.is_empty() && (raw.ends_with('/') || raw.ends_with("/.") || raw.ends_with("/.."));
    let mut matching = String::with_capacity(raw.len());
    let mut forward = String::with_capacity(raw.len() + 8);
    for seg in &segments {
        matching.push('/');
        matching.push_str(seg.split(';').next().unwrap_or(""));
        forward.push('/');
        encode_segment(seg, &mut forward);
    }
    if segments.is_empty() || trailing {
        matching.push('/');
        forward.push('/');
    }
    Ok(NormalPath { matching, forward })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 `unreserved` and `sub-delims`: what a `reg-name` and a path segment share.
pub(crate) const fn unreserved_or_sub_delim(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// RFC 3986 `pchar` less `%` (unreserved, sub-delims, `:` and `@`), as a table.
const PCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = unreserved_or_sub_delim(c) || c == b':' || c == b'@';
        b += 1;
    }
    t
};

/// Percent-encodes everything outside RFC 3986 `pchar`.
fn encode_segment(seg: &str, out: &mut String) {
    for &b in seg.as_bytes() {
        if PCHAR[usize::from(b)] {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Whether `target` is a safe same-origin path to send a person back to: starts with one `/`,
/// no `//` or `/\` authority tricks, no backslashes or control characters anywhere.
pub(crate) fn is_safe_return_path(target: &str) -> bool {
    target.starts_with('/')
        && !target.starts_with("//")
        && !target.contains('\\')
        && !target.bytes().any(|b| b < 0x20 || b == 0x7f)
        && normalise(target.split(['?', '#']).next().unwrap_or(""))
            .is_ok_and(|p| !p.matching.starts_with("//"))
        && !target
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("%2f%2f")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn m(raw: &str) -> String {
        normalise(raw).unwrap().matching
    }

    #[test]
    fn resolves_dots_slashes_and_escapes() {
        assert_eq!(m("/"), "/");
        assert_eq!(m("/public/../admin"), "/admin");
        assert_eq!(m("/public/%2e%2e/admin"), "/admin");
        assert_eq!(m("/public/%2E%2E/admin"), "/admin");
        assert_eq!(m("/public/.%2e/admin"), "/admin");
        assert_eq!(m("//admin"), "/admin");
        assert_eq!(m("/a//b///c"), "/a/b/c");
        assert_eq!(m("/../../etc"), "/etc");
        assert_eq!(m("/a/./b/"), "/a/b/");
        assert_eq!(m("/a/b/.."), "/a/");
        assert_eq!(m("/%61dmin"), "/admin");
        assert_eq!(m("/admin;jsessionid=1/x"), "/admin/x");
        assert_eq!(m("/caf%C3%A9"), "/café");
    }

    #[test]
    fn fast_path_agrees_with_the_full_algorithm() {
        for p in [
            "/",
            "/a",
            "/a/b.c",
            "/a/",
            "/.well-known/x",
            "/a/..b/c.",
            "/~u/x=1:2@3",
        ] {
            let fast = normalise(p).unwrap();
            assert_eq!(fast.matching, p);
            assert_eq!(fast.forward, p);
        }
        assert_eq!(m("/a/."), "/a/");
        assert_eq!(m("/a/.."), "/");
    }

    #[test]
    fn forwards_what_was_matched() {
        let p = normalise("/public/%2e%2e/admin%20x;v=1?").unwrap();
        assert_eq!(p.forward, "/admin%20x;v=1%3F");
        assert_eq!(normalise("/a%3Fb%23c").unwrap().forward, "/a%3Fb%23c");
        assert_eq!(normalise("/%25").unwrap().forward, "/%25");
        // A `%` that does not start an escape once decoded stays.
        assert_eq!(normalise("/100%25off").unwrap().forward, "/100%25off");
        assert_eq!(normalise("/%25x%25").unwrap().forward, "/%25x%25");
    }

    #[test]
    fn refuses_ambiguous_paths() {
        assert_eq!(normalise("/a%2fb"), Err(PathError::Forbidden));
        assert_eq!(normalise("/a%5cb"), Err(PathError::Forbidden));
        assert_eq!(normalise("/a\\b"), Err(PathError::Forbidden));
        assert_eq!(normalise("/a%00"), Err(PathError::Forbidden));
        assert_eq!(normalise("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalise("/a%2"), Err(PathError::BadEscape));
        assert_eq!(normalise("/%ff"), Err(PathError::NotUtf8));
        assert_eq!(normalise("/..;/admin"), Err(PathError::AmbiguousDot));
        assert_eq!(normalise("/%2561dmin"), Err(PathError::DoubleEncoded));
        assert_eq!(normalise("/%25%34%31dmin"), Err(PathError::DoubleEncoded));
        assert_eq!(normalise("/x/a%252Fb"), Err(PathError::DoubleEncoded));
        // Found by fuzzing: a segment that is empty once its parameters go would match as `//x`
        // here, while servers that drop parameters (Tomcat, Spring) route it as `/x`.
        for raw in ["/;.a/x;b", "/;/admin", "/a/;v=1/b", "/%3B/admin"] {
            assert_eq!(normalise(raw), Err(PathError::AmbiguousDot), "{raw}");
        }
        assert_eq!(normalise("admin"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn return_paths() {
        assert!(is_safe_return_path("/"));
        assert!(is_safe_return_path("/a/b?c=d"));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https:evil.example",
            "https://evil.example",
            "evil",
            "/%2f%2fevil.example",
            "/%2F/evil",
            "/\tx",
            "",
        ] {
            assert!(!is_safe_return_path(bad), "{bad}");
        }
    }
}
