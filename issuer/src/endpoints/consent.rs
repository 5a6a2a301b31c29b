//! `POST /consent`: the person allows or denies, then the authorization request continues.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use super::authorize::{carried_request, proceed, validate};
use crate::error::{Error, ErrorCode, Result};
use crate::http::response::redirect;
use crate::params::Form;
use crate::state::Shared;

/// `POST /consent`: the person allows or denies.
pub(crate) async fn consent(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response> {
    iss.check_csrf(&headers, form.get("csrf"))?;
    let req = validate(&iss, carried_request(&form)?).await?;
    let Some((_, session)) = iss.session(&headers).await? else {
        // Signed out meanwhile: start again (shows the login page).
        return Ok(redirect(&format!("/authorize?{}", req.params.to_query())));
    };
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            return Err(req.error(
                iss.issuer(),
                ErrorCode::AccessDenied,
                "the person denied access",
            ));
        }
        _ => return Err(Error::invalid_request("decision must be allow or deny")),
    }
    proceed(&iss, &headers, req, Some(session), true)
        .await
        .map(IntoResponse::into_response)
}
