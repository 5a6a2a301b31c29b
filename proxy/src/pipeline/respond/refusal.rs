//! Refusals become responses here and only here: the status, the standard, generic JSON body
//! (`{"error": …, "error_description": …}`) and, for 401 and 403, the RFC 6750 / RFC 9728
//! `WWW-Authenticate` challenge that lets an MCP client find the issuer. The detail of a refusal
//! goes to the log where it happens, never to the client.
//!
//! Every stage of the pipeline ends a request it refuses with a [`Refusal`]; the sign-in flow's
//! [`Failure`] and the forwarder's [`Failed`] are refusals too.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};

use crate::app::App;
use crate::forward::Failed;
use crate::login::Failure;
use crate::metrics::Outcome;
use crate::wire::Body;

/// Why a request is refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Missing, repeated, invalid or conflicting `Host` or `:authority` (400, connection closed).
    BadHost,
    /// An HTTP/1 header section over `--max-header-bytes` (431, connection closed).
    HeadTooLarge,
    /// A method with a lower-case letter (400).
    LowerCaseMethod,
    /// A path the normaliser refuses (400).
    MalformedPath,
    /// A method the proxy's own endpoint does not take (405; what to use instead).
    MethodNotAllowed(&'static str),
    /// The issuer's metadata and keys are not loaded yet (503).
    NotReady,
    /// A sign-out POST from another origin (403).
    CrossOriginSignOut,
    /// A sign-in step failed.
    Login(Failure),
    /// A malformed `Authorization` field (400 with a challenge).
    MalformedAuthorization,
    /// A bearer token refused (401 with a challenge; the description).
    InvalidToken(&'static str),
    /// No credentials (401 with a challenge).
    Unauthenticated,
    /// The access rules refuse the caller (403).
    Denied,
    /// The caller lacks a scope the rule requires (403 with a challenge naming them).
    InsufficientScope(Vec<String>),
    /// The tool gave no answer.
    Forward(Failed),
}

impl Refusal {
    /// The outcome a refusal counts as (the sign-in and forwarding ones depend on where they
    /// happen: the caller says).
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Refusal::BadHost
            | Refusal::HeadTooLarge
            | Refusal::LowerCaseMethod
            | Refusal::MalformedPath
            | Refusal::MethodNotAllowed(_)
            | Refusal::CrossOriginSignOut
            | Refusal::MalformedAuthorization => Outcome::bad_request,
            Refusal::NotReady => Outcome::not_ready,
            Refusal::Login(_) => Outcome::callback_error,
            Refusal::InvalidToken(_) => Outcome::invalid_token,
            Refusal::Unauthenticated => Outcome::unauthenticated,
            Refusal::Denied => Outcome::forbidden,
            Refusal::InsufficientScope(_) => Outcome::insufficient_scope,
            Refusal::Forward(Failed::BadTarget | Failed::BodyStalled) => Outcome::bad_request,
            Refusal::Forward(Failed::Tool(_) | Failed::Timeout) => Outcome::upstream_error,
        }
    }
}

/// The response for a refusal of a `method` request for the normalised `path` (which names the
/// scopes a challenge asks for).
pub(crate) fn respond(refusal: Refusal, app: &App, method: &str, path: &str) -> Response<Body> {
    use Refusal as R;
    match refusal {
        R::BadHost => close(error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing, repeated, invalid or conflicting Host header field or :authority",
        )),
        R::HeadTooLarge => {
            let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
            *resp.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            close(resp)
        }
        R::LowerCaseMethod => bad_request("request methods are upper case"),
        R::MalformedPath => bad_request("malformed request path"),
        R::MethodNotAllowed(what) => {
            error_response(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", what)
        }
        R::NotReady => {
            let mut resp = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the issuer's metadata and keys are not loaded yet",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        R::CrossOriginSignOut => error_response(
            StatusCode::FORBIDDEN,
            "access_denied",
            "cross-origin sign-out refused",
        ),
        R::Login(failure) => login_failed(failure),
        R::MalformedAuthorization => {
            let scopes = scopes_for(app, method, path);
            let error = ("invalid_request", "malformed Authorization header");
            let mut resp = unauthorized(app, scopes, Some(error));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp
        }
        R::InvalidToken(description) => {
            let scopes = scopes_for(app, method, path);
            unauthorized(app, scopes, Some(("invalid_token", description)))
        }
        R::Unauthenticated => unauthorized(app, scopes_for(app, method, path), None),
        R::Denied => error_response(
            StatusCode::FORBIDDEN,
            "access_denied",
            "you may not access this resource",
        ),
        R::InsufficientScope(required) => {
            let error = (
                "insufficient_scope",
                "the access token lacks a required scope",
            );
            let mut resp = error_response(StatusCode::FORBIDDEN, error.0, error.1);
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                challenge(app, &required, Some(error)),
            );
            resp
        }
        R::Forward(failed) => forward_failed(failed),
    }
}

/// A small JSON error response: `{"error": code, "error_description": description}`.
fn error_response(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": code, "error_description": description }).to_string();
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn bad_request(description: &str) -> Response<Body> {
    error_response(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Asks the connection to close after this response.
fn close(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A sign-in step that failed.
fn login_failed(failure: Failure) -> Response<Body> {
    let (status, code, description) = match failure {
        Failure::Internal(d) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", d),
        Failure::IssuerMetadata => (
            StatusCode::BAD_GATEWAY,
            "server_error",
            "issuer metadata is invalid",
        ),
        Failure::Invalid(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
        Failure::NotSignedIn { denied } => (
            StatusCode::FORBIDDEN,
            if denied {
                "access_denied"
            } else {
                "login_failed"
            },
            "the issuer did not sign you in",
        ),
        Failure::Issuer(d) => (StatusCode::BAD_GATEWAY, "login_failed", d),
        Failure::MayNotSignIn => (
            StatusCode::FORBIDDEN,
            "access_denied",
            "you may not use this app",
        ),
    };
    error_response(status, code, description)
}

/// The tool gave no answer: 400, 408, 502 or 504 (the detail goes to the log).
fn forward_failed(failed: Failed) -> Response<Body> {
    match failed {
        Failed::BadTarget => bad_request("malformed request target"),
        Failed::BodyStalled => close(error_response(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body stalled",
        )),
        Failed::Tool(e) => {
            tracing::warn!(error = %e, "upstream request failed");
            error_response(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "the tool is not reachable",
            )
        }
        Failed::Timeout => error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the tool did not answer in time",
        ),
    }
}

/// Quotes a value for an auth-param (RFC 9110 quoted-string).
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

/// `WWW-Authenticate: Bearer resource_metadata="…", scope="…"[, error="…"]`.
fn challenge(app: &App, scopes: &[String], error: Option<(&str, &str)>) -> HeaderValue {
    let mut v = format!(
        "Bearer resource_metadata=\"{}\"",
        quoted(&app.cfg.resource_metadata_url)
    );
    if !scopes.is_empty() {
        v.push_str(&format!(", scope=\"{}\"", quoted(&scopes.join(" "))));
    }
    if let Some((code, desc)) = error {
        v.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quoted(desc)
        ));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// The scopes worth naming in a challenge for this request.
fn scopes_for<'a>(app: &'a App, method: &str, path: &str) -> &'a [String] {
    match app.cfg.policy.access.rule_for(method, path) {
        Some(rule) if !rule.scopes.is_empty() => &rule.scopes,
        _ => &app.cfg.policy.scopes,
    }
}

fn unauthorized(app: &App, scopes: &[String], error: Option<(&str, &str)>) -> Response<Body> {
    let (code, desc) = error.unwrap_or(("unauthenticated", "authentication required"));
    let mut resp = error_response(StatusCode::UNAUTHORIZED, code, desc);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge(app, scopes, error));
    resp
}
