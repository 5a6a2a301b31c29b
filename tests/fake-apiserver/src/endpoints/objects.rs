//! The verbs on objects and collections: GET (one object, a list, or a watch), POST, PUT,
//! PATCH, DELETE and DELETE of a collection, each with the status code and body the real
//! server answers with.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method, header};
use serde_json::{Value, json};

use super::Reply;
use super::query::{delete_options, flag, list_options, parse_body, write_options};
use super::watch::WatchRequest;
use crate::error::{ApiError, Reason, Result};
use crate::patch::PatchType;
use crate::resources::ResourceType;
use crate::store::Store;

/// A request for objects of one resource.
pub(super) struct ObjectRequest<'a> {
    pub(super) rt: &'a ResourceType,
    /// The namespace ("" across namespaces, or for a cluster-scoped resource).
    pub(super) ns: &'a str,
    /// Whether the path named a namespace.
    pub(super) in_namespace: bool,
    /// The object's name; `None` for the collection.
    pub(super) name: Option<&'a str>,
    /// The `status` subresource.
    pub(super) status: bool,
    pub(super) method: &'a Method,
    pub(super) query: &'a HashMap<String, String>,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: &'a Bytes,
}

/// Carries out `request` on the store.
pub(super) fn object_request(store: &mut Store, request: &ObjectRequest<'_>) -> Result<Reply> {
    let ObjectRequest {
        rt,
        ns,
        in_namespace,
        status,
        method,
        query,
        headers,
        body,
        ..
    } = *request;
    match (method.as_str(), request.name) {
        ("GET", Some(name)) => Ok(Reply::Json(200, store.get(rt, ns, name)?)),
        ("GET", None) if flag(query, "watch") => {
            Ok(Reply::Watch(Box::new(WatchRequest::parse(rt, ns, query)?)))
        }
        ("GET", None) => list(store, request),
        ("POST", None) if rt.namespaced() && !in_namespace => Err(method_not_allowed(method)),
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
        ("PATCH", Some(name)) => patch(store, request, name),
        ("DELETE", Some(name)) => delete(store, request, name),
        ("DELETE", None) if rt.namespaced() && !in_namespace => Err(method_not_allowed(method)),
        ("DELETE", None) => delete_collection(store, request),
        _ => Err(method_not_allowed(method)),
    }
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        Reason::MethodNotAllowed,
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

/// A list (`…List` with the list's resourceVersion, `continue` and `remainingItemCount`).
fn list(store: &Store, request: &ObjectRequest<'_>) -> Result<Reply> {
    let rt = request.rt;
    let options = list_options(request.query)?;
    let list = store.list(rt, request.ns, &options)?;
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

/// A patch of the type its `Content-Type` names: 200, or 201 when an apply created the object.
fn patch(store: &mut Store, request: &ObjectRequest<'_>, name: &str) -> Result<Reply> {
    let (rt, ns) = (request.rt, request.ns);
    let content_type = request
        .headers
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
        request.body,
        request.status,
        &write_options(request.query, request.headers)?,
    )?;
    Ok(Reply::Json(if existed { 200 } else { 201 }, patched))
}

/// A delete: 202 with the object while finalizers hold it, else 200 with a `Status`.
fn delete(store: &mut Store, request: &ObjectRequest<'_>, name: &str) -> Result<Reply> {
    let rt = request.rt;
    let options = delete_options(request.query, request.body)?;
    let (object, pending) = store.delete(rt, request.ns, name, &options)?;
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

/// A delete of every object the selectors match, answered with the list of them.
fn delete_collection(store: &mut Store, request: &ObjectRequest<'_>) -> Result<Reply> {
    let (rt, ns) = (request.rt, request.ns);
    let options = delete_options(request.query, request.body)?;
    let list = store.list(rt, ns, &list_options(request.query)?)?;
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
