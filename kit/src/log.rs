//! Logging: the global `tracing` subscriber, filtered by `RUST_LOG`-style directives, written
//! as human-readable text or as one JSON object per line (the event's fields beside `message`,
//! `level`, `target` and `timestamp`, and the enclosing spans under `spans`).
//!
//! Only what the code logs is written: callers never put tokens, codes, cookies or secrets
//! into fields or messages, and the subscriber adds nothing from the process or the request.

use std::fmt;
use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: `timestamp level target: message field=value`.
    #[default]
    Text,
    /// For log collectors: one JSON object per line.
    Json,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is not text or json")),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Parses filter directives (`RUST_LOG` syntax, e.g. `info,kube=warn`).
pub fn filter(directives: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(directives).map_err(|e| format!("log filter {directives:?}: {e}"))
}

/// The directives in the environment variable `var` when it holds valid ones, else `default`.
pub fn filter_from_env(var: &str, default: &str) -> EnvFilter {
    EnvFilter::try_from_env(var).unwrap_or_else(|_| EnvFilter::new(default))
}

/// The subscriber [`init`] installs, for callers that scope it (tests) rather than install it.
pub fn subscriber<W>(
    format: Format,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        Format::Text => Box::new(builder.finish()),
        Format::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
    }
}

/// Installs the global subscriber; fails when one is installed already.
pub fn init<W>(format: Format, filter: EnvFilter, writer: W) -> Result<(), String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing::subscriber::set_global_default(subscriber(format, filter, writer))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::{Format, filter};

    /// A writer into memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn logged(format: Format, directives: &str) -> String {
        let out = Captured::default();
        let subscriber = super::subscriber(format, filter(directives).unwrap(), out.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("reconcile", app = "grafana");
            let _entered = span.enter();
            tracing::info!(client = "tools.grafana", status = 200_u16, "signed in");
            tracing::debug!("filtered out at info");
            tracing::warn!(reason = "a \"quoted\"\nvalue", "refused");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_is_one_object_per_line_with_the_events_fields_and_nothing_else() {
        let text = logged(Format::Json, "info");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = lines[0].as_object().unwrap();
        assert_eq!(first["message"], "signed in");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["client"], "tools.grafana");
        assert_eq!(first["status"], 200);
        assert_eq!(first["spans"][0]["app"], "grafana");
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort_unstable();
        // Nothing but the event, where it came from and when: no span fields copied into the
        // event, no thread, file or environment.
        assert_eq!(
            keys,
            [
                "client",
                "level",
                "message",
                "spans",
                "status",
                "target",
                "timestamp"
            ]
        );
        assert_eq!(lines[1]["reason"], "a \"quoted\"\nvalue");
    }

    #[test]
    fn text_is_one_line_per_event_and_filters_apply() {
        let text = logged(Format::Text, "warn");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("refused"), "{text}");
        assert!(!text.contains("signed in"), "{text}");
    }

    #[test]
    fn formats_and_filters_are_parsed() {
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("text".parse::<Format>(), Ok(Format::Text));
        assert_eq!(
            "yaml".parse::<Format>(),
            Err("\"yaml\" is not text or json".to_string())
        );
        assert!(filter("info,kube=warn").is_ok());
        assert!(filter("info,kube=loud").is_err());
    }
}
