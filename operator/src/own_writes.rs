//! The versions of objects this controller's own writes replaced, so that a cache (the
//! controller's watch of ConnectedApps, or of the Secrets it owns) that has not caught up with
//! them is recognised: planning from the old version would repeat the write.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::reflector::ObjectRef;

/// An entry older than this is forgotten (for an object deleted before a cache caught up): a
/// cache is never that far behind.
const MEMORY: Duration = Duration::from_secs(120);
/// Old entries are purged every this many recorded writes.
const PURGE_EVERY: usize = 1024;

/// Per object, the resourceVersions its own writes replaced, until a cache has moved past them.
pub(crate) struct OwnWrites<K: Resource<DynamicType = ()>> {
    inner: Mutex<Inner<K>>,
}

struct Inner<K: Resource<DynamicType = ()>> {
    versions: HashMap<ObjectRef<K>, (Vec<String>, Instant)>,
    /// Writes recorded since the last purge.
    since_purge: usize,
}

impl<K: Resource<DynamicType = ()>> Default for OwnWrites<K> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                versions: HashMap::new(),
                since_purge: 0,
            }),
        }
    }
}

impl<K: Resource<DynamicType = ()>> OwnWrites<K> {
    /// Records that a write changed `object` from version `before` to `after` (nothing when the
    /// write changed nothing, or there was no version before it).
    pub(crate) fn wrote(&self, object: ObjectRef<K>, before: Option<String>, after: Option<&str>) {
        let Some(before) = before.filter(|b| Some(b.as_str()) != after) else {
            return;
        };
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.since_purge += 1;
        if inner.since_purge >= PURGE_EVERY {
            inner.since_purge = 0;
            inner.versions.retain(|_, (_, at)| at.elapsed() < MEMORY);
        }
        let entry = inner
            .versions
            .entry(object)
            .or_insert_with(|| (Vec::new(), Instant::now()));
        entry.0.push(before);
        entry.1 = Instant::now();
    }

    /// Whether `version` of `object`, as a cache holds it, is one an own write has already
    /// replaced. Once a cache holds another version, the record is forgotten.
    pub(crate) fn replaced(&self, object: &ObjectRef<K>, version: Option<&str>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let stale = match (inner.versions.get(object), version) {
            (Some((versions, _)), Some(version)) => versions.iter().any(|v| v == version),
            (Some(_), None) => false,
            (None, _) => return false,
        };
        if !stale {
            inner.versions.remove(object);
        }
        stale
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;

    use super::*;

    fn key() -> ObjectRef<Secret> {
        ObjectRef::new("s").within("ns")
    }

    #[test]
    fn a_replaced_version_is_stale_until_another_is_seen() {
        let writes = OwnWrites::<Secret>::default();
        writes.wrote(key(), Some("1".into()), Some("2"));
        writes.wrote(key(), Some("2".into()), Some("3"));
        assert!(writes.replaced(&key(), Some("1")));
        assert!(writes.replaced(&key(), Some("2")));
        assert!(!writes.replaced(&key(), Some("3")));
        // Forgotten once the cache moved past the replaced versions.
        assert!(!writes.replaced(&key(), Some("1")));
    }

    #[test]
    fn a_write_that_changed_nothing_or_had_no_version_is_not_recorded() {
        let writes = OwnWrites::<Secret>::default();
        writes.wrote(key(), Some("1".into()), Some("1"));
        writes.wrote(key(), None, Some("2"));
        assert!(!writes.replaced(&key(), Some("1")));
        assert!(!writes.replaced(&ObjectRef::new("other").within("ns"), Some("1")));
    }
}
