//! The proxy's own endpoints, matched on the normalised path before any access rule (they must
//! never reach the tool): RFC 9728 protected resource metadata, and under `--proxy-prefix` the
//! sign-in start, the callback and the sign-out. The sign-in flow ([`crate::login`]) decides;
//! this stage reads the request for it and answers with what [`super::respond`] builds.

use std::sync::Arc;

use http::{Method, Request};

use super::respond::{Refusal, metadata_document, redirect, sign_out_page};
use super::{Done, done};
use crate::app::App;
use crate::login::{self, SignOutOrigin};
use crate::metrics::Outcome;
use crate::session::read_cookies;
use crate::state::Shared;
use crate::wire::ReqBody;

/// RFC 9728 well-known path.
pub(crate) const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// What an own endpoint answered: a response, or a refusal.
pub(crate) enum Answer {
    /// The answer.
    Done(Done),
    /// Refused.
    Refused {
        /// Why.
        refusal: Refusal,
        /// What it counts as.
        outcome: Outcome,
        /// `Set-Cookie` values that go with the refusal.
        cookies: Vec<String>,
        /// Who, when the refusal comes after signing in (for the access log).
        user: Option<String>,
    },
}

fn refused(refusal: Refusal, outcome: Outcome) -> Answer {
    Answer::Refused {
        refusal,
        outcome,
        cookies: Vec::new(),
        user: None,
    }
}

/// The answer of the own endpoint `path` names, or `None` when it names none (an unknown path
/// under the prefix falls through to the rules).
pub(crate) async fn serve(
    shared: &Shared,
    app: &Arc<App>,
    req: &Request<ReqBody>,
    path: &str,
) -> Option<Answer> {
    if path == METADATA_PATH
        || (!app.cfg.resource_path.is_empty()
            && path.strip_prefix(METADATA_PATH) == Some(app.cfg.resource_path.as_str()))
    {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let r = Refusal::MethodNotAllowed("use GET");
            return Some(refused(r, Outcome::bad_request));
        }
        return Some(Answer::Done(done(
            metadata_document(app),
            Outcome::metadata,
        )));
    }
    let prefix = shared.settings.proxy_prefix.as_str();
    let own = path.strip_prefix(prefix).filter(|r| r.starts_with('/'))?;
    // Each endpoint reads what it needs.
    match own {
        "/callback" => Some(callback(shared, app, req).await),
        "/start" => Some(start(shared, app, req)),
        "/sign_out" => Some(sign_out(shared, app, req).await),
        _ => None,
    }
}

fn not_ready() -> Answer {
    refused(Refusal::NotReady, Outcome::not_ready)
}

/// `/callback`: the redirect URI.
async fn callback(shared: &Shared, app: &Arc<App>, req: &Request<ReqBody>) -> Answer {
    let Some(provider) = shared.provider() else {
        return not_ready();
    };
    let cookies = read_cookies(req.headers(), &app.names);
    let query = req.uri().query();
    let (result, who) = login::callback(shared.login(), app, &provider, query, &cookies).await;
    let user = who.map(|w| w.sub);
    match result {
        Ok(to) => Answer::Done(Done {
            resp: redirect(to),
            outcome: Outcome::callback,
            user,
        }),
        Err(login::Refused { why, cookies }) => Answer::Refused {
            refusal: Refusal::Login(why),
            outcome: Outcome::callback_error,
            cookies,
            user,
        },
    }
}

/// `/start?rd=…`: sends the browser to sign in.
fn start(shared: &Shared, app: &Arc<App>, req: &Request<ReqBody>) -> Answer {
    let Some(provider) = shared.provider() else {
        return not_ready();
    };
    let rd = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| "/".into());
    let cookies = read_cookies(req.headers(), &app.names);
    let prompt = shared.settings.prompt.as_deref();
    match login::start_login(app, &provider, prompt, &rd, &cookies.logins) {
        Ok(to) => Answer::Done(done(redirect(to), Outcome::login_redirect)),
        Err(failure) => refused(Refusal::Login(failure), Outcome::login_redirect),
    }
}

/// `/sign_out`: signs out when the request comes from the proxy's origin, else asks.
async fn sign_out(shared: &Shared, app: &Arc<App>, req: &Request<ReqBody>) -> Answer {
    let method = req.method();
    if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
        let r = Refusal::MethodNotAllowed("use GET or POST");
        return refused(r, Outcome::bad_request);
    }
    let from = login::sign_out_origin(method, req.headers(), &app.cfg.origin);
    if from != SignOutOrigin::Own {
        if *method == Method::POST {
            return refused(Refusal::CrossOriginSignOut, Outcome::bad_request);
        }
        let prefix = shared.settings.proxy_prefix.as_str();
        let page = login::sign_out_confirmation(prefix, req.uri().query());
        return Answer::Done(done(sign_out_page(page), Outcome::sign_out));
    }
    let cookies = read_cookies(req.headers(), &app.names);
    let provider = shared.provider();
    let to = login::sign_out(
        shared.login(),
        app,
        provider.as_deref(),
        req.uri().query(),
        &cookies,
    )
    .await;
    Answer::Done(done(redirect(to), Outcome::sign_out))
}
