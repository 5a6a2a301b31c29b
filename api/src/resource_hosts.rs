//! Resource hosts bound to namespaces: which namespaces may claim a `spec.resource` on a host.
//!
//! Without bindings, any namespace may name any URL as its `spec.resource`, and the first to
//! claim one holds it ([`crate::resources`]): a team that applies a ConnectedApp naming another
//! team's tool before that team does squats the tool's audience, and the real app is left
//! without its resource. A platform engineer closes that by binding hosts to the namespaces that
//! own them (`--resource-hosts` of the operator and the issuer, Helm value
//! `operator.resourceHosts`): an app whose resource's host is bound, and which is outside the
//! bound namespaces, is not a client (`Ready=False`, reason [`RESOURCE_NOT_PERMITTED`]), and
//! neither takes nor blocks the resource. Hosts that no binding matches may be claimed from any
//! namespace.
//!
//! A binding is `PATTERN=NAMESPACE[,NAMESPACE…]`; several are separated by whitespace. A pattern
//! is a host (`grafana.example.com`, `10.0.0.7`, `[fd00::7]`), `*.` and a domain
//! (`*.team-a.example.com`: every host below it, at any depth, on a label boundary; not the
//! domain itself), or `*` (every host). For each host the most specific matching binding
//! applies alone: an exact host, then the longest `*.` domain, then `*`; so
//! `*.example.com=platform grafana.example.com=tools` gives `grafana.example.com` to `tools`
//! only.
//!
//! Hosts are compared as a browser reads them (the WHATWG URL standard, which the `url` crate
//! implements): letter case, a trailing dot, the port, user info, percent-encoding, IDN
//! (Unicode or punycode) and the many spellings of an IP address do not dodge a binding
//! (`https://Grafana.EXAMPLE.com.:8443/` is on `grafana.example.com`). While any binding is
//! configured, a resource whose host cannot be read at all is refused as well. The resource
//! itself is still compared byte for byte when its holder is settled; only the binding reads
//! hosts.

use std::collections::BTreeSet;
use std::fmt;

use kube::ResourceExt as _;
use url::Host;

use crate::ConnectedApp;

/// Reason of the `Ready` condition of an app whose resource's host is bound to other namespaces.
pub const RESOURCE_NOT_PERMITTED: &str = "ResourceNotPermitted";

/// The flag (and, as `KEYWAY_RESOURCE_HOSTS`, the environment variable) of the operator and the
/// issuer that holds the bindings; named in messages.
pub const FLAG: &str = "--resource-hosts";

/// Which hosts a binding covers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// One host (normalised: see [`host_of`]).
    Exact(String),
    /// Every domain strictly below this one (normalised).
    Below(String),
    /// Every host.
    Any,
}

impl Pattern {
    /// How specific the pattern is: higher wins.
    fn rank(&self) -> (u8, usize) {
        match self {
            Self::Exact(_) => (2, 0),
            Self::Below(domain) => (1, domain.len()),
            Self::Any => (0, 0),
        }
    }

    fn matches(&self, host: &Host<String>) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (Self::Exact(h), _) => *h == host.to_string(),
            (Self::Below(domain), Host::Domain(d)) => d
                .strip_suffix(domain.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            (Self::Below(_), _) => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Below(d) => write!(f, "*.{d}"),
            Self::Any => f.write_str("*"),
        }
    }
}

/// One binding: a host pattern and the namespaces that may claim resources on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pattern: Pattern,
    namespaces: BTreeSet<String>,
}

impl Binding {
    /// Whether apps of `namespace` may claim resources on the binding's hosts.
    pub fn permits(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }
}

impl fmt::Display for Binding {
    /// The binding in its normalised form, `pattern=ns1,ns2` (namespaces sorted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let namespaces: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
        write!(f, "{}={}", self.pattern, namespaces.join(","))
    }
}

/// The configured bindings; empty (the default): every namespace may claim every host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceHosts {
    /// Most specific first.
    bindings: Vec<Binding>,
}

/// Why an app may not claim its `spec.resource`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The app's `spec.resource`.
    pub resource: String,
    /// The app's namespace.
    pub namespace: String,
    /// The binding that covers the resource's host; `None` when the host cannot be read.
    pub binding: Option<Binding>,
}

impl fmt::Display for Refusal {
    /// The message of the app's `Ready` condition: the resource, the binding and what to do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = &self.resource;
        match &self.binding {
            Some(binding) => write!(
                f,
                "resource {resource:?} is on a host bound to other namespaces by the resource-host \
                 binding {:?} ({FLAG}); namespace {:?} is not among them, so this app is not a \
                 client and no Secret is written for it: choose a spec.resource on a host of \
                 this namespace, or ask the platform team to bind the host to it",
                binding.to_string(),
                self.namespace,
            ),
            None => write!(
                f,
                "resource {resource:?} has no host that can be compared with the resource-host \
                 bindings ({FLAG}), so this app is not a client and no Secret is written for it: \
                 choose a spec.resource such as https://tool.example.com"
            ),
        }
    }
}

impl ResourceHosts {
    /// Parses bindings from flag values, each holding one or more bindings separated by
    /// whitespace. Every problem is reported, each naming the binding it is about.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut bindings: Vec<(String, Binding)> = Vec::new();
        for written in values.into_iter().flat_map(str::split_whitespace) {
            match parse_binding(written) {
                Ok(binding) => {
                    if let Some((first, _)) =
                        bindings.iter().find(|(_, b)| b.pattern == binding.pattern)
                    {
                        problems.push(format!(
                            "{FLAG}: {written:?} and {first:?} both bind {}: list the namespaces in one binding",
                            binding.pattern
                        ));
                    } else {
                        bindings.push((written.to_string(), binding));
                    }
                }
                Err(problem) => problems.push(format!("{FLAG}: {written:?}: {problem}")),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut bindings: Vec<Binding> = bindings.into_iter().map(|(_, b)| b).collect();
        bindings.sort_by_key(|b| std::cmp::Reverse(b.pattern.rank()));
        Ok(Self { bindings })
    }

    /// Whether no binding is configured.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The bindings, most specific first.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The binding that applies to `host` (normalised, see [`host_of`]): the most specific one
    /// that matches.
    fn binding_for(&self, host: &Host<String>) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.pattern.matches(host))
    }

    /// Why `app` may not claim its `spec.resource`, if it may not: the binding covering the
    /// resource's host does not list the app's namespace, or bindings are configured and the
    /// host cannot be read. `None` for an app without a resource, and for every app while no
    /// binding is configured.
    pub fn refusal(&self, app: &ConnectedApp) -> Option<Refusal> {
        if self.bindings.is_empty() {
            return None;
        }
        let resource = app.spec.resource.as_deref()?;
        let namespace = app.namespace().unwrap_or_default();
        let refusal = |binding: Option<&Binding>| Refusal {
            resource: resource.to_string(),
            namespace: namespace.clone(),
            binding: binding.cloned(),
        };
        match host_of(resource) {
            None => Some(refusal(None)),
            Some(host) => match self.binding_for(&host) {
                Some(binding) if !binding.permits(&namespace) => Some(refusal(Some(binding))),
                _ => None,
            },
        }
    }

    /// Whether `app` may claim its `spec.resource` (see [`ResourceHosts::refusal`]).
    pub fn permits(&self, app: &ConnectedApp) -> bool {
        self.refusal(app).is_none()
    }
}

fn parse_binding(written: &str) -> Result<Binding, String> {
    let Some((pattern, namespaces)) = written.split_once('=') else {
        return Err(
            "not a binding HOST=NAMESPACE[,NAMESPACE…] (e.g. *.team-a.example.com=team-a)".into(),
        );
    };
    let pattern = parse_pattern(pattern)?;
    let mut set = BTreeSet::new();
    let mut bad = Vec::new();
    for ns in namespaces.split(',') {
        if is_namespace_name(ns) {
            set.insert(ns.to_string());
        } else {
            bad.push(format!("{ns:?}"));
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "{} not a namespace name (lowercase letters, digits and '-', at most 63 characters, \
             starting and ending with a letter or digit)",
            if bad.len() == 1 {
                format!("{} is", bad[0])
            } else {
                format!("{} are", bad.join(", "))
            }
        ));
    }
    Ok(Binding {
        pattern,
        namespaces: set,
    })
}

fn parse_pattern(pattern: &str) -> Result<Pattern, String> {
    const WHAT: &str = "a host pattern is a host name or IP address (grafana.example.com, \
                        10.0.0.7, [fd00::7]), *.<domain> or *, without scheme, port or path";
    if pattern == "*" {
        return Ok(Pattern::Any);
    }
    let (wildcard, host) = match pattern.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    if host.is_empty()
        || host.contains(['*', '/', '\\', '@', '?', '#', '%'])
        || host.chars().any(|c| c.is_whitespace() || c.is_control())
        || (host.contains(':') && !host.starts_with('['))
    {
        return Err(WHAT.into());
    }
    let parsed = parse_host(host).ok_or_else(|| WHAT.to_string())?;
    // Resources have letters, digits and '-' in their labels (`crate::URI_PATTERN`), punycode
    // included: a pattern with other characters is a typo.
    if let Host::Domain(domain) = &parsed
        && !domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        })
    {
        return Err(WHAT.into());
    }
    match (wildcard, parsed) {
        (false, host) => Ok(Pattern::Exact(host.to_string())),
        (true, Host::Domain(domain)) => Ok(Pattern::Below(domain)),
        (true, _) => Err("*. applies to domain names, not to IP addresses".into()),
    }
}

/// A namespace name: an RFC 1123 label.
fn is_namespace_name(ns: &str) -> bool {
    let b = ns.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A host as the WHATWG URL host parser reads it (percent-decoding, IDNA to lowercase
/// punycode, IPv4 in any of its spellings, IPv6 canonical), without trailing dots.
fn parse_host(host: &str) -> Option<Host<String>> {
    match Host::parse(host).ok()? {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            if d.is_empty() {
                return None;
            }
            // Without its trailing dots a name may read differently (`1.2.3.4..` is an address).
            Host::parse(d).ok()
        }
        ip => Some(ip),
    }
}

/// The host of a URL as a browser reads it (the WHATWG URL standard): tabs and newlines
/// removed, the scheme's slashes (and, for http, https, ws, wss and ftp, backslashes) skipped,
/// user info and port dropped, the host normalised by [`parse_host`]. `None` when there is no
/// host or it cannot be parsed. Unlike the `url` crate's `Url::parse`, a bad port does not make
/// the host unreadable: the binding covers every port.
pub fn host_of(resource: &str) -> Option<Host<String>> {
    let cleaned: String = resource
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let (scheme, rest) = cleaned.split_once(':')?;
    let mut chars = scheme.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let special = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "http" | "https" | "ws" | "wss" | "ftp"
    );
    let authority_and_path = if special {
        rest.trim_start_matches(['/', '\\'])
    } else {
        rest.strip_prefix("//")?
    };
    let end = authority_and_path
        .find(|c: char| matches!(c, '/' | '?' | '#') || (special && c == '\\'))
        .unwrap_or(authority_and_path.len());
    let authority = &authority_and_path[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        let close = host_port.find(']')?;
        &host_port[..=close]
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return None;
    }
    parse_host(host)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn hosts(values: &[&str]) -> ResourceHosts {
        ResourceHosts::parse(values.iter().copied()).unwrap()
    }

    fn app(ns: &str, resource: &str) -> ConnectedApp {
        crate::test_support::app(ns, "tool", "resource", Some(resource), None)
    }

    fn host(resource: &str) -> Option<String> {
        host_of(resource).map(|h| h.to_string())
    }

    #[test]
    fn a_bound_host_is_refused_outside_its_namespaces() {
        let h = hosts(&["grafana.example.com=tools,tools-staging"]);
        assert!(h.permits(&app("tools", "https://grafana.example.com/")));
        assert!(h.permits(&app("tools-staging", "https://grafana.example.com/api")));
        let refusal = h
            .refusal(&app("evil", "https://grafana.example.com"))
            .unwrap();
        assert_eq!(refusal.namespace, "evil");
        let message = refusal.to_string();
        for needle in [
            "\"https://grafana.example.com\"",
            "\"grafana.example.com=tools,tools-staging\"",
            "\"evil\"",
            FLAG,
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
        // Hosts no binding matches: any namespace, as without bindings.
        assert!(h.permits(&app("evil", "https://wiki.example.com/")));
        assert!(h.permits(&app("evil", "https://grafana.example.com.evil.test/")));
        // No resource: nothing to refuse.
        let mut none = app("evil", "https://grafana.example.com");
        none.spec.resource = None;
        assert!(h.permits(&none));
        // No bindings at all: everything is permitted, even a resource without a host.
        assert!(ResourceHosts::default().permits(&app("evil", "https://grafana.example.com")));
        assert!(ResourceHosts::default().permits(&app("evil", "not a url")));
    }

    #[test]
    fn spellings_of_the_same_host_do_not_dodge_a_binding() {
        let h = hosts(&[
            "grafana.example.com=tools",
            "10.0.0.7=tools",
            "[fd00::7]=tools",
            "*.bücher.example=tools",
        ]);
        for dodge in [
            "https://Grafana.EXAMPLE.com/",
            "HTTPS://grafana.example.com",
            "https://grafana.example.com./",
            "https://grafana.example.com..:8443/x",
            "https://grafana.example.com:8443/",
            "https://grafana.example.com:99999/",
            "https://user:pass@grafana.example.com/",
            "https://evil.test@grafana.example.com/",
            "https://gr%61fana.example.com/",
            "https://grafana.example.com%2E/",
            "https://grafana\t.example.com/",
            "https:grafana.example.com/",
            "https:\\\\grafana.example.com\\x",
            "  https://grafana.example.com  ",
            "https://ｇｒａｆａｎａ.example.com/",
            "https://grafana。example。com/",
            "https://grafana.example.com?x",
            "https://grafana.example.com#frag",
            "wss://grafana.example.com/socket",
            "https://10.0.0.7/",
            "https://0x0a.0.0.7/",
            "https://167772167/",
            "https://012.0.0.7/",
            "https://10.0.0.7.:443/",
            "https://[fd00:0:0:0:0:0:0:7]/",
            "https://[FD00::0007]:8443/",
            "https://shop.xn--bcher-kva.example/",
            "https://shop.BÜCHER.example/",
        ] {
            let refusal = h.refusal(&app("evil", dodge));
            assert!(
                refusal.is_some(),
                "{dodge:?} dodged the binding (host {:?})",
                host(dodge)
            );
        }
    }

    #[test]
    fn the_host_is_read_as_a_browser_reads_it() {
        // Agreement with the url crate wherever it parses the URL.
        for resource in [
            "https://Grafana.EXAMPLE.com:8443/a?b#c",
            "https://user:pw@grafana.example.com/",
            "https://a@b@grafana.example.com/",
            "https://evil.test\\@grafana.example.com/",
            "https://grafana.example.com#@evil.test/",
            "https://grafana.example.com?@evil.test/",
            "https:grafana.example.com",
            "https:/\\/grafana.example.com/",
            "https://xn--bcher-kva.example/",
            "https://bücher.example/",
            "https://0x7f.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://gr%61fana.example.com/",
            "foo://grafana.example.com/x",
        ] {
            let expected = url::Url::parse(resource)
                .unwrap()
                .host()
                .map(|h| h.to_owned().to_string());
            assert_eq!(host(resource), expected, "{resource:?}");
        }
        assert_eq!(
            host("https://evil.test\\@grafana.example.com/").as_deref(),
            Some("evil.test")
        );
        assert_eq!(
            host("https://a@b@grafana.example.com/").as_deref(),
            Some("grafana.example.com")
        );
        // Trailing dots are dropped (the url crate keeps them).
        assert_eq!(
            host("https://grafana.example.com./").as_deref(),
            Some("grafana.example.com")
        );
        assert_eq!(host("https://1.2.3.4./").as_deref(), Some("1.2.3.4"));
        assert_eq!(host("https://1.2.3.4../").as_deref(), Some("1.2.3.4"));
        assert!(matches!(host_of("https://1.2.3.4../"), Some(Host::Ipv4(_))));
        // No host: unreadable.
        for none in [
            "",
            "grafana.example.com",
            "urn:grafana",
            "mailto:a@grafana.example.com",
            "https://",
            "https://:443/",
            "https://user@/",
            "https://[::1/",
            "https://[::::]/",
            "https://./",
            "https://a b/",
            "https://999.0.0.1/",
            "1https://grafana.example.com",
        ] {
            assert_eq!(host(none), None, "{none:?}");
        }
    }

    #[test]
    fn while_bindings_exist_an_unreadable_host_is_refused() {
        let h = hosts(&["grafana.example.com=tools"]);
        for unreadable in ["https://[::::]/", "urn:grafana", "https://999.0.0.1/"] {
            let refusal = h.refusal(&app("tools", unreadable)).unwrap();
            assert_eq!(refusal.binding, None);
            assert!(refusal.to_string().contains("no host"), "{refusal}");
        }
    }

    #[test]
    fn the_most_specific_binding_applies_alone() {
        let h = hosts(&[
            "*=catch-all *.example.com=platform",
            "grafana.example.com=tools",
            "*.team-a.example.com=team-a",
        ]);
        let allowed = |ns: &str, resource: &str| h.permits(&app(ns, resource));
        // Exact beats wildcards, even those listing other namespaces.
        assert!(allowed("tools", "https://grafana.example.com/"));
        assert!(!allowed("platform", "https://grafana.example.com/"));
        // The longest wildcard beats a shorter one, at any depth below it.
        assert!(allowed("team-a", "https://wiki.team-a.example.com/"));
        assert!(allowed("team-a", "https://a.b.team-a.example.com/"));
        assert!(!allowed("platform", "https://wiki.team-a.example.com/"));
        // A wildcard does not cover its own domain, nor a name that merely ends like it.
        assert!(allowed("platform", "https://team-a.example.com/"));
        assert!(!allowed("team-a", "https://team-a.example.com/"));
        assert!(allowed("platform", "https://evilteam-a.example.com/"));
        assert!(allowed("platform", "https://x.example.com/"));
        // `*` takes every other host, IP addresses included.
        assert!(allowed("catch-all", "https://other.test/"));
        assert!(allowed("catch-all", "https://10.1.2.3/"));
        assert!(!allowed("platform", "https://other.test/"));
        assert!(!allowed("platform", "https://example.com/"));
    }

    #[test]
    fn bindings_are_normalised_and_every_problem_is_reported() {
        let h = hosts(&["Grafana.Example.COM.=tools,tools *.BÜCHER.example=books [FD00::7]=ip"]);
        let written: Vec<String> = h.bindings().iter().map(ToString::to_string).collect();
        assert_eq!(
            written,
            [
                "grafana.example.com=tools",
                "[fd00::7]=ip",
                "*.xn--bcher-kva.example=books"
            ]
        );
        assert!(ResourceHosts::parse([""]).unwrap().is_empty());
        assert!(ResourceHosts::parse(["  \n "]).unwrap().is_empty());

        let problems = ResourceHosts::parse([
            "grafana.example.com",
            "https://x.example.com=a",
            "x.example.com:443=a",
            "x.example.com/path=a",
            "u@x.example.com=a",
            "*=",
            "a.*.example.com=a",
            "*example.com=a",
            "**.example.com=a",
            "*.10.0.0.1=a",
            "[::::]=a",
            "bad_host!.example=a",
            "y.example.com=Tools,ok,-x,",
            "dup.example.com=a DUP.example.com.=b",
            "=a",
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 15, "{problems:#?}");
        assert!(
            problems.iter().all(|p| p.starts_with("--resource-hosts: ")),
            "{problems:#?}"
        );
        let joined = problems.join("\n");
        for needle in [
            "\"grafana.example.com\": not a binding",
            "\"Tools\", \"-x\", \"\" are not a namespace name",
            "\"DUP.example.com.=b\" and \"dup.example.com=a\" both bind dup.example.com",
            "*. applies to domain names",
        ] {
            assert!(joined.contains(needle), "{needle}:\n{joined}");
        }
    }
}
