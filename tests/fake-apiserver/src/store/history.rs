//! The watch history: every change, in resourceVersion order, up to the history limit; older
//! changes are compacted away as etcd does, and a watch resuming from before them gets 410 Gone.

use std::sync::Arc;

use serde_json::Value;

use super::Store;
use crate::error::{ApiError, Reason, Result};

/// A change recorded for watchers.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// The resourceVersion the change produced.
    pub(crate) rv: u64,
    /// `group/plural` of the resource.
    pub(crate) resource: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub(crate) kind: EventKind,
    /// The object after the change (for `DELETED`, its last state).
    pub(crate) object: Arc<Value>,
    /// The object before the change (for selector transitions).
    pub(crate) previous: Option<Arc<Value>>,
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventKind {
    /// As spelled on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

impl Store {
    /// The oldest resourceVersion a watch may resume from.
    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Drops all retained watch history, as etcd compaction does: watches that resume from an
    /// older resourceVersion get 410 Gone.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    pub(super) fn record(&mut self, event: Event) {
        self.history.push_back(event);
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
    }

    /// Events with `rv > since` for one resource, or `Err` when `since` is older than the
    /// retained history.
    pub(crate) fn events_since(&self, resource: &str, since: u64) -> Result<Vec<Event>> {
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
}
