//! Publishes Kubernetes Events (`events.k8s.io/v1`) the way kube-runtime's recorder and
//! client-go's correlator do: a repeat of an event (same type, action, reason, reporter and
//! object) within six minutes of its last occurrence becomes a series on the first one (one
//! merge PATCH with `series.count`) instead of a new Event.
//!
//! Unlike kube-runtime's recorder, which walks every recent event under one lock on each publish
//! (a cold start over N apps then costs O(N²) and serialises every publish), the recent events
//! are swept at most once a second, and the lock is never held across a request.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client, ResourceExt as _};

/// A repeat within this time of an event's last occurrence joins its series.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// Events older than [`SERIES_WINDOW`] are forgotten at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What makes two events the same occurrence repeated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    warning: bool,
    action: String,
    reason: String,
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

impl Key {
    fn new(ev: &Event, regarding: &ObjectReference) -> Self {
        Key {
            warning: matches!(ev.type_, EventType::Warning),
            action: ev.action.clone(),
            reason: ev.reason.clone(),
            api_version: regarding.api_version.clone(),
            kind: regarding.kind.clone(),
            namespace: regarding.namespace.clone(),
            name: regarding.name.clone(),
            uid: regarding.uid.clone(),
        }
    }
}

/// The events published recently, each with when it last occurred.
#[derive(Default)]
struct Recent {
    events: HashMap<Key, (KubeEvent, Instant)>,
    swept_at: Option<Instant>,
    sweeps: u64,
}

impl Recent {
    /// Forgets the events whose series window has passed, unless that was done less than
    /// [`SWEEP_EVERY`] ago.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept_at
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        self.events
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < SERIES_WINDOW);
        self.swept_at = Some(now);
        self.sweeps += 1;
    }

    /// The event to repeat as a series, when `key` occurred within the window.
    fn repeat_of(&self, key: &Key, now: Instant) -> Option<KubeEvent> {
        self.events
            .get(key)
            .filter(|(_, at)| now.saturating_duration_since(*at) < SERIES_WINDOW)
            .map(|(event, _)| event.clone())
    }
}

/// Publishes Events as one reporter (controller and instance).
pub(crate) struct EventRecorder {
    client: Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
}

impl EventRecorder {
    /// A recorder publishing through `client` as `reporter`.
    pub(crate) fn new(client: Client, reporter: Reporter) -> Self {
        EventRecorder {
            client,
            reporter,
            recent: Mutex::new(Recent::default()),
        }
    }

    /// Publishes `ev` about the object `regarding`: a new Event, or the next count of the series
    /// of the same event published within the window.
    pub(crate) async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = Key::new(ev, regarding);
        let repeat = {
            let mut recent = self.lock();
            let now = Instant::now();
            recent.sweep(now);
            recent.repeat_of(&key, now)
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<KubeEvent> = Api::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        let event = match repeat {
            Some(mut event) => {
                let count = event.series.as_ref().map_or(2, |s| s.count + 1);
                event.series = Some(EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                });
                let name = event.name_any();
                events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&event))
                    .await?;
                event
            }
            None => {
                let event = self.new_event(ev, regarding, now);
                events.create(&PostParams::default(), &event).await?;
                event
            }
        };
        self.lock().events.insert(key, (event, Instant::now()));
        Ok(())
    }

    fn new_event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> KubeEvent {
        let controller = &self.reporter.controller;
        let name = regarding.name.as_deref().unwrap_or(controller);
        KubeEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..KubeEvent::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reason: &str, name: &str) -> Key {
        let ev = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: None,
            action: "Reconcile".into(),
            secondary: None,
        };
        let regarding = ObjectReference {
            kind: Some("ConnectedApp".into()),
            namespace: Some("tools".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        };
        Key::new(&ev, &regarding)
    }

    #[test]
    fn recent_events_are_swept_at_most_once_a_second() {
        let start = Instant::now();
        let mut recent = Recent::default();
        for i in 0..1000 {
            recent.sweep(start);
            recent.events.insert(
                key("Registered", &i.to_string()),
                (KubeEvent::default(), start),
            );
        }
        assert_eq!(
            recent.sweeps, 1,
            "one walk over the events, not one per publish"
        );
        recent.sweep(start + SWEEP_EVERY);
        assert_eq!((recent.sweeps, recent.events.len()), (2, 1000));
        recent.sweep(start + SERIES_WINDOW);
        assert_eq!(
            (recent.sweeps, recent.events.len()),
            (3, 0),
            "the window has passed"
        );
    }

    #[test]
    fn a_repeat_joins_the_series_only_within_the_window_and_for_the_same_event() {
        let start = Instant::now();
        let mut recent = Recent::default();
        let first = KubeEvent {
            metadata: ObjectMeta {
                name: Some("a.1".into()),
                ..ObjectMeta::default()
            },
            ..KubeEvent::default()
        };
        recent
            .events
            .insert(key("SecretUpdated", "a"), (first, start));
        let soon = start + Duration::from_secs(60);
        let repeat = recent.repeat_of(&key("SecretUpdated", "a"), soon);
        assert_eq!(repeat.and_then(|e| e.metadata.name).as_deref(), Some("a.1"));
        assert!(
            recent.repeat_of(&key("SecretUpdated", "b"), soon).is_none(),
            "another app"
        );
        assert!(
            recent.repeat_of(&key("Registered", "a"), soon).is_none(),
            "another reason"
        );
        let late = start + SERIES_WINDOW;
        assert!(
            recent.repeat_of(&key("SecretUpdated", "a"), late).is_none(),
            "window passed"
        );
    }
}
