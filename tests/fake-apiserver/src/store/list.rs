//! LIST: label and field selectors, `limit` and `continue` (pages of one consistent list), and
//! the `resourceVersion` a list may ask for (this server serves only the latest state).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Key, Store, resource_id};
use crate::error::{ApiError, Reason, Result};
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListOptions {
    /// `labelSelector`.
    pub(crate) labels: LabelSelector,
    /// `fieldSelector`.
    pub(crate) fields: FieldSelector,
    /// `limit`.
    pub(crate) limit: Option<usize>,
    /// `continue`.
    pub(crate) continue_token: Option<String>,
    /// `resourceVersion`.
    pub(crate) resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub(crate) resource_version_match: Option<String>,
}

/// A list result.
#[derive(Debug, Clone)]
pub(crate) struct ListResult {
    /// Matching objects, sorted by namespace then name.
    pub(crate) items: Vec<Value>,
    /// The list's resourceVersion.
    pub(crate) resource_version: u64,
    /// The continue token when `limit` cut the list.
    pub(crate) continue_token: Option<String>,
    /// Objects left after this page.
    pub(crate) remaining: Option<usize>,
}

impl Store {
    /// Lists objects; `namespace` "" lists across all namespaces.
    pub(crate) fn list(
        &self,
        rt: &ResourceType,
        namespace: &str,
        opts: &ListOptions,
    ) -> Result<ListResult> {
        self.check_list_version(opts)?;
        let (list_rv, start_after) = match self.continue_from(opts)? {
            Some((rv, after)) => (rv, Some(after)),
            None => (self.rv, None),
        };
        let empty = BTreeMap::new();
        let objects = self.objects.get(&resource_id(rt)).unwrap_or(&empty);
        let mut matching = objects.iter().filter(|((ns, name), object)| {
            (namespace.is_empty() || ns == namespace)
                && start_after
                    .as_ref()
                    .is_none_or(|after| (ns, name) > (&after.0, &after.1))
                && opts.labels.matches(object)
                && opts.fields.matches(object)
        });
        let mut items = Vec::new();
        let limit = opts.limit.filter(|l| *l > 0);
        let mut last_key: Option<Key> = None;
        while let Some((key, object)) = matching.next() {
            if limit.is_some_and(|l| items.len() >= l) {
                let remaining = 1 + matching.count();
                let (ns, name) = last_key.unwrap_or_default();
                let token = json!({"rv": list_rv, "ns": ns, "name": name}).to_string();
                let token = percent_encoding::utf8_percent_encode(
                    &token,
                    percent_encoding::NON_ALPHANUMERIC,
                );
                return Ok(ListResult {
                    items,
                    resource_version: list_rv,
                    continue_token: Some(token.to_string()),
                    remaining: Some(remaining),
                });
            }
            last_key = Some(key.clone());
            items.push(object.clone());
        }
        Ok(ListResult {
            items,
            resource_version: list_rv,
            continue_token: None,
            remaining: None,
        })
    }

    /// The `resourceVersion` (and `resourceVersionMatch`) a list asks for: anything up to the
    /// latest, except an `Exact` older one, which this server no longer has.
    fn check_list_version(&self, opts: &ListOptions) -> Result<()> {
        let Some(requested) = opts
            .resource_version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "0")
        else {
            return Ok(());
        };
        let requested: u64 = requested
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {requested}")))?;
        match opts.resource_version_match.as_deref() {
            Some("Exact") if requested != self.rv => Err(ApiError::new(
                Reason::Expired,
                format!(
                    "The resourceVersion for the provided list is too old (this server \
                     serves only the latest state, {}).",
                    self.rv
                ),
            )),
            _ if requested > self.rv => Err(ApiError::new(
                Reason::Expired,
                format!(
                    "Too large resource version: {requested}, current: {}",
                    self.rv
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Where a `continue` token resumes: the resourceVersion of the list it continues and the
    /// last key that list returned; `None` without a token.
    fn continue_from(&self, opts: &ListOptions) -> Result<Option<(u64, Key)>> {
        let Some(token) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let decoded: Value = percent_encoding::percent_decode_str(token)
            .decode_utf8()
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
        let rv = decoded.get("rv").and_then(Value::as_u64);
        let ns = decoded.get("ns").and_then(Value::as_str);
        let name = decoded.get("name").and_then(Value::as_str);
        let (Some(rv), Some(ns), Some(name)) = (rv, ns, name) else {
            return Err(ApiError::bad_request("invalid continue token"));
        };
        if rv < self.compacted {
            return Err(ApiError::new(
                Reason::Expired,
                "The provided continue parameter is too old to display a consistent list \
                 result. You can start a new list without the continue parameter.",
            ));
        }
        Ok(Some((rv, (ns.to_owned(), name.to_owned()))))
    }
}
