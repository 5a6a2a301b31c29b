//! RFC 9112 §3.2: which requests carry an acceptable `Host` field. An HTTP/1.1 request needs
//! exactly one; an HTTP/1.0 request may have none but not two; and a value must be
//! `uri-host [ ":" port ]` (RFC 3986). HTTP/2 names its authority in `:authority` and is not
//! checked here.

use http::{HeaderMap, Version, header};

/// Characters of a `reg-name` other than `%` (RFC 3986 `unreserved` and `sub-delims`), and so
/// also of an `IPvFuture` or `IPv6address` literal with `:` added.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = crate::path::unreserved_or_sub_delim(b as u8);
        b += 1;
    }
    t
};

/// Whether `value` is `uri-host [ ":" port ]`, in one pass over its bytes. An empty value is
/// allowed (RFC 9110 §7.2: what a client sends for a target without an authority).
pub fn valid(value: &[u8]) -> bool {
    let rest = match value.split_first() {
        // IP-literal: the characters of IPv6address / IPvFuture up to the closing bracket.
        Some((b'[', literal)) => {
            let n = literal
                .iter()
                .take_while(|&&b| REG_NAME[usize::from(b)] || b == b':')
                .count();
            match literal.get(n) {
                Some(b']') if n > 0 => &literal[n + 1..],
                _ => return false,
            }
        }
        _ => reg_name_end(value),
    };
    match rest.split_first() {
        None => true,
        Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// What follows the `reg-name` at the start of `value`.
fn reg_name_end(mut value: &[u8]) -> &[u8] {
    loop {
        let n = value
            .iter()
            .position(|&b| !REG_NAME[usize::from(b)])
            .unwrap_or(value.len());
        value = &value[n..];
        match value {
            [b'%', h, l, more @ ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                value = more;
            }
            _ => return value,
        }
    }
}

/// Whether a request's `Host` fields are acceptable for its version (RFC 9112 §3.2).
pub fn acceptable(version: Version, headers: &HeaderMap) -> bool {
    if version == Version::HTTP_2 || version == Version::HTTP_3 {
        return true;
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(h), None) => valid(h.as_bytes()),
        (None, None) => version < Version::HTTP_11,
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        for ok in [
            "tool.example.com",
            "tool.example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "[v1.x]",
            "a%2Db",
            "xn--bcher-kva.example",
            "",
            "a:",
        ] {
            assert!(valid(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "a b", "a/b", "a@b", "a:b", "a:80:90", "[::1", "[]", "[::1]x", "::1", "a%2", "a%zz",
            "é", "a\tb", "a?b",
        ] {
            assert!(!valid(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn host_fields_by_version() {
        let none = HeaderMap::new();
        let mut one = HeaderMap::new();
        one.insert(header::HOST, "a".parse().unwrap());
        let mut two = one.clone();
        two.append(header::HOST, "a".parse().unwrap());
        let mut bad = HeaderMap::new();
        bad.insert(header::HOST, "a b".parse().unwrap());
        assert!(acceptable(Version::HTTP_11, &one));
        assert!(!acceptable(Version::HTTP_11, &none));
        assert!(!acceptable(Version::HTTP_11, &two));
        assert!(!acceptable(Version::HTTP_11, &bad));
        assert!(acceptable(Version::HTTP_10, &none));
        assert!(acceptable(Version::HTTP_10, &one));
        assert!(!acceptable(Version::HTTP_10, &two));
        assert!(!acceptable(Version::HTTP_10, &bad));
        assert!(acceptable(Version::HTTP_2, &none));
    }
}
