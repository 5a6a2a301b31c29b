//! The client's network address, as the sign-in throttle counts it.
//!
//! By default it is the TCP peer's address: `X-Forwarded-For` is ignored, since any client can
//! send one. Behind a load balancer or an ingress controller every client then shares the
//! proxy's address. `--trusted-proxies` names the proxies (addresses or CIDR ranges) whose
//! `X-Forwarded-For` is believed: when the peer is one of them, the header (all its lines, in
//! order) is read from the right, skipping trusted addresses, and the first untrusted address
//! is the client's. An entry that is not an IP address stops the walk at the last trusted hop;
//! if every entry is trusted, the leftmost one is the client.
//!
//! IPv6 addresses are counted per /64 network (one host usually holds a whole /64), and
//! IPv4-mapped IPv6 addresses as IPv4.

use std::net::{IpAddr, SocketAddr};

/// An address range: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`, or a single
/// address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `ADDRESS` or `ADDRESS/PREFIX`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or a CIDR range such as 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Self {
            net: net.to_canonical(),
            prefix: if net.is_ipv6() && net.to_canonical().is_ipv4() {
                prefix.saturating_sub(96)
            } else {
                prefix
            },
        })
    }

    /// Whether `ip` is in the range.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Parses `--trusted-proxies`; fails with every problem.
pub(crate) fn parse_ranges(values: &[String]) -> Result<Vec<IpRange>, Vec<String>> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        match IpRange::parse(v) {
            Ok(r) => out.push(r),
            Err(e) => problems.push(format!("--trusted-proxies: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The client's address as the throttle counts it (see the module documentation). Unknown (a
/// router served without connection info, as in-process tests do) counts as `0.0.0.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The counted form of an address.
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let mut s = v6.segments();
                s[4..].fill(0);
                Self(IpAddr::from(s))
            }
            v4 => Self(v4),
        }
    }

    /// The client's address given the TCP peer, the `X-Forwarded-For` lines and the trusted
    /// proxies.
    pub(crate) fn resolve<'a>(
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
        trusted: &[IpRange],
    ) -> Self {
        let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
        let mut client = peer;
        if !is_trusted(peer) {
            return Self::of(client);
        }
        let entries = forwarded_for.rev().flat_map(|line| line.rsplit(','));
        for entry in entries {
            let Some(ip) = parse_entry(entry.trim()) else {
                break;
            };
            client = ip;
            if !is_trusted(ip) {
                break;
            }
        }
        Self::of(client)
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_entry(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ranges(v: &[&str]) -> Vec<IpRange> {
        parse_ranges(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let of = |s| ClientAddr::of(ip(s));
        assert_eq!(of("2001:db8:1:2:aaaa::1"), of("2001:db8:1:2:bbbb::9"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        assert_eq!(of("::ffff:192.0.2.7"), of("192.0.2.7"));
    }

    #[test]
    fn ranges_parse_and_match() {
        let r = ranges(&[
            "10.0.0.0/8",
            "192.0.2.7",
            "fd00::/8",
            "::ffff:172.16.0.0/108",
            "0.0.0.0/0",
        ]);
        assert!(r[0].contains(ip("10.255.0.1")) && !r[0].contains(ip("11.0.0.1")));
        assert!(r[0].contains(ip("::ffff:10.1.2.3")));
        assert!(r[1].contains(ip("192.0.2.7")) && !r[1].contains(ip("192.0.2.8")));
        assert!(r[2].contains(ip("fd12::1")) && !r[2].contains(ip("fe80::1")));
        assert!(r[3].contains(ip("172.31.0.1")) && !r[3].contains(ip("172.32.0.1")));
        assert!(r[4].contains(ip("203.0.113.1")) && !r[4].contains(ip("2001:db8::1")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "fd00::/129",
            "x",
            "10.0.0.0/+8",
        ] {
            assert!(parse_ranges(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let resolve = |peer: &str, xff: &[&str]| {
            ClientAddr::resolve(ip(peer), xff.iter().copied(), &trusted).0
        };
        // Not from a trusted proxy: the header is ignored.
        assert_eq!(resolve("192.0.2.1", &["198.51.100.9"]), ip("192.0.2.1"));
        // From the ingress: the rightmost untrusted entry, over several lines.
        assert_eq!(
            resolve("10.0.0.5", &["6.6.6.6, 198.51.100.9", "10.0.0.9"]),
            ip("198.51.100.9")
        );
        assert_eq!(
            resolve("10.0.0.5", &["198.51.100.9:4711"]),
            ip("198.51.100.9")
        );
        assert_eq!(
            resolve("10.0.0.5", &["[2001:db8::1]:4711"]),
            ip("2001:db8::")
        );
        // No header, or garbage: the last trusted hop.
        assert_eq!(resolve("10.0.0.5", &[]), ip("10.0.0.5"));
        assert_eq!(resolve("10.0.0.5", &["198.51.100.9, junk"]), ip("10.0.0.5"));
        // Every entry trusted: the leftmost.
        assert_eq!(resolve("10.0.0.5", &["10.1.1.1, 10.2.2.2"]), ip("10.1.1.1"));
        // Without trusted proxies, never read.
        let none = ClientAddr::resolve(ip("10.0.0.5"), ["198.51.100.9"].into_iter(), &[]);
        assert_eq!(none.0, ip("10.0.0.5"));
    }
}
