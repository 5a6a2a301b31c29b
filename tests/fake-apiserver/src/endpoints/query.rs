//! Request parameters: the query string and body of writes, lists and deletes, parsed into the
//! store's options.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Uri, header};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{DeleteOptions, ListOptions, WriteOptions};

pub(super) fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query.get(name).is_some_and(|v| v == "true" || v == "1")
}

pub(super) fn write_options(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<WriteOptions> {
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

pub(super) fn list_options(query: &HashMap<String, String>) -> Result<ListOptions> {
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

pub(super) fn parse_body(body: &Bytes) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

pub(super) fn delete_options(
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<DeleteOptions> {
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
