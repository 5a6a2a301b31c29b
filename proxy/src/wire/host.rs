//! Which requests name their authority acceptably. RFC 9112 §3.2: an HTTP/1.1 request needs
//! exactly one `Host` field; an HTTP/1.0 request may have none but not two. RFC 9113 §8.3.1: an
//! HTTP/2 request names it in `:authority` (without userinfo), or else in one `Host` field; when
//! it has both, they must name the same host and port. Every value must be
//! `uri-host [ ":" port ]` (RFC 3986).

use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Version, header};

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
pub(crate) fn valid(value: &[u8]) -> bool {
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

/// Whether a request's `Host` fields (and, on HTTP/2, its `:authority`, which `http` keeps as
/// the URI's authority) are acceptable for its version.
pub(crate) fn acceptable(
    version: Version,
    authority: Option<&Authority>,
    headers: &HeaderMap,
) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (host, None) => host,
        _ => return false,
    };
    if version < Version::HTTP_2 {
        return match host {
            Some(h) => valid(h.as_bytes()),
            None => version < Version::HTTP_11,
        };
    }
    match (authority, host) {
        (Some(a), host) => {
            let a = a.as_str().as_bytes();
            !a.contains(&b'@') && valid(a) && host.is_none_or(|h| same(a, h))
        }
        (None, Some(h)) => valid(h.as_bytes()),
        (None, None) => false,
    }
}

/// Whether a `Host` value names the same host and port as an authority (host names compare
/// without regard to case).
fn same(authority: &[u8], host: &HeaderValue) -> bool {
    authority.eq_ignore_ascii_case(host.as_bytes())
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
        assert!(acceptable(Version::HTTP_11, None, &one));
        assert!(!acceptable(Version::HTTP_11, None, &none));
        assert!(!acceptable(Version::HTTP_11, None, &two));
        assert!(!acceptable(Version::HTTP_11, None, &bad));
        assert!(acceptable(Version::HTTP_10, None, &none));
        assert!(acceptable(Version::HTTP_10, None, &one));
        assert!(!acceptable(Version::HTTP_10, None, &two));
        assert!(!acceptable(Version::HTTP_10, None, &bad));
        // HTTP/1: an absolute-form target's authority does not stand in for `Host`.
        let target: Authority = "a".parse().unwrap();
        assert!(!acceptable(Version::HTTP_11, Some(&target), &none));
    }

    #[test]
    fn http2_authority() {
        let h2 = |authority: Option<&str>, hosts: &[&str]| {
            let mut headers = HeaderMap::new();
            for h in hosts {
                headers.append(header::HOST, h.parse().unwrap());
            }
            let authority: Option<Authority> = authority.map(|a| a.parse().unwrap());
            acceptable(Version::HTTP_2, authority.as_ref(), &headers)
        };
        assert!(h2(Some("tool.example:8443"), &[]));
        assert!(h2(Some("tool.example:8443"), &["tool.example:8443"]));
        assert!(h2(Some("Tool.Example"), &["tool.example"]));
        assert!(h2(None, &["tool.example"]));
        // Neither, userinfo, a Host naming another host or port, two Hosts, an invalid Host.
        assert!(!h2(None, &[]));
        assert!(!h2(Some("user@tool.example"), &[]));
        assert!(!h2(Some("tool.example"), &["evil.example"]));
        assert!(!h2(Some("tool.example:8443"), &["tool.example:9443"]));
        assert!(!h2(Some("tool.example"), &["tool.example", "tool.example"]));
        assert!(!h2(None, &["a b"]));
    }
}
