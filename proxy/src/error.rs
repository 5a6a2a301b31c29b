//! The errors of the proxy's setup. Request-path errors never come here: they become responses in
//! one place, [`crate::pipeline::respond`].

/// Errors of the proxy's setup (request-path errors become responses in `pipeline::respond`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration: every problem.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    /// Binding or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
