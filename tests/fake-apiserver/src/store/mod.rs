//! The object store and the API semantics of every verb. Everything here is synchronous and runs
//! under one lock, so each request is atomic, as an etcd transaction is for the real server.
//!
//! One file per concern: this one holds the state (objects by resource, the resourceVersion
//! counter), reads, the resource registry and the commit of a write; `history` the watch events;
//! `counts` the write counters; `metadata` the accessors of object metadata and the values the
//! server generates; `validation` the checks every write passes; `managed_fields` field
//! ownership (`metadata.managedFields`); then one file per verb: `list`, `create`, `update`
//! (PUT, non-apply PATCH, and the tail every update shares), `apply` (server-side apply),
//! `delete`; and `garbage_collection` (owner references, orphaning, namespace contents). The
//! verbs are `impl Store` blocks beside the state they change, as the real server's REST
//! storage has one handler per verb.

mod apply;
mod counts;
mod create;
mod delete;
mod garbage_collection;
mod history;
mod list;
mod managed_fields;
mod metadata;
mod update;
mod validation;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};

pub use self::counts::WriteCounts;
pub(crate) use self::delete::DeleteOptions;
pub(crate) use self::history::{Event, EventKind};
pub(crate) use self::list::ListOptions;
use self::metadata::meta_mut;
use crate::error::{ApiError, Reason, Result};
use crate::resources::ResourceType;

/// Options shared by write requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOptions {
    /// `fieldManager`.
    pub(crate) field_manager: Option<String>,
    /// `force` (server-side apply only).
    pub(crate) force: bool,
    /// `dryRun=All`: validate and compute, but persist nothing.
    pub(crate) dry_run: bool,
}

type Key = (String, String);

/// The whole state of the server.
#[derive(Debug)]
pub(crate) struct Store {
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
pub(crate) fn resource_id(rt: &ResourceType) -> String {
    format!("{}/{}", rt.group, rt.plural)
}

impl Store {
    /// An empty store serving `resources`, keeping `history_limit` watch events.
    pub(crate) fn new(resources: Vec<ResourceType>, history_limit: usize) -> Self {
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

    /// The served resources.
    pub(crate) fn resources(&self) -> &[ResourceType] {
        &self.resources
    }

    /// Registers (or replaces) a resource type, as installing a CRD does.
    pub(crate) fn register(&mut self, rt: ResourceType) {
        self.resources
            .retain(|r| !(r.group == rt.group && r.plural == rt.plural));
        self.resources.push(rt);
    }

    /// Finds a served resource.
    pub(crate) fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// The current (latest) resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    fn namespace_key(rt: &ResourceType, namespace: &str) -> String {
        if rt.namespaced() {
            namespace.to_owned()
        } else {
            String::new()
        }
    }

    /// One object.
    pub(crate) fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        let key = (Self::namespace_key(rt, namespace), name.to_owned());
        self.objects
            .get(&resource_id(rt))
            .and_then(|objects| objects.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
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
            kind,
            object: Arc::new(object.clone()),
            previous: previous.map(Arc::new),
        });
        self.count_change(verb, &rt.plural);
        object
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
}
