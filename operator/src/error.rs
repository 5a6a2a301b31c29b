//! The operator's one error type.

/// Errors of the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// The finalizer machinery failed (adding/removing it, or the wrapped reconcile).
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A ConnectedApp without a namespace (cannot happen for a namespaced resource).
    #[error("the object has no namespace")]
    MissingNamespace,
    /// The HTTP server could not start.
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    /// Generating a signing key failed.
    #[error("signing-key generation: {0}")]
    KeyGeneration(String),
    /// A controller still holds its leader Lease, so it could add the finalizer again.
    #[error(
        "the controller {holder} still holds the Lease {lease}: stop it (scale its Deployment to 0) and run this again"
    )]
    StillLeading {
        /// `<namespace>/<name>` of the Lease.
        lease: String,
        /// Its holder.
        holder: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short label for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Self::Kube(kube::Error::Api(_)) => "api",
            Self::Kube(_) => "client",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.kind(),
                _ => "finalizer",
            },
            Self::MissingNamespace => "missing_namespace",
            Self::Http(_) => "http",
            Self::KeyGeneration(_) => "key_generation",
            Self::StillLeading { .. } => "still_leading",
        }
    }
}
