//! WATCH: a stream of events for one resource, filtered by namespace and selectors, resumed
//! from a resourceVersion (410 Gone once it is compacted away) or started with the current
//! objects (`sendInitialEvents` ends them with a bookmark), with periodic `BOOKMARK`s and the
//! request's timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::SinkExt;
use futures::channel::mpsc;
use http::header;
use serde_json::{Value, json};

use super::Shared;
use super::query::{flag, list_options};
use crate::error::{ApiError, Reason, Result};
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventKind, ListOptions, resource_id};

type Sender = mpsc::Sender<Result<Bytes, Infallible>>;

/// A parsed watch request.
#[derive(Debug)]
pub(super) struct WatchRequest {
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
    pub(super) fn parse(
        rt: &ResourceType,
        namespace: &str,
        query: &HashMap<String, String>,
    ) -> Result<Self> {
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

/// The streaming response of a watch; the events are written by a task of their own.
pub(super) fn watch_response(shared: Arc<Shared>, request: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    tokio::spawn(run_watch(shared, request, tx));
    let mut response = Response::new(Body::from_stream(rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn run_watch(shared: Arc<Shared>, request: WatchRequest, mut tx: Sender) {
    let resource = resource_id(&request.rt);
    let timeout = request
        .timeout
        .unwrap_or(shared.config.default_watch_timeout);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changed = shared.changed.subscribe();
    let Some(mut last) = start(&shared, &request, &mut tx).await else {
        return;
    };
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

/// The start of a watch: the resourceVersion it resumes from (an `ERROR` event when that is
/// compacted away), or the current objects as `ADDED` events (and, with `sendInitialEvents`, the
/// bookmark that ends them). `None` when the watch is over.
async fn start(shared: &Shared, request: &WatchRequest, tx: &mut Sender) -> Option<u64> {
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
    let last = match start {
        Ok(rv) => rv,
        Err(error) => {
            let _ = tx
                .send(line(&json!({"type": "ERROR", "object": error.to_status()})))
                .await;
            return None;
        }
    };
    for object in initial {
        if tx
            .send(line(&json!({"type": "ADDED", "object": object})))
            .await
            .is_err()
        {
            return None;
        }
    }
    if request.send_initial_events && tx.send(line(&request.bookmark(last, true))).await.is_err() {
        return None;
    }
    Some(last)
}
