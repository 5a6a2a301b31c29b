//! The guard: what every request must pass before anything matches its path, whichever parser
//! read it (the proxy's HTTP/1.1 loop, hyper's HTTP/1.1 or HTTP/2).
//!
//! In order: the `Host` check (RFC 9112 section 3.2, RFC 9113 section 8.3.1: the codec's
//! finding, [`BadHost`]); the size of an HTTP/1 header section; a method with a lower-case
//! letter; then path normalisation ([`crate::path`]) — before anything matches a path, so that
//! no spelling slips past a rule, and the tool receives exactly the path that was authorised.

use http::{Method, Request};

use super::respond::Refusal;
use crate::config::Settings;
use crate::path::{NormalPath, normalise};
use crate::wire::{BadHost, ReqBody};

/// The request's normalised path, or why it is refused.
#[inline]
pub(crate) fn check(settings: &Settings, req: &Request<ReqBody>) -> Result<NormalPath, Refusal> {
    if req.extensions().get::<BadHost>().is_some() {
        return Err(Refusal::BadHost);
    }
    // HTTP/1: hyper's limit is on its read buffer, which a reused keep-alive connection may
    // already have grown, so count the header section itself. (HTTP/2 enforces
    // `max_header_list_size` per request already.)
    if req.version() != http::Version::HTTP_2 && header_bytes(req) > settings.max_header_bytes {
        return Err(Refusal::HeadTooLarge);
    }
    // Methods are case-sensitive (RFC 9110 §9.1), but Flask, Django and others upper-case them
    // before routing: `post` runs the POST view. A method with a lower-case letter is refused
    // here, before any rule is matched, where every request passes whichever parser read it.
    if has_lower_case(req.method()) {
        return Err(Refusal::LowerCaseMethod);
    }
    normalise(req.uri().path()).map_err(|e| {
        tracing::debug!(reason = %e, "path refused");
        Refusal::MalformedPath
    })
}

/// Size of a request's header section as sent: request line and `name: value\r\n` lines.
fn header_bytes(req: &Request<ReqBody>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// Whether a method has a lower-case letter (the standard ones are static strings: a few bytes).
fn has_lower_case(method: &Method) -> bool {
    method.as_str().bytes().any(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::has_lower_case;
    use http::Method;

    #[test]
    fn methods_with_lower_case_letters_are_told_apart() {
        for m in ["GET", "POST", "PROPFIND", "VERSION-CONTROL", "M_1"] {
            assert!(
                !has_lower_case(&Method::from_bytes(m.as_bytes()).unwrap()),
                "{m}"
            );
        }
        for m in ["post", "Post", "gET", "delete"] {
            assert!(
                has_lower_case(&Method::from_bytes(m.as_bytes()).unwrap()),
                "{m}"
            );
        }
    }
}
