//! Kubernetes events on the app: those the plan lists, and `Unregistered` when the app is
//! deleted. Best effort: failing to record one must not fail (and repeat) the work.

use api::ConnectedApp;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

use crate::context::Context;
use crate::event_fields::{event_note, regarding};
use crate::metrics::Write;
use crate::plan::PlannedEvent;

/// Records the plan's events, and counts each one recorded.
pub(super) async fn record(app: &ConnectedApp, events: &[PlannedEvent], ctx: &Context) {
    let reference = regarding(app);
    for event in events {
        let ev = Event {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.clone(),
            note: Some(event_note(&event.note)),
            action: "Reconcile".into(),
            secondary: None,
        };
        match ctx.recorder.publish(&ev, &reference).await {
            Ok(()) => ctx.metrics.write(Write::Event),
            Err(e) => warn!(error = %e, reason = %event.reason, "could not record event"),
        }
    }
}

/// Records that the app's client was removed, and counts it when recorded.
pub(super) async fn unregistered(app: &ConnectedApp, ctx: &Context) {
    let ev = Event {
        type_: EventType::Normal,
        reason: "Unregistered".into(),
        note: Some(event_note(&format!(
            "client {} removed",
            app.client_id().unwrap_or_default()
        ))),
        action: "Delete".into(),
        secondary: None,
    };
    match ctx.recorder.publish(&ev, &regarding(app)).await {
        Ok(()) => ctx.metrics.write(Write::Event),
        Err(e) => warn!(error = %e, "could not record event"),
    }
}
