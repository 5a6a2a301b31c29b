//! The webhook's managed certificate kept by the controller's leader
//! (`keyway-operator controller --webhook-cert-secret`), so that the webhook itself, which faces
//! the network, needs no access to Secrets: it reads the certificate from the Secret mounted as
//! a volume (`keyway-operator webhook --cert-mode files`). The leader runs the same idempotent
//! [`ManagedCerts::ensure`] the webhook's `managed` mode runs: it writes the Secret, patches the
//! bundle into the webhook configuration's `caBundle`, and renews before expiry.

use std::time::Duration;

use clap::Args;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::certs::ManagedCerts;

/// The controller's flags for the webhook's certificate.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct WebhookCertArgs {
    /// Keep the webhook's serving certificate in this Secret (`<namespace>/<name>`), written by
    /// the leader; the webhook mounts it (its `--cert-mode files`). Unset: not kept here.
    #[arg(long, env = "KEYWAY_WEBHOOK_CERT_SECRET")]
    pub(crate) webhook_cert_secret: Option<String>,
    /// The webhook's Service (in the Secret's namespace): the certificate names it.
    #[arg(long, env = "KEYWAY_WEBHOOK_SERVICE", default_value = "keyway-webhook")]
    pub(crate) webhook_service: String,
    /// MutatingWebhookConfiguration whose `caBundle` is kept current.
    #[arg(long, env = "KEYWAY_WEBHOOK_CONFIGURATION", default_value = "keyway")]
    pub(crate) webhook_configuration: String,
    /// Lifetime of a generated webhook certificate (at least 1h).
    #[arg(long, env = "KEYWAY_WEBHOOK_CERT_VALIDITY", default_value = "8760h")]
    pub(crate) webhook_cert_validity: String,
    /// Renew the webhook certificate when less than this is left (shorter than the validity).
    #[arg(long, env = "KEYWAY_WEBHOOK_CERT_RENEW_BEFORE", default_value = "720h")]
    pub(crate) webhook_cert_renew_before: String,
}

impl WebhookCertArgs {
    /// What the flags say (`None` without `--webhook-cert-secret`, or when they are wrong),
    /// every problem added to `out`.
    pub(crate) fn managed_certs(&self, out: &mut kit::problems::Problems) -> Option<ManagedCerts> {
        let secret = self
            .webhook_cert_secret
            .as_deref()
            .filter(|s| !s.is_empty())?;
        let mut problems = Vec::new();
        let mut duration = |flag: &str, value: &str| {
            contract::duration::parse_flag(value).unwrap_or_else(|e| {
                problems.push(format!("--{flag}: {e}"));
                Duration::ZERO
            })
        };
        let validity = duration("webhook-cert-validity", &self.webhook_cert_validity);
        let renew_before = duration("webhook-cert-renew-before", &self.webhook_cert_renew_before);
        if validity < Duration::from_secs(3600) {
            problems.push("--webhook-cert-validity must be at least 1h".into());
        }
        if renew_before >= validity {
            problems.push(
                "--webhook-cert-renew-before must be shorter than --webhook-cert-validity".into(),
            );
        }
        let parts = secret.split_once('/');
        let names = parts.map_or(vec![secret], |(ns, name)| vec![ns, name]);
        if names.len() != 2 || !names.iter().all(|n| super::is_dns_label(n)) {
            problems.push(format!(
                "--webhook-cert-secret: {secret:?} is not <namespace>/<name> (DNS labels)"
            ));
        }
        if !super::is_dns_label(&self.webhook_service) {
            problems.push(format!(
                "--webhook-service: {:?} is not a DNS label",
                self.webhook_service
            ));
        }
        if !super::inject::is_dns_subdomain(&self.webhook_configuration) {
            problems.push(format!(
                "--webhook-configuration: {:?} is not a DNS subdomain",
                self.webhook_configuration
            ));
        }
        if !problems.is_empty() {
            out.extend(problems);
            return None;
        }
        let (namespace, secret_name) = parts.unwrap_or_default();
        Some(ManagedCerts {
            namespace: namespace.to_owned(),
            secret_name: secret_name.to_owned(),
            service_name: self.webhook_service.clone(),
            webhook_config: self.webhook_configuration.clone(),
            validity,
            renew_before,
        })
    }
}

/// How often the leader checks that the webhook configuration still trusts the certificate: a
/// `caBundle` stripped or replaced (by `kubectl apply` of an old manifest, `helm upgrade`, a
/// person) is put back within this long, two GETs per check while nothing is wrong.
pub(crate) const CA_BUNDLE_CHECK: Duration = Duration::from_secs(5);

/// Keeps the webhook's certificate valid and trusted until `stop` is cancelled.
pub(crate) async fn keep(certs: ManagedCerts, client: kube::Client, stop: CancellationToken) {
    keep_every(certs, client, stop, CA_BUNDLE_CHECK).await;
}

/// [`keep`], checking every `check` at most.
pub(crate) async fn keep_every(
    certs: ManagedCerts,
    client: kube::Client,
    stop: CancellationToken,
    check: Duration,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let now = OffsetDateTime::now_utc();
        let wait = match certs.ensure(&client, now).await {
            Ok(ensured) => {
                backoff = Duration::from_secs(1);
                if ensured.patched_webhooks && !ensured.generated {
                    tracing::warn!(
                        config = %certs.webhook_config,
                        "the webhook configuration's caBundle was missing or wrong: repaired"
                    );
                }
                super::recheck_after(ensured.renew_at, now).min(check)
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "webhook certificate not ensured");
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(300));
                wait
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(secret: &str) -> WebhookCertArgs {
        WebhookCertArgs {
            webhook_cert_secret: Some(secret.into()),
            webhook_service: "kw-webhook".into(),
            webhook_configuration: "kw".into(),
            webhook_cert_validity: "8760h".into(),
            webhook_cert_renew_before: "720h".into(),
        }
    }

    #[test]
    fn unset_keeps_nothing_and_set_names_the_secret() {
        let mut problems = kit::problems::Problems::new();
        assert!(
            WebhookCertArgs::default()
                .managed_certs(&mut problems)
                .is_none()
        );
        let certs = args("keyway-system/kw-webhook-tls")
            .managed_certs(&mut problems)
            .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(certs.namespace, "keyway-system");
        assert_eq!(certs.secret_name, "kw-webhook-tls");
        assert_eq!(certs.service_name, "kw-webhook");
        assert_eq!(certs.webhook_config, "kw");
    }

    #[test]
    fn every_problem_is_reported_with_the_others() {
        let mut bad = args("kw-webhook-tls");
        bad.webhook_cert_validity = "30m".into();
        bad.webhook_configuration = "Not_A_Label".into();
        let mut problems = kit::problems::Problems::new();
        problems.push("an earlier problem".to_owned());
        assert!(bad.managed_certs(&mut problems).is_none());
        // The earlier one, the validity, the renewal, the Secret's name, the configuration's.
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("<namespace>/<name>")));
    }
}
