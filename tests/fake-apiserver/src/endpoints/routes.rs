//! Where a request goes: the API paths (`/version`, `/api`, `/apis`, group, version,
//! resource, namespace, object, `status` subresource) resolved against the served resources.

use crate::error::{ApiError, Reason, Result};
use crate::resources::ResourceType;
use crate::store::Store;

/// Where a request goes.
#[derive(Debug)]
pub(super) enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Object {
        rt: ResourceType,
        namespace: Option<String>,
        name: Option<String>,
        status: bool,
    },
}

pub(super) fn not_found_path() -> ApiError {
    ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    )
}

pub(super) fn route(store: &Store, path: &str) -> Result<Route> {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["apis", group] => return Ok(Route::Group((*group).to_owned())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found_path()),
    };
    if rest.is_empty() {
        return Ok(Route::Resources(group.to_owned(), version.to_owned()));
    }
    let namespaced_path = rest[0] == "namespaces"
        && rest.len() >= 3
        && !(group.is_empty() && rest.len() == 3 && (rest[2] == "status" || rest[2] == "finalize"));
    let (namespace, plural, name, sub) = if namespaced_path {
        (
            Some(rest[1]),
            rest[2],
            rest.get(3).copied(),
            rest.get(4).copied(),
        )
    } else {
        (None, rest[0], rest.get(1).copied(), rest.get(2).copied())
    };
    if (namespaced_path && rest.len() > 5) || (!namespaced_path && rest.len() > 3) {
        return Err(not_found_path());
    }
    let rt = store
        .find(group, version, plural)
        .ok_or_else(not_found_path)?;
    if namespace.is_some() && !rt.namespaced() {
        return Err(not_found_path());
    }
    if namespace.is_none() && rt.namespaced() && name.is_some() {
        return Err(not_found_path());
    }
    let status = match sub {
        None => false,
        Some("status") if rt.status_subresource => true,
        Some(_) => return Err(not_found_path()),
    };
    Ok(Route::Object {
        rt,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        status,
    })
}
