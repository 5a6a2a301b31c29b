//! Origins: the origin of a URL, `--cors-allowed-origins`, and the [`Cors`] settings the
//! cross-origin checks of `crate::http::cors` read (with the clients' redirect-URI origins).

use url::Url;

/// The ASCII serialisation of a URL's origin (`https://app.example`, `http://127.0.0.1:8080`),
/// or `None` for URLs without a tuple origin (custom schemes, `file:`).
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let origin = Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Validates `--cors-allowed-origins`: each entry must be an http(s) origin exactly as browsers
/// send it (scheme, host and non-default port; no path, not even a trailing slash).
pub(crate) fn parse_origins(values: &[String]) -> Result<Vec<String>, Vec<String>> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let ok = (v.starts_with("https://") || v.starts_with("http://"))
            && origin_of(v).is_some_and(|o| o == v);
        if ok {
            out.push(v.to_string());
        } else {
            problems.push(format!(
                "--cors-allowed-origins: {v:?} is not an origin such as https://app.example"
            ));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The CORS settings of an issuer.
#[derive(Debug, Default)]
pub(crate) struct Cors {
    /// `--cors-allowed-origins`.
    pub allowed: Vec<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://App.Example:443/cb?x=1").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/cb").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("com.example.app:/cb"), None);
        assert_eq!(
            parse_origins(&["https://a.example".into(), " http://127.0.0.1:3000 ".into()]).unwrap(),
            vec!["https://a.example", "http://127.0.0.1:3000"]
        );
        for bad in [
            "https://a.example/",
            "https://A.example",
            "https://a.example:443",
            "a.example",
            "*",
            "null",
            "ftp://a.example",
        ] {
            assert!(parse_origins(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
