//! Kubernetes Event notes within the API's limit: `events.k8s.io/v1` refuses a `note` longer
//! than 1 KiB (1024 bytes) with 422, and the event is then lost. Every note the operator
//! records passes through [`event_note`].

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
