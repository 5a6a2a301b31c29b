//! The parts of a Kubernetes Event the operator fills in itself, in the shape the API and
//! the recorder ([`crate::event_recorder`]) need:
//! - [`event_note`]: `events.k8s.io/v1` refuses a `note` longer than 1 KiB (1024 bytes) with 422,
//!   and the event is then lost. Every note the operator records passes through it.
//! - [`regarding`]: the recorder counts a repeat of an event (same type, action, reason and
//!   object) as a series on the first one (one PATCH) instead of creating a new Event, but only
//!   when the object reference is equal; a reference that carries the object's
//!   `resourceVersion` differs after every write to it, so repeats would pile up as separate
//!   Events. Like client-go's correlator, the reference leaves the version out.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

/// The reference to `object` an Event regards: kind, name, namespace, UID, no
/// `resourceVersion`.
pub(crate) fn regarding<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    ObjectReference {
        resource_version: None,
        ..object.object_ref(&())
    }
}

/// The longest note the API server accepts, in bytes.
pub(crate) const NOTE_LIMIT: usize = 1024;

/// What is cut off is replaced by this, so a reader sees the note is incomplete.
const ELLIPSIS: &str = "…";

/// `note` unchanged when it fits in [`NOTE_LIMIT`] bytes, else cut at a character boundary
/// and ended with `…`, in [`NOTE_LIMIT`] bytes at most.
pub(crate) fn event_note(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_owned();
    }
    let mut end = NOTE_LIMIT - ELLIPSIS.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_of_an_object_is_regarded_the_same() {
        let mut secret = k8s_openapi::api::core::v1::Secret::default();
        secret.metadata.name = Some("keys".into());
        secret.metadata.namespace = Some("keyway".into());
        secret.metadata.uid = Some("uid-1".into());
        secret.metadata.resource_version = Some("1".into());
        let first = regarding(&secret);
        secret.metadata.resource_version = Some("2".into());
        assert_eq!(regarding(&secret), first);
        assert_eq!(first.resource_version, None);
        assert_eq!(first.kind.as_deref(), Some("Secret"));
        assert_eq!(first.uid.as_deref(), Some("uid-1"));
        assert_eq!(first.name.as_deref(), Some("keys"));
    }

    #[test]
    fn a_note_that_fits_is_kept_whole() {
        let note = "x".repeat(NOTE_LIMIT);
        assert_eq!(event_note(&note), note);
        assert_eq!(event_note(""), "");
    }

    #[test]
    fn a_long_note_is_cut_to_the_limit_and_marked() {
        let note = "x".repeat(5000);
        let cut = event_note(&note);
        assert!(cut.len() <= NOTE_LIMIT, "{}", cut.len());
        assert!(cut.len() >= NOTE_LIMIT - 3, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(note.starts_with(cut.trim_end_matches('…')));
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // Multi-byte characters at every offset around the cut.
        for prefix in 0..4 {
            let note = format!("{}{}", "a".repeat(prefix), "é😀".repeat(400));
            let cut = event_note(&note);
            assert!(cut.len() <= NOTE_LIMIT);
            assert!(note.starts_with(cut.trim_end_matches('…')));
        }
    }
}
