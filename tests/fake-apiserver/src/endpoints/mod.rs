//! The HTTP surface: every request enters at [`handle`], is logged, routed (`routes`) and
//! answered: discovery (`discovery`), the verbs on objects and collections (`objects`, with the
//! parameters of `query`), or a watch stream (`watch`). Errors become `Status` responses here
//! and nowhere else.

mod discovery;
mod objects;
mod query;
mod routes;
mod watch;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::Value;

use self::objects::{ObjectRequest, object_request};
use self::routes::{Route, route};
use self::watch::{WatchRequest, watch_response};
use crate::config::Config;
use crate::error::{ApiError, Result};
use crate::store::Store;

/// State shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) changed: tokio::sync::watch::Sender<u64>,
    pub(crate) config: Config,
    pub(crate) requests: Mutex<Vec<String>>,
    pub(crate) address: Mutex<String>,
}

const REQUEST_LOG_LIMIT: usize = 200_000;

impl Shared {
    pub(crate) fn new(store: Store, config: Config) -> Self {
        let rv = store.resource_version();
        Shared {
            store: Mutex::new(store),
            changed: tokio::sync::watch::Sender::new(rv),
            config,
            requests: Mutex::new(Vec::new()),
            address: Mutex::new(String::new()),
        }
    }

    /// Locks the store; a poisoned lock (a panic elsewhere) still yields the data.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn notify(&self, rv: u64) {
        self.changed.send_replace(rv);
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.reason.code(), &error.to_status())
}

/// The single entry point of every request.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut log = shared.requests.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() < REQUEST_LOG_LIMIT {
            log.push(format!("{method} {uri}"));
        }
    }
    match dispatch(&shared, &method, &uri, &headers, &body) {
        Ok(Reply::Json(code, value)) => json_response(code, &value),
        Ok(Reply::Watch(watch)) => watch_response(shared, *watch),
        Err(error) => {
            tracing::debug!(%method, path = uri.path(), reason = error.reason.as_str(), "request refused");
            error_response(&error)
        }
    }
}

/// What a request is answered with.
enum Reply {
    Json(u16, Value),
    Watch(Box<WatchRequest>),
}

fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply> {
    let query = query::query_map(uri);
    let mut store = shared.store();
    let route = route(&store, uri.path())?;
    let reply = match route {
        Route::Version => Reply::Json(200, discovery::version()),
        Route::CoreVersions => {
            let address = shared.address.lock().map(|a| a.clone()).unwrap_or_default();
            Reply::Json(200, discovery::core_versions(&address))
        }
        Route::Groups => Reply::Json(200, discovery::groups(&store)),
        Route::Group(name) => Reply::Json(200, discovery::group(&store, &name)?),
        Route::Resources(group, version) => {
            Reply::Json(200, discovery::resource_list(&store, &group, &version)?)
        }
        Route::Object {
            rt,
            namespace,
            name,
            status,
        } => {
            let ns = namespace.clone().unwrap_or_default();
            let counted = if status {
                format!("{}/status", rt.plural)
            } else {
                rt.plural.clone()
            };
            let verb = match (method.as_str(), name.is_some()) {
                ("POST", false) => "create",
                ("PUT", true) => "update",
                ("PATCH", true) => "patch",
                ("DELETE", true) => "delete",
                ("DELETE", false) => "deletecollection",
                _ => "",
            };
            if !verb.is_empty() {
                store.count_request(verb, &counted);
            }
            let before = store.resource_version();
            let request = ObjectRequest {
                rt: &rt,
                ns: &ns,
                in_namespace: namespace.is_some(),
                name: name.as_deref(),
                status,
                method,
                query: &query,
                headers,
                body,
            };
            let reply = object_request(&mut store, &request)?;
            let after = store.resource_version();
            if after != before {
                shared.notify(after);
            }
            reply
        }
    };
    Ok(reply)
}
