//! The operator's Kubernetes client: configured from the environment (in-cluster or
//! `KUBECONFIG`), with a User-Agent that names keyway-operator, its version and the part of it
//! that asks (`keyway-operator/0.1.0 controller`), as client-go's clients do. The API server's
//! audit log shows it with every request, and the API server takes the text before the first
//! `/` as the field manager of a write that names none (the finalizer patch of kube-runtime's
//! helper): `keyway-operator`, not `unknown`.

use http::HeaderValue;
use http::header::USER_AGENT;

/// The part of the binary a client belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    Controller,
    Webhook,
    RemoveFinalizers,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Self::Controller => "controller",
            Self::Webhook => "webhook",
            Self::RemoveFinalizers => "remove-finalizers",
        }
    }

    fn user_agent(self) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        let version = env!("CARGO_PKG_VERSION");
        HeaderValue::try_from(format!("keyway-operator/{version} {}", self.name()))
    }
}

/// A client from the environment whose requests carry `part`'s User-Agent.
pub(crate) async fn connect(part: Part) -> Result<kube::Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let user_agent = part
        .user_agent()
        .map_err(|e| kube::Error::HttpError(e.into()))?;
    config.headers.push((USER_AGENT, user_agent));
    kube::Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_name_the_operator_its_version_and_the_part() {
        let version = env!("CARGO_PKG_VERSION");
        for (part, name) in [
            (Part::Controller, "controller"),
            (Part::Webhook, "webhook"),
            (Part::RemoveFinalizers, "remove-finalizers"),
        ] {
            let expected = format!("keyway-operator/{version} {name}");
            assert!(part.user_agent().is_ok_and(|v| v == expected.as_str()));
        }
    }
}
