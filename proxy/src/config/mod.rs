//! Configuration: flags (each with a `KEYWAY_*` environment variable, set by the webhook on the
//! injected container; [`flags`]) and the files of the client Secret mounted in `--config-dir`
//! (see [`contract::secret`]; `files`), re-read when they change.
//!
//! Every problem is collected and reported at once; the binary exits with code 64 on bad config.

mod files;
mod flags;

pub(crate) use files::{AppConfig, load_app};
pub use flags::{Cli, CookieSecure, Settings};

#[cfg(test)]
mod tests;
