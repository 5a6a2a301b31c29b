//! The object store and the API semantics of every verb. Everything here is synchronous and runs
//! under one lock, so each request is atomic, as an etcd transaction is for the real server.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::Rng;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Reason, Result};
use crate::fields::{self, FieldSet, Part};
use crate::patch::{self, PatchType};
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};

/// A change recorded for watchers.
#[derive(Debug, Clone)]
pub struct Event {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// `group/plural` of the resource.
    pub resource: String,
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: EventKind,
    /// The object after the change (for `DELETED`, its last state).
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions).
    pub previous: Option<Arc<Value>>,
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventKind {
    /// As spelled on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// Options shared by write requests.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force` (server-side apply only).
    pub force: bool,
    /// `dryRun=All`: validate and compute, but persist nothing.
    pub dry_run: bool,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `propagationPolicy`: `Background` (default), `Foreground` or `Orphan`.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
}

/// A list result.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// Matching objects, sorted by namespace then name.
    pub items: Vec<Value>,
    /// The list's resourceVersion.
    pub resource_version: u64,
    /// The continue token when `limit` cut the list.
    pub continue_token: Option<String>,
    /// Objects left after this page.
    pub remaining: Option<usize>,
}

/// Counts of write requests, by verb and resource (`secrets`, `connectedapps/status`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Write requests received (including those that changed nothing and those refused).
    pub requests: BTreeMap<(String, String), u64>,
    /// Writes that changed stored state (each produced a new resourceVersion).
    pub changes: BTreeMap<(String, String), u64>,
}

impl WriteCounts {
    /// All write requests.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// All changes persisted.
    pub fn total_changes(&self) -> u64 {
        self.changes.values().sum()
    }

    /// Write requests of one verb (`create`, `update`, `patch`, `delete`) on one resource.
    pub fn requests_of(&self, verb: &str, resource: &str) -> u64 {
        self.requests
            .get(&(verb.to_owned(), resource.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

type Key = (String, String);

/// The whole state of the server.
#[derive(Debug)]
pub struct Store {
    resources: Vec<ResourceType>,
    objects: BTreeMap<String, BTreeMap<Key, Value>>,
    rv: u64,
    history: VecDeque<Event>,
    history_limit: usize,
    /// Everything at or below this resourceVersion has been compacted away.
    compacted: u64,
    counts: WriteCounts,
    validator: crate::schema::Validator,
}

/// `group/plural`.
pub fn resource_id(rt: &ResourceType) -> String {
    format!("{}/{}", rt.group, rt.plural)
}

fn now() -> String {
    let now = jiff::Timestamp::now();
    match jiff::Timestamp::from_second(now.as_second()) {
        Ok(ts) => ts.to_string(),
        Err(_) => now.to_string(),
    }
}

fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::thread_rng().r#gen();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A DNS-1123 subdomain, the rule for most object names.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

fn meta(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let Value::Object(root) = object else {
        // Invariant: made an object just above.
        unreachable!("object was just made a map")
    };
    let entry = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let Value::Object(meta) = entry else {
        unreachable!("metadata was just made a map")
    };
    meta
}

fn finalizers(object: &Value) -> Vec<Value> {
    meta(object)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn is_deleting(object: &Value) -> bool {
    meta(object)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

fn owner_uids(object: &Value) -> Vec<String> {
    meta(object)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The object without the fields the server maintains, to decide whether a write changed
/// anything.
fn content(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
        m.remove("generation");
    }
    copy
}

/// The parts of an object whose change bumps `metadata.generation`: everything except
/// `metadata` (and `status` when it is a subresource).
fn generation_relevant(object: &Value, status_subresource: bool) -> Value {
    let mut copy = object.clone();
    if let Some(m) = copy.as_object_mut() {
        m.remove("metadata");
        if status_subresource {
            m.remove("status");
        }
    }
    copy
}

/// What the real server's type strategies do on every write of a built-in type: a Secret's
/// `stringData` is merged into `data` (base64) and dropped.
fn normalize(rt: &ResourceType, object: &mut Value) {
    if !(rt.group.is_empty() && rt.plural == "secrets") {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    use base64::Engine as _;
    if !map.get("data").is_some_and(Value::is_object) {
        map.insert("data".into(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(data)) = map.get_mut("data") {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

/// One `managedFields` entry, parsed.
#[derive(Debug, Clone, PartialEq)]
struct Managed {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    set: FieldSet,
}

fn managed_entries(object: &Value) -> Vec<Managed> {
    meta(object)
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| Managed {
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    operation: e
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    time: e
                        .get("time")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    set: e
                        .get("fieldsV1")
                        .map(fields::from_fields_v1)
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_managed(object: &mut Value, entries: &[Managed]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_fields_v1(&e.set),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let m = meta_mut(object);
    if rendered.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(rendered));
    }
}

/// Which part of the object a write addresses, given the resource and the subresource.
fn part_of(rt: &ResourceType, status: bool) -> Part {
    match (rt.status_subresource, status) {
        (true, true) => Part::Status,
        (true, false) => Part::Main,
        (false, _) => Part::Whole,
    }
}

impl Store {
    /// An empty store serving `resources`, keeping `history_limit` watch events.
    pub fn new(resources: Vec<ResourceType>, history_limit: usize) -> Self {
        let mut store = Store {
            resources,
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            counts: WriteCounts::default(),
            validator: crate::schema::Validator::default(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = store.create_namespace_unchecked(ns);
        }
        store.counts = WriteCounts::default();
        store
    }

    fn create_namespace_unchecked(&mut self, name: &str) -> Result<Value> {
        let rt = self
            .find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::new(Reason::InternalError, "namespaces are not served"))?;
        self.create(
            &rt,
            "",
            json!({"metadata": {"name": name}}),
            &WriteOptions::default(),
        )
    }

    /// A custom resource's schema on every write: prune, default, validate.
    fn apply_schema(
        &self,
        rt: &ResourceType,
        name: &str,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<()> {
        let Some(schema) = rt.schema.as_deref() else {
            return Ok(());
        };
        crate::schema::prune(schema, object, true);
        crate::schema::default(schema, object);
        let mut violations = Vec::new();
        self.validator.validate(schema, object, "", &mut violations);
        if let Some(old) = old {
            // Ratcheting: values the update does not change may stay invalid.
            violations
                .retain(|v| v.node.is_empty() || old.pointer(&v.node) != object.pointer(&v.node));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(crate::schema::invalid(
                &rt.group,
                &rt.kind,
                name,
                &violations,
            ))
        }
    }

    /// The served resources.
    pub fn resources(&self) -> &[ResourceType] {
        &self.resources
    }

    /// Registers (or replaces) a resource type, as installing a CRD does.
    pub fn register(&mut self, rt: ResourceType) {
        self.resources
            .retain(|r| !(r.group == rt.group && r.plural == rt.plural));
        self.resources.push(rt);
    }

    /// Finds a served resource.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch may resume from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Drops all retained watch history, as etcd compaction does: watches that resume from an
    /// older resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Write counters.
    pub fn counts(&self) -> &WriteCounts {
        &self.counts
    }

    /// Resets write counters.
    pub fn reset_counts(&mut self) {
        self.counts = WriteCounts::default();
    }

    /// Records a write request (called by the HTTP layer once per request).
    pub fn count_request(&mut self, verb: &str, resource: &str) {
        *self
            .counts
            .requests
            .entry((verb.to_owned(), resource.to_owned()))
            .or_default() += 1;
    }

    fn count_change(&mut self, verb: &str, resource: &str) {
        *self
            .counts
            .changes
            .entry((verb.to_owned(), resource.to_owned()))
            .or_default() += 1;
    }

    /// Events with `rv > since` for one resource, or `Err` when `since` is older than the
    /// retained history.
    pub fn events_since(&self, resource: &str, since: u64) -> Result<Vec<Event>> {
        if since < self.compacted {
            return Err(ApiError::new(
                Reason::Expired,
                format!("too old resource version: {since} ({})", self.compacted),
            ));
        }
        // The history is ordered by resourceVersion.
        let first = self.history.partition_point(|e| e.rv <= since);
        Ok(self
            .history
            .range(first..)
            .filter(|e| e.resource == resource)
            .cloned()
            .collect())
    }

    fn namespace_key(rt: &ResourceType, namespace: &str) -> String {
        if rt.namespaced() {
            namespace.to_owned()
        } else {
            String::new()
        }
    }

    /// One object.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        let key = (Self::namespace_key(rt, namespace), name.to_owned());
        self.objects
            .get(&resource_id(rt))
            .and_then(|objects| objects.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Lists objects; `namespace` "" lists across all namespaces.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: &str,
        opts: &ListOptions,
    ) -> Result<ListResult> {
        let mut list_rv = self.rv;
        if let Some(requested) = opts
            .resource_version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "0")
        {
            let requested: u64 = requested.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {requested}"))
            })?;
            match opts.resource_version_match.as_deref() {
                Some("Exact") if requested != self.rv => {
                    return Err(ApiError::new(
                        Reason::Expired,
                        format!(
                            "The resourceVersion for the provided list is too old (this server \
                             serves only the latest state, {}).",
                            self.rv
                        ),
                    ));
                }
                _ if requested > self.rv => {
                    return Err(ApiError::new(
                        Reason::Expired,
                        format!(
                            "Too large resource version: {requested}, current: {}",
                            self.rv
                        ),
                    ));
                }
                _ => {}
            }
        }
        let mut start_after: Option<Key> = None;
        if let Some(token) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
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
            list_rv = rv;
            start_after = Some((ns.to_owned(), name.to_owned()));
        }
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

    fn check_namespace(&self, rt: &ResourceType, namespace: &str) -> Result<()> {
        if !rt.namespaced() {
            return Ok(());
        }
        if namespace.is_empty() {
            return Err(ApiError::bad_request(
                "the namespace of the object is required",
            ));
        }
        let exists = self
            .objects
            .get("/namespaces")
            .is_some_and(|n| n.contains_key(&(String::new(), namespace.to_owned())));
        if exists {
            Ok(())
        } else {
            Err(ApiError::not_found("", "namespaces", namespace))
        }
    }

    fn check_type_meta(rt: &ResourceType, object: &mut Value) -> Result<()> {
        let Some(map) = object.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        };
        let api_version = rt.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            None => {
                map.insert("apiVersion".into(), json!(api_version));
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            None => {
                map.insert("kind".into(), json!(rt.kind));
            }
            Some(k) if k == rt.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
        }
        Ok(())
    }

    fn check_body_namespace(rt: &ResourceType, namespace: &str, object: &mut Value) -> Result<()> {
        let body_ns = meta_str(object, "namespace").map(str::to_owned);
        if rt.namespaced() {
            match body_ns.as_deref() {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent \
                         on the request",
                    ));
                }
                _ => {
                    meta_mut(object).insert("namespace".into(), json!(namespace));
                }
            }
        } else {
            meta_mut(object).remove("namespace");
        }
        Ok(())
    }

    fn check_finalizer_names(rt: &ResourceType, name: &str, object: &Value) -> Result<()> {
        if let Some(list) = meta(object).and_then(|m| m.get("finalizers")) {
            let Some(items) = list.as_array() else {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    name,
                    "metadata.finalizers",
                    "must be a list of strings",
                ));
            };
            for item in items {
                let ok = item.as_str().is_some_and(|f| {
                    !f.is_empty()
                        && (f.contains('/')
                            || ["kubernetes", "orphan", "foregroundDeletion"].contains(&f))
                });
                if !ok {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        name,
                        "metadata.finalizers",
                        &format!(
                            "Invalid value: {item}: name is neither a standard finalizer name nor is it fully qualified"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn manager_name(opts: &WriteOptions) -> String {
        opts.field_manager
            .clone()
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Creates an object (POST to the collection).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        object: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        self.create_as(rt, namespace, object, opts, "Update")
    }

    /// Creates an object; `operation` is the managedFields operation (`Update` for POST,
    /// `Apply` for server-side apply of a missing object).
    fn create_as(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
        opts: &WriteOptions,
        operation: &str,
    ) -> Result<Value> {
        Self::check_type_meta(rt, &mut object)?;
        Self::check_body_namespace(rt, namespace, &mut object)?;
        let namespace = Self::namespace_key(rt, namespace);
        self.check_namespace(rt, &namespace)?;
        let name = match meta_str(&object, "name").filter(|n| !n.is_empty()) {
            Some(name) => name.to_owned(),
            None => match meta_str(&object, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => {
                    let mut candidate;
                    loop {
                        candidate = format!("{prefix}{}", random_suffix());
                        if self.get(rt, &namespace, &candidate).is_err() {
                            break;
                        }
                    }
                    candidate
                }
                None => {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            },
        };
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        if meta_str(&object, "resourceVersion").is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::new(
                Reason::InternalError,
                "resourceVersion should not be set on objects to be created",
            ));
        }
        Self::check_finalizer_names(rt, &name, &object)?;
        normalize(rt, &mut object);
        if self.get(rt, &namespace, &name).is_ok() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if rt.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
            if rt.group.is_empty() && rt.plural == "namespaces" {
                // The namespace lifecycle sets the phase; deletion is not modelled (see docs).
                map.insert("status".into(), json!({"phase": "Active"}));
            }
        }
        self.apply_schema(rt, &name, &mut object, None)?;
        let m = meta_mut(&mut object);
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(new_uid()));
        m.insert("creationTimestamp".into(), json!(now()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("managedFields");
        m.remove("selfLink");
        if rt.tracks_generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        let part = part_of(rt, false);
        let set = fields::field_set(&object, part, rt.custom);
        let entries = vec![Managed {
            manager: Self::manager_name(opts),
            operation: operation.into(),
            subresource: String::new(),
            api_version: rt.api_version(),
            time: now(),
            set,
        }];
        write_managed(&mut object, &entries);
        if opts.dry_run {
            return Ok(object);
        }
        Ok(self.commit(rt, &namespace, &name, None, object, "create"))
    }

    /// Stores `object`, assigning the next resourceVersion, and records the watch event.
    fn commit(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        previous: Option<Value>,
        mut object: Value,
        verb: &str,
    ) -> Value {
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let resource = resource_id(rt);
        self.objects
            .entry(resource.clone())
            .or_default()
            .insert((namespace.to_owned(), name.to_owned()), object.clone());
        let kind = if previous.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.record(Event {
            rv: self.rv,
            resource,
            namespace: namespace.to_owned(),
            kind,
            object: Arc::new(object.clone()),
            previous: previous.map(Arc::new),
        });
        self.count_change(verb, &rt.plural);
        object
    }

    fn record(&mut self, event: Event) {
        self.history.push_back(event);
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
    }

    /// Replaces an object (PUT), or its status (PUT to `/status`).
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Value,
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value> {
        Self::check_type_meta(rt, &mut object)?;
        Self::check_body_namespace(rt, namespace, &mut object)?;
        if let Some(body_name) = meta_str(&object, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let namespace = Self::namespace_key(rt, namespace);
        let old = self.get(rt, &namespace, name)?;
        self.finish_write(
            rt, &namespace, name, old, object, status, opts, "update", None,
        )
    }

    /// Patches an object or its status.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value> {
        let namespace = Self::namespace_key(rt, namespace);
        if patch_type == PatchType::Apply {
            return self.apply(rt, &namespace, name, body, status, opts);
        }
        if patch_type == PatchType::Strategic && rt.custom {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let old = self.get(rt, &namespace, name)?;
        let mut candidate = old.clone();
        match patch_type {
            PatchType::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                patch::merge_patch(&mut candidate, &patch);
            }
            PatchType::Json => patch::json_patch(&mut candidate, &patch)?,
            PatchType::Strategic => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "a strategic merge patch must be a JSON object",
                    ));
                }
                patch::strategic_merge_patch(&mut candidate, &patch)?;
            }
            PatchType::Apply => {}
        }
        Self::check_type_meta(rt, &mut candidate)?;
        if meta_str(&candidate, "name") != Some(name)
            || meta_str(&candidate, "namespace").unwrap_or("") != namespace
        {
            return Err(ApiError::bad_request(
                "a patch may not change the object's name or namespace",
            ));
        }
        self.finish_write(
            rt, &namespace, name, old, candidate, status, opts, "patch", None,
        )
    }

    /// Server-side apply.
    fn apply(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        body: &[u8],
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value> {
        let Some(manager) = opts.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::bad_request(
                "PATCH with apply requires a fieldManager query parameter",
            ));
        };
        let mut applied: Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "an apply configuration must be an object",
            ));
        }
        for field in ["apiVersion", "kind"] {
            if applied.get(field).and_then(Value::as_str).is_none() {
                return Err(ApiError::bad_request(format!(
                    "{field} must be set in an apply configuration"
                )));
            }
        }
        Self::check_type_meta(rt, &mut applied)?;
        if let Some(body_name) = meta_str(&applied, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        Self::check_body_namespace(rt, namespace, &mut applied)?;
        meta_mut(&mut applied).insert("name".into(), json!(name));
        let old = match self.get(rt, namespace, name) {
            Ok(old) => old,
            Err(e) if status => return Err(e),
            Err(_) => {
                // Apply creates the object; the applier owns everything it applied.
                let mut fresh = applied.clone();
                if let Some(m) = fresh.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                return self.create_as(
                    rt,
                    namespace,
                    fresh,
                    &WriteOptions {
                        field_manager: Some(manager.clone()),
                        ..opts.clone()
                    },
                    "Apply",
                );
            }
        };
        let part = part_of(rt, status);
        let subresource = if part == Part::Status { "status" } else { "" };
        let applied_set = fields::field_set(&applied, part, rt.custom);
        let mut entries = managed_entries(&old);
        // Conflicts: fields another manager owns, that this configuration sets to a different
        // value.
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for entry in &entries {
            if entry.manager == manager && entry.operation == "Apply"
                || entry.subresource != subresource
            {
                continue;
            }
            for owned in &entry.set {
                for path in &applied_set {
                    if fields::overlaps(owned, path)
                        && fields::get_at(&old, path) != fields::get_at(&applied, path)
                    {
                        conflicts.push((entry.manager.clone(), fields::display_path(path)));
                    }
                }
            }
        }
        conflicts.sort();
        conflicts.dedup();
        if !conflicts.is_empty() && !opts.force {
            let mut error = ApiError::about(
                Reason::Conflict,
                &rt.group,
                &rt.plural,
                name,
                format!(
                    "Apply failed with {} conflict{}: {}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" },
                    conflicts
                        .iter()
                        .map(|(m, p)| format!("conflict with \"{m}\": {p}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            if let Some(d) = error.details.as_mut() {
                d.causes = conflicts
                    .iter()
                    .map(|(m, p)| {
                        (
                            "FieldManagerConflict".to_owned(),
                            format!("conflict with \"{m}\""),
                            p.clone(),
                        )
                    })
                    .collect();
            }
            return Err(error);
        }
        // Build the new object: merge the applied part, then drop the fields this manager
        // applied before, no longer applies, and nobody else owns.
        let mut candidate = old.clone();
        let mut applied_part = applied.clone();
        if let Some(map) = applied_part.as_object_mut() {
            match part {
                Part::Status => map.retain(|k, _| k == "status"),
                Part::Main => {
                    map.remove("status");
                }
                Part::Whole => {}
            }
            if let Some(m) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                m.retain(|k, _| {
                    ![
                        "uid",
                        "creationTimestamp",
                        "generation",
                        "managedFields",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                    ]
                    .contains(&k.as_str())
                });
            }
        }
        let precondition = meta_str(&applied, "resourceVersion").map(str::to_owned);
        if let Some(m) = applied_part
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
            m.remove("resourceVersion");
        }
        fields::merge_applied(&mut candidate, &applied_part, "", rt.custom);
        let previous_set = entries
            .iter()
            .find(|e| {
                e.manager == manager && e.operation == "Apply" && e.subresource == subresource
            })
            .map(|e| e.set.clone())
            .unwrap_or_default();
        for dropped in previous_set.difference(&applied_set) {
            let owned_elsewhere = entries.iter().any(|e| {
                !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
                    && e.set.iter().any(|p| fields::overlaps(p, dropped))
            });
            let covered = applied_set.iter().any(|p| fields::overlaps(p, dropped));
            if !owned_elsewhere && !covered {
                fields::remove_at(&mut candidate, dropped);
            }
        }
        // Ownership: forced fields move to the applier; shared values stay shared.
        for entry in entries.iter_mut() {
            if entry.manager == manager && entry.operation == "Apply"
                || entry.subresource != subresource
            {
                continue;
            }
            entry.set.retain(|owned| {
                !applied_set.iter().any(|p| {
                    fields::overlaps(owned, p)
                        && fields::get_at(&old, p) != fields::get_at(&applied, p)
                })
            });
        }
        let time = now();
        match entries.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Apply" && e.subresource == subresource
        }) {
            Some(entry) => {
                if entry.set != applied_set {
                    entry.time = time;
                }
                entry.set = applied_set;
            }
            None => entries.push(Managed {
                manager: manager.clone(),
                operation: "Apply".into(),
                subresource: subresource.to_owned(),
                api_version: rt.api_version(),
                time,
                set: applied_set,
            }),
        }
        write_managed(&mut candidate, &entries);
        if let Some(rv) = precondition {
            meta_mut(&mut candidate).insert("resourceVersion".into(), json!(rv));
        }
        self.finish_write(
            rt,
            namespace,
            name,
            old,
            candidate,
            status,
            opts,
            "patch",
            Some(()),
        )
    }

    /// The common tail of update, patch and apply: preconditions, system metadata, status
    /// subresource rules, finalizer rules, generation, field ownership, no-op detection, commit
    /// and finalization.
    #[allow(clippy::too_many_arguments)]
    fn finish_write(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        old: Value,
        mut candidate: Value,
        status: bool,
        opts: &WriteOptions,
        verb: &str,
        applied: Option<()>,
    ) -> Result<Value> {
        if status && !rt.status_subresource {
            return Err(ApiError::not_found(
                &rt.group,
                &format!("{}/status", rt.plural),
                name,
            ));
        }
        let old_rv = meta_str(&old, "resourceVersion").unwrap_or("").to_owned();
        if let Some(rv) = meta_str(&candidate, "resourceVersion")
            && !rv.is_empty()
            && rv != old_rv
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, name));
        }
        let old_uid = meta_str(&old, "uid").unwrap_or("").to_owned();
        if let Some(uid) = meta_str(&candidate, "uid")
            && !uid.is_empty()
            && uid != old_uid
        {
            return Err(ApiError::about(
                Reason::Conflict,
                &rt.group,
                &rt.plural,
                name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
                ),
            ));
        }
        let part = part_of(rt, status);
        // Status subresource: each side writes only its own part.
        if part == Part::Status {
            let new_status = candidate.get("status").cloned();
            let new_managed = if applied.is_some() {
                meta(&candidate)
                    .and_then(|m| m.get("managedFields"))
                    .cloned()
            } else {
                None
            };
            candidate = old.clone();
            match (candidate.as_object_mut(), new_status) {
                (Some(map), Some(s)) => {
                    map.insert("status".into(), s);
                }
                (Some(map), None) => {
                    map.remove("status");
                }
                (None, _) => {}
            }
            if let Some(mf) = new_managed {
                meta_mut(&mut candidate).insert("managedFields".into(), mf);
            }
        } else if part == Part::Main
            && let Some(map) = candidate.as_object_mut()
        {
            match old.get("status") {
                Some(s) => {
                    map.insert("status".into(), s.clone());
                }
                None => {
                    map.remove("status");
                }
            }
        }
        // System metadata is the server's.
        {
            let old_meta = meta(&old).cloned().unwrap_or_default();
            let m = meta_mut(&mut candidate);
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(field) {
                    Some(v) => {
                        m.insert(field.into(), v.clone());
                    }
                    None => {
                        m.remove(field);
                    }
                }
            }
            if applied.is_none() {
                match old_meta.get("managedFields") {
                    Some(v) => {
                        m.insert("managedFields".into(), v.clone());
                    }
                    None => {
                        m.remove("managedFields");
                    }
                }
            }
            m.remove("resourceVersion");
        }
        Self::check_finalizer_names(rt, name, &candidate)?;
        normalize(rt, &mut candidate);
        self.apply_schema(rt, name, &mut candidate, Some(&old))?;
        if is_deleting(&old) {
            let before = finalizers(&old);
            if finalizers(&candidate).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    name,
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if rt.tracks_generation && part != Part::Status {
            let changed = generation_relevant(&old, rt.status_subresource)
                != generation_relevant(&candidate, rt.status_subresource);
            if changed {
                let generation = meta(&old)
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    + 1;
                meta_mut(&mut candidate).insert("generation".into(), json!(generation));
            }
        }
        // Field ownership of non-apply writes: the writer takes the fields it changed, fields
        // removed are dropped from every manager.
        if applied.is_none() {
            let subresource = if part == Part::Status { "status" } else { "" };
            let old_set = fields::field_set(&old, part, rt.custom);
            let new_set = fields::field_set(&candidate, part, rt.custom);
            let changed: FieldSet = new_set
                .iter()
                .filter(|p| {
                    !old_set.contains(*p)
                        || fields::get_at(&old, p) != fields::get_at(&candidate, p)
                })
                .cloned()
                .collect();
            let mut entries = managed_entries(&old);
            for entry in entries.iter_mut().filter(|e| e.subresource == subresource) {
                entry
                    .set
                    .retain(|p| new_set.contains(p) && !changed.contains(p));
            }
            if !changed.is_empty() {
                let manager = Self::manager_name(opts);
                match entries.iter_mut().find(|e| {
                    e.manager == manager && e.operation == "Update" && e.subresource == subresource
                }) {
                    Some(entry) => {
                        entry.set.extend(changed);
                        entry.time = now();
                    }
                    None => entries.push(Managed {
                        manager,
                        operation: "Update".into(),
                        subresource: subresource.to_owned(),
                        api_version: rt.api_version(),
                        time: now(),
                        set: changed,
                    }),
                }
            }
            write_managed(&mut candidate, &entries);
        }
        // A write that changes nothing is not a write: no new resourceVersion, no event.
        let unchanged =
            content(&old) == content(&candidate) && managed_sets(&old) == managed_sets(&candidate);
        if unchanged {
            return Ok(old);
        }
        if opts.dry_run {
            meta_mut(&mut candidate).insert("resourceVersion".into(), json!(old_rv));
            return Ok(candidate);
        }
        let verb_resource = if part == Part::Status {
            format!("{}/status", rt.plural)
        } else {
            rt.plural.clone()
        };
        let stored = self.commit_as(
            rt,
            namespace,
            name,
            Some(old),
            candidate,
            verb,
            &verb_resource,
        );
        if is_deleting(&stored) && finalizers(&stored).is_empty() {
            return Ok(self.remove(rt, namespace, name, &DeleteOptions::default()));
        }
        Ok(stored)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_as(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        previous: Option<Value>,
        object: Value,
        verb: &str,
        counted_as: &str,
    ) -> Value {
        let stored = self.commit(rt, namespace, name, previous, object, verb);
        if counted_as != rt.plural {
            // `commit` counted the change under the plural; move it to the subresource.
            if let Some(c) = self
                .counts
                .changes
                .get_mut(&(verb.to_owned(), rt.plural.clone()))
            {
                *c -= 1;
                if *c == 0 {
                    self.counts
                        .changes
                        .remove(&(verb.to_owned(), rt.plural.clone()));
                }
            }
            self.count_change(verb, counted_as);
        }
        stored
    }

    /// Deletes an object: with finalizers it only gets a `deletionTimestamp`; without, it is
    /// removed and its dependents are garbage-collected. Returns the object when deletion is
    /// pending and `None` when it is gone.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<(Value, bool)> {
        let namespace = Self::namespace_key(rt, namespace);
        let old = self.get(rt, &namespace, name)?;
        if let Some(uid) = opts.uid.as_deref()
            && meta_str(&old, "uid") != Some(uid)
        {
            return Err(ApiError::about(
                Reason::Conflict,
                &rt.group,
                &rt.plural,
                name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(rv) = opts.resource_version.as_deref()
            && meta_str(&old, "resourceVersion") != Some(rv)
        {
            return Err(ApiError::about(
                Reason::Conflict,
                &rt.group,
                &rt.plural,
                name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or("")
                ),
            ));
        }
        match opts.propagation.as_deref() {
            None | Some("Background" | "Foreground" | "Orphan") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported propagationPolicy: {other}"
                )));
            }
        }
        if opts.dry_run {
            let pending = !finalizers(&old).is_empty();
            return Ok((old, pending));
        }
        if opts.propagation.as_deref() == Some("Orphan")
            && let Some(uid) = meta_str(&old, "uid").map(str::to_owned)
        {
            self.orphan_dependents(&uid);
        }
        if is_deleting(&old) {
            return Ok((old, true));
        }
        if !finalizers(&old).is_empty() {
            let mut candidate = old.clone();
            let m = meta_mut(&mut candidate);
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            m.remove("resourceVersion");
            let stored = self.commit(rt, &namespace, name, Some(old), candidate, "delete");
            return Ok((stored, true));
        }
        Ok((self.remove(rt, &namespace, name, opts), false))
    }

    /// Removes an object for good, records `DELETED`, and collects its dependents.
    fn remove(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        _opts: &DeleteOptions,
    ) -> Value {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(mut object) = self
            .objects
            .get_mut(&resource_id(rt))
            .and_then(|o| o.remove(&key))
        else {
            return Value::Null;
        };
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.record(Event {
            rv: self.rv,
            resource: resource_id(rt),
            namespace: namespace.to_owned(),
            kind: EventKind::Deleted,
            object: Arc::new(object.clone()),
            previous: None,
        });
        self.count_change("delete", &rt.plural);
        if let Some(uid) = meta_str(&object, "uid").map(str::to_owned) {
            self.collect_garbage(&uid);
        }
        if rt.group.is_empty() && rt.plural == "namespaces" {
            self.delete_namespace_contents(name);
        }
        object
    }

    /// All objects (resource, namespace, name, object) whose ownerReferences name `uid`.
    fn dependents_of(&self, uid: &str) -> Vec<(ResourceType, String, String, Value)> {
        let mut found = Vec::new();
        for rt in &self.resources {
            if let Some(objects) = self.objects.get(&resource_id(rt)) {
                for ((ns, name), object) in objects {
                    if owner_uids(object).iter().any(|u| u == uid) {
                        found.push((rt.clone(), ns.clone(), name.clone(), object.clone()));
                    }
                }
            }
        }
        found
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .flat_map(|o| o.values())
            .any(|o| meta_str(o, "uid") == Some(uid))
    }

    fn without_owner(object: &Value, uid: &str) -> Value {
        let mut candidate = object.clone();
        let m = meta_mut(&mut candidate);
        if let Some(Value::Array(refs)) = m.get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            if refs.is_empty() {
                m.remove("ownerReferences");
            }
        }
        m.remove("resourceVersion");
        candidate
    }

    /// The garbage collector, run when an owner is gone: a dependent with another live owner
    /// loses the dangling reference; one without is deleted (its own finalizers respected).
    fn collect_garbage(&mut self, uid: &str) {
        for (rt, ns, name, object) in self.dependents_of(uid) {
            let others_alive = owner_uids(&object)
                .iter()
                .any(|u| u != uid && self.uid_exists(u));
            if others_alive {
                let candidate = Self::without_owner(&object, uid);
                self.commit(&rt, &ns, &name, Some(object), candidate, "update");
            } else {
                let _ = self.delete(&rt, &ns, &name, &DeleteOptions::default());
            }
        }
    }

    fn orphan_dependents(&mut self, uid: &str) {
        for (rt, ns, name, object) in self.dependents_of(uid) {
            let candidate = Self::without_owner(&object, uid);
            self.commit(&rt, &ns, &name, Some(object), candidate, "update");
        }
    }

    fn delete_namespace_contents(&mut self, namespace: &str) {
        let namespaced: Vec<ResourceType> = self
            .resources
            .iter()
            .filter(|r| r.namespaced())
            .cloned()
            .collect();
        for rt in namespaced {
            let names: Vec<String> = self
                .objects
                .get(&resource_id(&rt))
                .map(|o| {
                    o.keys()
                        .filter(|(ns, _)| ns == namespace)
                        .map(|(_, n)| n.clone())
                        .collect()
                })
                .unwrap_or_default();
            for name in names {
                let _ = self.delete(&rt, namespace, &name, &DeleteOptions::default());
            }
        }
    }
}

fn managed_sets(object: &Value) -> Vec<(String, String, String, FieldSet)> {
    let mut sets: Vec<_> = managed_entries(object)
        .into_iter()
        .map(|e| (e.manager, e.operation, e.subresource, e.set))
        .collect();
    sets.sort();
    sets
}
