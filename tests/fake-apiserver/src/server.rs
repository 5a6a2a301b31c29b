//! The HTTP surface: path routing, discovery, verbs, and watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use futures::SinkExt;
use futures::channel::mpsc;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use crate::error::{ApiError, Reason, Result};
use crate::patch::PatchType;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{
    DeleteOptions, Event, EventKind, ListOptions, Store, WriteOptions, resource_id,
};

/// How the server behaves; see [`crate::FakeApiServer::start_with`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How often an idle watch with `allowWatchBookmarks=true` gets a `BOOKMARK` (the real
    /// server sends one about every minute; tests want it sooner).
    pub bookmark_interval: Duration,
    /// How many watch events are retained; resuming from an older resourceVersion is 410 Gone.
    pub history_limit: usize,
    /// The default watch timeout when a request gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bookmark_interval: Duration::from_secs(5),
            history_limit: 100_000,
            default_watch_timeout: Duration::from_secs(1800),
        }
    }
}

/// State shared by all connections.
#[derive(Debug)]
pub struct Shared {
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

/// Where a request goes.
#[derive(Debug)]
enum Route {
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

fn not_found_path() -> ApiError {
    ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    )
}

fn route(store: &Store, path: &str) -> Result<Route> {
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

fn discovery_groups(store: &Store) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for rt in store.resources() {
        if rt.group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == rt.group) {
            Some((_, versions)) => {
                if !versions.contains(&rt.version) {
                    versions.push(rt.version.clone());
                }
            }
            None => groups.push((rt.group.clone(), vec![rt.version.clone()])),
        }
    }
    groups
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

fn resource_list(store: &Store, group: &str, version: &str) -> Result<Value> {
    let mut resources = Vec::new();
    for rt in store
        .resources()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced(),
            "kind": rt.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": rt.short_names,
        }));
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced(),
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return Err(not_found_path());
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query.get(name).is_some_and(|v| v == "true" || v == "1")
}

fn write_options(query: &HashMap<String, String>, headers: &HeaderMap) -> Result<WriteOptions> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported dryRun value: {other}"
            )));
        }
    };
    // Like the real server, the default manager of a non-apply write is the user agent's
    // product name.
    let field_manager = query.get("fieldManager").cloned().or_else(|| {
        headers
            .get(header::USER_AGENT)
            .and_then(|ua| ua.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .map(str::to_owned)
    });
    Ok(WriteOptions {
        field_manager,
        force: flag(query, "force"),
        dry_run,
    })
}

fn list_options(query: &HashMap<String, String>) -> Result<ListOptions> {
    let limit = match query.get("limit") {
        Some(l) if !l.is_empty() => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        ),
        _ => None,
    };
    Ok(ListOptions {
        labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?,
        limit,
        continue_token: query.get("continue").cloned(),
        resource_version: query.get("resourceVersion").cloned(),
        resource_version_match: query
            .get("resourceVersionMatch")
            .cloned()
            .filter(|m| !m.is_empty()),
    })
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
    let query = query_map(uri);
    let mut store = shared.store();
    let route = route(&store, uri.path())?;
    let reply = match route {
        Route::Version => Reply::Json(
            200,
            json!({
                "major": "1", "minor": "34", "gitVersion": "v1.34.0-keyway-fake-apiserver",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "",
                "compiler": "rustc", "platform": "linux/amd64"
            }),
        ),
        Route::CoreVersions => {
            let address = shared.address.lock().map(|a| a.clone()).unwrap_or_default();
            Reply::Json(
                200,
                json!({
                    "kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]
                }),
            )
        }
        Route::Groups => {
            let groups: Vec<Value> = discovery_groups(&store)
                .iter()
                .map(|(g, v)| group_json(g, v))
                .collect();
            Reply::Json(
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        Route::Group(name) => {
            let groups = discovery_groups(&store);
            let (_, versions) = groups
                .iter()
                .find(|(g, _)| *g == name)
                .ok_or_else(not_found_path)?;
            let mut group = group_json(&name, versions);
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            Reply::Json(200, group)
        }
        Route::Resources(group, version) => {
            Reply::Json(200, resource_list(&store, &group, &version)?)
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
            let reply = object_request(
                &mut store,
                &rt,
                &ns,
                namespace.is_some(),
                name.as_deref(),
                status,
                method,
                &query,
                headers,
                body,
            )?;
            let after = store.resource_version();
            if after != before {
                shared.notify(after);
            }
            reply
        }
    };
    Ok(reply)
}

fn parse_body(body: &Bytes) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

fn delete_options(query: &HashMap<String, String>, body: &Bytes) -> Result<DeleteOptions> {
    let options = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(body)?
    };
    let propagation = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| query.get("propagationPolicy").cloned())
        .or_else(
            || match options.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan".to_owned()),
                _ => None,
            },
        );
    let dry_run = options
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|v| v == "All"))
        || query.get("dryRun").is_some_and(|d| d == "All");
    Ok(DeleteOptions {
        propagation,
        uid: options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource_version: options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
        dry_run,
    })
}

#[allow(clippy::too_many_arguments)]
fn object_request(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    in_namespace: bool,
    name: Option<&str>,
    status: bool,
    method: &Method,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply> {
    let method_not_allowed = || {
        ApiError::new(
            Reason::MethodNotAllowed,
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    };
    match (method.as_str(), name) {
        ("GET", Some(name)) => Ok(Reply::Json(200, store.get(rt, ns, name)?)),
        ("GET", None) if flag(query, "watch") => {
            Ok(Reply::Watch(Box::new(WatchRequest::parse(rt, ns, query)?)))
        }
        ("GET", None) => {
            let options = list_options(query)?;
            let list = store.list(rt, ns, &options)?;
            let mut metadata = json!({"resourceVersion": list.resource_version.to_string()});
            if let Some(token) = list.continue_token {
                metadata["continue"] = json!(token);
            }
            if let Some(remaining) = list.remaining {
                metadata["remainingItemCount"] = json!(remaining);
            }
            Ok(Reply::Json(
                200,
                json!({
                    "kind": format!("{}List", rt.kind),
                    "apiVersion": rt.api_version(),
                    "metadata": metadata,
                    "items": list.items,
                }),
            ))
        }
        ("POST", None) if rt.namespaced() && !in_namespace => Err(method_not_allowed()),
        ("POST", None) => {
            let created =
                store.create(rt, ns, parse_body(body)?, &write_options(query, headers)?)?;
            Ok(Reply::Json(201, created))
        }
        ("PUT", Some(name)) => {
            let updated = store.update(
                rt,
                ns,
                name,
                parse_body(body)?,
                status,
                &write_options(query, headers)?,
            )?;
            Ok(Reply::Json(200, updated))
        }
        ("PATCH", Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|c| c.to_str().ok())
                .unwrap_or("");
            let patch_type = PatchType::from_content_type(content_type)?;
            let existed = store.get(rt, ns, name).is_ok();
            let patched = store.patch(
                rt,
                ns,
                name,
                patch_type,
                body,
                status,
                &write_options(query, headers)?,
            )?;
            Ok(Reply::Json(if existed { 200 } else { 201 }, patched))
        }
        ("DELETE", Some(name)) => {
            let options = delete_options(query, body)?;
            let (object, pending) = store.delete(rt, ns, name, &options)?;
            if pending {
                return Ok(Reply::Json(202, object));
            }
            Ok(Reply::Json(
                200,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {
                        "name": name, "group": rt.group, "kind": rt.plural,
                        "uid": object.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    },
                }),
            ))
        }
        ("DELETE", None) if rt.namespaced() && !in_namespace => Err(method_not_allowed()),
        ("DELETE", None) => {
            let options = delete_options(query, body)?;
            let list = store.list(rt, ns, &list_options(query)?)?;
            let mut items = Vec::new();
            for item in list.items {
                let item_name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let (object, _) = store.delete(rt, ns, &item_name, &options)?;
                items.push(object);
            }
            Ok(Reply::Json(
                200,
                json!({
                    "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": items,
                }),
            ))
        }
        _ => Err(method_not_allowed()),
    }
}

/// A parsed watch request.
#[derive(Debug)]
struct WatchRequest {
    rt: ResourceType,
    namespace: String,
    labels: LabelSelector,
    fields: FieldSelector,
    resource_version: Option<u64>,
    send_initial_events: bool,
    bookmarks: bool,
    timeout: Option<Duration>,
}

impl WatchRequest {
    fn parse(rt: &ResourceType, namespace: &str, query: &HashMap<String, String>) -> Result<Self> {
        let options = list_options(query)?;
        let resource_version = match query.get("resourceVersion").map(String::as_str) {
            None | Some("" | "0") => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
            ),
        };
        let send_initial_events = flag(query, "sendInitialEvents");
        let bookmarks = flag(query, "allowWatchBookmarks");
        if send_initial_events {
            if options.resource_version_match.as_deref() != Some("NotOlderThan") {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    "resourceVersionMatch",
                    "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !bookmarks {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    "allowWatchBookmarks",
                    "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
                ));
            }
        }
        let timeout = match query.get("timeoutSeconds") {
            Some(t) if !t.is_empty() => {
                Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid timeoutSeconds: {t}"))
                })?))
            }
            _ => None,
        };
        Ok(WatchRequest {
            rt: rt.clone(),
            namespace: namespace.to_owned(),
            labels: options.labels,
            fields: options.fields,
            resource_version,
            send_initial_events,
            bookmarks,
            timeout,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        (self.namespace.is_empty()
            || object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                == Some(self.namespace.as_str()))
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    /// The event a watcher with these filters sees for a change, if any: an object that moves
    /// into the selection is `ADDED`, one that moves out is `DELETED`.
    fn translate(&self, event: &Event) -> Option<(&'static str, Arc<Value>)> {
        let now = self.matches(&event.object);
        match event.kind {
            EventKind::Added | EventKind::Deleted => {
                now.then(|| (event.kind.as_str(), event.object.clone()))
            }
            EventKind::Modified => {
                let before = event.previous.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", event.object.clone())),
                    (false, true) => Some(("ADDED", event.object.clone())),
                    (true, false) => Some(("DELETED", event.object.clone())),
                    (false, false) => None,
                }
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": metadata}})
    }
}

fn line(value: &Value) -> Result<Bytes, Infallible> {
    let mut text = value.to_string();
    text.push('\n');
    Ok(Bytes::from(text))
}

fn watch_response(shared: Arc<Shared>, request: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    tokio::spawn(run_watch(shared, request, tx));
    let mut response = Response::new(Body::from_stream(rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn run_watch(
    shared: Arc<Shared>,
    request: WatchRequest,
    mut tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let resource = resource_id(&request.rt);
    let timeout = request
        .timeout
        .unwrap_or(shared.config.default_watch_timeout);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changed = shared.changed.subscribe();
    let mut initial = Vec::new();
    let start = {
        let store = shared.store();
        match request.resource_version {
            Some(rv) if !request.send_initial_events => {
                if rv < store.compacted() {
                    Err(ApiError::new(
                        Reason::Expired,
                        format!("too old resource version: {rv} ({})", store.compacted()),
                    ))
                } else {
                    Ok(rv)
                }
            }
            _ => {
                if let Ok(list) =
                    store.list(&request.rt, &request.namespace, &ListOptions::default())
                {
                    initial = list
                        .items
                        .into_iter()
                        .filter(|o| request.matches(o))
                        .collect();
                }
                Ok(store.resource_version())
            }
        }
    };
    let mut last = match start {
        Ok(rv) => rv,
        Err(error) => {
            let _ = tx
                .send(line(&json!({"type": "ERROR", "object": error.to_status()})))
                .await;
            return;
        }
    };
    for object in initial {
        if tx
            .send(line(&json!({"type": "ADDED", "object": object})))
            .await
            .is_err()
        {
            return;
        }
    }
    if request.send_initial_events && tx.send(line(&request.bookmark(last, true))).await.is_err() {
        return;
    }
    loop {
        changed.borrow_and_update();
        let drained = {
            let store = shared.store();
            store
                .events_since(&resource, last)
                .map(|events| (events, store.resource_version()))
        };
        let (events, current) = match drained {
            Ok(drained) => drained,
            Err(error) => {
                let _ = tx
                    .send(line(&json!({"type": "ERROR", "object": error.to_status()})))
                    .await;
                return;
            }
        };
        for event in &events {
            if let Some((kind, object)) = request.translate(event)
                && tx
                    .send(line(&json!({"type": kind, "object": *object})))
                    .await
                    .is_err()
            {
                return;
            }
        }
        last = current;
        tokio::select! {
            result = changed.changed() => {
                if result.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(shared.config.bookmark_interval) => {
                if tx.is_closed() {
                    return;
                }
                if request.bookmarks && tx.send(line(&request.bookmark(last, false))).await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if request.bookmarks {
                    let _ = tx.send(line(&request.bookmark(last, false))).await;
                }
                return;
            }
        }
    }
}
