//! The controller's cache of ConnectedApps, with an index of who claims which client ID and
//! which resource, so that finding an app's rivals costs the number of its rivals, not the
//! number of apps (a reconcile and every watch event look them up: a scan of the whole cache
//! each time made a cold start of N apps cost N² checks).
//!
//! The index is updated from the same watch events, in the same step, as kube-runtime's store
//! ([`Indexer::apply`]), with the store's semantics: a relist (`Init` … `InitDone`) replaces the
//! whole index at `InitDone`, as it replaces the store, so the index is complete before the
//! controller's first reconcile (which waits for the store). Lookups return the store's objects
//! and re-check each claim on them, so an index a moment behind the store never adds an app
//! that does not claim; the watch event that brings the index up to date triggers the
//! re-check of the rivals ([`AppCache::rivals`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use api::ConnectedApp;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;

use crate::plan::reason;

type Key = ObjectRef<ConnectedApp>;

/// The cached apps and the index of their claims (cheap to clone: both are shared).
#[derive(Clone)]
pub(crate) struct AppCache {
    store: Store<ConnectedApp>,
    index: Arc<RwLock<Claims>>,
}

/// Writes watch events into an [`AppCache`] (the controller's watch of ConnectedApps).
pub(crate) struct Indexer {
    writer: reflector::store::Writer<ConnectedApp>,
    index: Arc<RwLock<Claims>>,
    /// The index being rebuilt by a relist, until its `InitDone`.
    relist: Option<Claims>,
}

/// A new, empty cache and its writer.
pub(crate) fn new() -> (AppCache, Indexer) {
    let (store, writer) = reflector::store();
    let index = Arc::new(RwLock::new(Claims::default()));
    let cache = AppCache {
        store,
        index: index.clone(),
    };
    let indexer = Indexer {
        writer,
        index,
        relist: None,
    };
    (cache, indexer)
}

impl Indexer {
    /// Applies one watch event to the store and the index.
    pub(crate) fn apply(&mut self, event: &Event<ConnectedApp>) {
        self.writer.apply_watcher_event(event);
        match event {
            Event::Init => self.relist = Some(Claims::default()),
            Event::InitApply(app) => self.relist.get_or_insert_default().insert(app),
            Event::InitDone => {
                let fresh = self.relist.take().unwrap_or_default();
                *self.index.write().unwrap_or_else(PoisonError::into_inner) = fresh;
            }
            Event::Apply(app) => self
                .index
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(app),
            Event::Delete(app) => self
                .index
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&ObjectRef::from_obj(app)),
        }
    }
}

impl AppCache {
    /// The store (what the controller's runner waits on and reads).
    pub(crate) fn store(&self) -> Store<ConnectedApp> {
        self.store.clone()
    }

    /// The cached apps that can decide whether `app` holds its client ID and its resource: those
    /// claiming its client ID or its resource, and those claiming the client ID of another
    /// claimant of its resource (`app` itself among them when it is cached).
    pub(crate) fn peers_of(&self, app: &ConnectedApp) -> Vec<Arc<ConnectedApp>> {
        let id = app.client_id().unwrap_or_default();
        let resource = app.spec.resource.as_deref();
        let keys: HashSet<Key> = {
            let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
            let me = ObjectRef::from_obj(app);
            let mut keys: HashSet<Key> = index.claiming_id(&id).cloned().collect();
            for other in resource
                .map(|r| index.claiming_resource(r))
                .into_iter()
                .flatten()
            {
                keys.insert(other.clone());
                let other_id = index.keys.get(other).and_then(|k| k.id.as_deref());
                if *other != me
                    && let Some(other_id) = other_id.filter(|o| *o != id)
                {
                    keys.extend(index.claiming_id(other_id).cloned());
                }
            }
            keys
        };
        let candidates: Vec<Arc<ConnectedApp>> =
            keys.iter().filter_map(|k| self.store.get(k)).collect();
        let ids: Vec<String> = candidates
            .iter()
            .filter(|o| resource.is_some_and(|r| api::resources::claims(o, r)))
            .filter_map(|o| o.client_id())
            .collect();
        candidates
            .into_iter()
            .filter(|o| {
                api::claims::claims(o, &id)
                    || resource.is_some_and(|r| api::resources::claims(o, r))
                    || ids.iter().any(|other| api::claims::claims(o, other))
            })
            .collect()
    }

    /// The apps to look at again when `changed` changed or went away: those claiming its client
    /// ID or resource, and those in conflict (`changed` may have held their ID or resource
    /// before the change); not `changed` itself.
    pub(crate) fn rivals(&self, changed: &ConnectedApp) -> Vec<Key> {
        let id = changed.client_id().unwrap_or_default();
        let me = ObjectRef::from_obj(changed);
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        let mut keys: HashSet<&Key> = index.claiming_id(&id).collect();
        if let Some(r) = changed.spec.resource.as_deref() {
            keys.extend(index.claiming_resource(r));
        }
        keys.extend(index.conflicted.iter());
        keys.into_iter().filter(|k| **k != me).cloned().collect()
    }
}

/// Who claims what, by app.
#[derive(Default)]
struct Claims {
    by_id: HashMap<String, HashSet<Key>>,
    by_resource: HashMap<String, HashSet<Key>>,
    /// Apps whose status reports a client-ID or resource conflict.
    conflicted: HashSet<Key>,
    /// Each app's claims, to take them back when it changes or goes away.
    keys: HashMap<Key, AppClaims>,
}

struct AppClaims {
    id: Option<String>,
    resource: Option<String>,
}

impl Claims {
    fn claiming_id(&self, id: &str) -> impl Iterator<Item = &Key> {
        self.by_id.get(id).into_iter().flatten()
    }

    fn claiming_resource(&self, resource: &str) -> impl Iterator<Item = &Key> {
        self.by_resource.get(resource).into_iter().flatten()
    }

    fn insert(&mut self, app: &ConnectedApp) {
        let key = ObjectRef::from_obj(app);
        self.remove(&key);
        let claims = AppClaims {
            id: app.client_id(),
            resource: app.spec.resource.clone(),
        };
        if let Some(id) = &claims.id {
            self.by_id
                .entry(id.clone())
                .or_default()
                .insert(key.clone());
        }
        if let Some(r) = &claims.resource {
            self.by_resource
                .entry(r.clone())
                .or_default()
                .insert(key.clone());
        }
        if in_conflict(app) {
            self.conflicted.insert(key.clone());
        }
        self.keys.insert(key, claims);
    }

    fn remove(&mut self, key: &Key) {
        self.conflicted.remove(key);
        let Some(old) = self.keys.remove(key) else {
            return;
        };
        for (map, claim) in [
            (&mut self.by_id, old.id),
            (&mut self.by_resource, old.resource),
        ] {
            if let Some(claim) = claim
                && let Some(set) = map.get_mut(&claim)
            {
                set.remove(key);
                if set.is_empty() {
                    map.remove(&claim);
                }
            }
        }
    }
}

/// Whether `app`'s status reports that it lost its client ID or resource to another app.
fn in_conflict(app: &ConnectedApp) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.reason == reason::CLIENT_ID_CONFLICT || c.reason == reason::RESOURCE_CONFLICT
        })
    })
}

#[cfg(test)]
mod tests;
