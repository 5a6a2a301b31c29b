//! Counters of write requests and of the changes they made, by verb and resource: how tests and
//! the benchmark see that a settled controller makes no writes.

use std::collections::BTreeMap;

use super::Store;

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

impl Store {
    /// Write counters.
    pub(crate) fn counts(&self) -> &WriteCounts {
        &self.counts
    }

    /// Resets write counters.
    pub(crate) fn reset_counts(&mut self) {
        self.counts = WriteCounts::default();
    }

    /// Records a write request (called by the HTTP layer once per request).
    pub(crate) fn count_request(&mut self, verb: &str, resource: &str) {
        *self
            .counts
            .requests
            .entry((verb.to_owned(), resource.to_owned()))
            .or_default() += 1;
    }

    pub(super) fn count_change(&mut self, verb: &str, resource: &str) {
        *self
            .counts
            .changes
            .entry((verb.to_owned(), resource.to_owned()))
            .or_default() += 1;
    }
}
