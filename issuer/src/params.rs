//! Request parameters from a query string or an `application/x-www-form-urlencoded` body.
//!
//! RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once", and
//! parameters sent without a value are treated as omitted. Sizes are bounded so that oversized
//! input is refused with `invalid_request` before anything else looks at it.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http::{Method, header};

use crate::error::Error;

/// Longest accepted parameter value (an `id_token_hint` fits comfortably).
pub(crate) const MAX_VALUE: usize = 4096;
/// Most parameters accepted in one request.
pub(crate) const MAX_PARAMS: usize = 64;
/// Largest accepted form body.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Parsed parameters, each name at most once; empty values dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` input.
    pub(crate) fn parse(input: &[u8]) -> Result<Self, Error> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if name.len() > 64 || value.len() > MAX_VALUE {
                return Err(Error::invalid_request("a parameter is too long"));
            }
            if out.len() >= MAX_PARAMS {
                return Err(Error::invalid_request("too many parameters"));
            }
            if out.iter().any(|(n, _)| *n == name) {
                return Err(Error::invalid_request(format!(
                    "parameter {} is repeated",
                    safe_name(&name)
                )));
            }
            out.push((name.into_owned(), value.into_owned()));
        }
        out.retain(|(_, v)| !v.is_empty());
        Ok(Self(out))
    }

    /// The value of a parameter, if present and non-empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required parameter.
    pub(crate) fn require(&self, name: &'static str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| Error::invalid_request(format!("missing parameter {name}")))
    }

    /// Every parameter, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Builds from pairs (tests and internal use).
    pub(crate) fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Re-encodes as a query string.
    pub(crate) fn to_query(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (n, v) in &self.0 {
            s.append_pair(n, v);
        }
        s.finish()
    }

    /// Removes a parameter.
    pub(crate) fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }
}

/// A parameter name fit to echo in an error description.
fn safe_name(name: &str) -> String {
    if name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        name.to_string()
    } else {
        "(unprintable)".to_string()
    }
}

/// Parameters from the query string.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let q = parts.uri.query().unwrap_or("");
        if q.len() > MAX_BODY {
            return Err(Error::invalid_request("the query string is too long"));
        }
        Params::parse(q.as_bytes()).map(Query)
    }
}

/// Parameters from a form body (POST) or, for GET, from the query string (OIDC allows both for
/// the authorization, userinfo and end-session endpoints).
#[derive(Clone, Debug, Default)]
pub(crate) struct Form(pub Params);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if req.method() != Method::POST {
            let (mut parts, _) = req.into_parts();
            return Query::from_request_parts(&mut parts, state)
                .await
                .map(|q| Form(q.0));
        }
        if !is_form(req.headers()) {
            return Err(Error::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| Error::invalid_request("the request body is too large"))?;
        parse_body(&body).map(Form)
    }
}

/// Whether the request's media type is `application/x-www-form-urlencoded`.
fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The undecoded parameters of a request (query string for GET, form body for POST), for the
/// authorization endpoint, which must answer a malformed request with a redirect to the client
/// or a page for the person rather than JSON (RFC 6749 §4.1.2.1). `Err` when even the raw input
/// is unusable (too large, not a form).
#[derive(Debug)]
pub(crate) struct RawForm(pub Result<Bytes, Error>);

impl<S: Send + Sync> FromRequest<S> for RawForm {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        if req.method() != Method::POST {
            let q = req.uri().query().unwrap_or("");
            if q.len() > MAX_BODY {
                return Ok(Self(Err(Error::invalid_request(
                    "the query string is too long",
                ))));
            }
            return Ok(Self(Ok(Bytes::copy_from_slice(q.as_bytes()))));
        }
        if !is_form(req.headers()) {
            return Ok(Self(Err(Error::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ))));
        }
        Ok(Self(
            axum::body::to_bytes(req.into_body(), MAX_BODY)
                .await
                .map_err(|_| Error::invalid_request("the request body is too large")),
        ))
    }
}

/// The value of `name` in raw parameters if it occurs exactly once, non-empty and not too long;
/// looks at no more than [`MAX_PARAMS`] pairs past the limit (enough to see a repetition).
pub(crate) fn single(raw: &[u8], name: &str) -> Option<String> {
    let mut found = None;
    for (n, v) in url::form_urlencoded::parse(raw).take(2 * MAX_PARAMS) {
        if n == name {
            if found.is_some() {
                return None;
            }
            found = Some(v);
        }
    }
    found
        .filter(|v| !v.is_empty() && v.len() <= MAX_VALUE)
        .map(|v| v.into_owned())
}

/// The name of the first repeated parameter, if any.
pub(crate) fn first_repeated(raw: &[u8]) -> Option<String> {
    let mut seen: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    for (n, _) in url::form_urlencoded::parse(raw).take(2 * MAX_PARAMS) {
        if seen.contains(&n) {
            return Some(n.into_owned());
        }
        seen.push(n);
    }
    None
}

fn parse_body(body: &Bytes) -> Result<Params, Error> {
    Params::parse(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn single_and_first_repeated_look_at_raw_input() {
        let raw = b"client_id=a&state=&x=1&x=2&redirect_uri=https%3A%2F%2Fr.example%2Fcb";
        assert_eq!(single(raw, "client_id").as_deref(), Some("a"));
        assert_eq!(
            single(raw, "redirect_uri").as_deref(),
            Some("https://r.example/cb")
        );
        assert_eq!(single(raw, "x"), None);
        assert_eq!(single(raw, "state"), None);
        assert_eq!(single(raw, "nonce"), None);
        let long = format!("a={}", "y".repeat(MAX_VALUE + 1));
        assert_eq!(single(long.as_bytes(), "a"), None);
        assert_eq!(first_repeated(raw).as_deref(), Some("x"));
        assert_eq!(first_repeated(b"a=1&b=2"), None);
    }

    #[test]
    fn repeated_parameter_is_refused() {
        let e = Params::parse(b"a=1&b=2&a=3").unwrap_err();
        assert_eq!(e.to_string(), "invalid_request: parameter a is repeated");
    }

    #[test]
    fn empty_values_are_omitted_and_decoding_works() {
        let p = Params::parse(b"scope=openid+email&state=&x=%2F").unwrap();
        assert_eq!(p.get("scope"), Some("openid email"));
        assert_eq!(p.get("state"), None);
        assert_eq!(p.get("x"), Some("/"));
    }

    #[test]
    fn oversized_values_are_refused() {
        let long = format!("a={}", "x".repeat(MAX_VALUE + 1));
        assert!(Params::parse(long.as_bytes()).is_err());
        let many: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=1&")).collect();
        assert!(Params::parse(many.as_bytes()).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small xorshift generator: deterministic, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let len = (x % 300) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(match x % 6 {
                    0 => b'%',
                    1 => b'=',
                    2 => b'&',
                    3 => b'+',
                    _ => (x >> 8) as u8,
                });
            }
            let _ = Params::parse(&buf);
        }
    }

    #[test]
    fn unprintable_names_are_not_echoed() {
        let e = Params::parse(b"%3Cscript%3E=1&%3Cscript%3E=2").unwrap_err();
        assert!(!e.to_string().contains('<'));
    }
}
