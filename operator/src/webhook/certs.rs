//! The webhook's serving certificate.
//!
//! Two modes:
//! - **managed** (default): the operator generates a short chain (a throw-away CA that signs one
//!   serving certificate), stores it in a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, and
//!   `ca.crt`: the bundle of every CA still trusted), patches that bundle into the
//!   `MutatingWebhookConfiguration`'s `caBundle`, and renews before expiry. The CA's private key is
//!   never stored: each renewal makes a new CA, and the bundle keeps the previous CAs until their
//!   certificates expire, so the API server trusts both the old and the new serving certificate
//!   while replicas switch over. Every replica runs the same idempotent [`ManagedCerts::ensure`]
//!   (optimistic concurrency on the Secret, `test`-guarded JSON patches on the webhook
//!   configuration), and patches the `caBundle` before it serves a certificate.
//! - **files**: `tls.crt` and `tls.key` from a directory (cert-manager's Secret mounted as a
//!   volume; cert-manager's CA injector fills `caBundle`), re-read when they change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

/// Secret key of the serving certificate (PEM).
pub const TLS_CRT: &str = "tls.crt";
/// Secret key of the serving certificate's private key (PKCS #8 PEM).
pub(crate) const TLS_KEY: &str = "tls.key";
/// Secret key of the CA bundle the API server must trust (PEM, one or more certificates).
pub const CA_CRT: &str = "ca.crt";

/// Errors of certificate management.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen could not build a certificate.
    #[error("generating the serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A certificate or key could not be read.
    #[error("reading {what}: {detail}")]
    Parse {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A certificate file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Others kept changing the Secret; the next attempt will read it again.
    #[error("the Secret {0} changed under us too many times in a row")]
    Contended(String),
}

/// A freshly generated chain.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The CA certificate (PEM) to add to the bundle.
    pub ca_pem: String,
    /// The serving certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS #8 PEM).
    pub key_pem: String,
}

/// The DNS names of a Service: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Generates a CA and a serving certificate for `dns_names` valid from `now` (less a minute of
/// clock skew) for `validity`. ECDSA P-256 keys.
pub fn generate(
    dns_names: &[String],
    validity: Duration,
    now: OffsetDateTime,
) -> Result<Generated, CertError> {
    let not_before = now - Duration::from_secs(60);
    let not_after = now + validity;
    let first = dns_names.first().cloned().unwrap_or_default();

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(
        DnType::CommonName,
        format!("keyway webhook CA {}", now.unix_timestamp()),
    );
    ca.distinguished_name = ca_dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(dns_names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, first);
    leaf.distinguished_name = dn;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let cert = leaf.signed_by(&key, &issuer)?;

    Ok(Generated {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What we need to know about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
}

/// Reads the first certificate of a PEM text.
pub fn inspect(pem: &[u8]) -> Result<CertInfo, CertError> {
    let bad = |detail: String| CertError::Parse {
        what: "certificate",
        detail,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                dns_names.push((*n).to_string());
            }
        }
    }
    Ok(CertInfo {
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
    })
}

/// Splits a PEM bundle into its certificates (each as PEM text), in order.
pub fn split_bundle(bundle: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = bundle;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let stop = start + len + END.len();
        out.push(format!("{}\n", &rest[start..stop]));
        rest = &rest[stop..];
    }
    out
}

/// The new bundle: `new_ca` first, then every certificate of `old_bundle` that is still valid
/// at `now` and is not a duplicate.
pub(crate) fn merge_bundle(new_ca: &str, old_bundle: &str, now: OffsetDateTime) -> String {
    let mut certs = vec![new_ca.to_string()];
    for cert in split_bundle(old_bundle) {
        let valid = inspect(cert.as_bytes()).is_ok_and(|i| i.not_after > now.unix_timestamp());
        if valid && !certs.contains(&cert) {
            certs.push(cert);
        }
    }
    certs.concat()
}

/// Why a stored certificate must be replaced, or `None` when it can stay.
pub(crate) fn renewal_reason(
    data: Option<&BTreeMap<String, ByteString>>,
    dns_names: &[String],
    now: OffsetDateTime,
    renew_before: Duration,
) -> Option<&'static str> {
    let Some(data) = data else {
        return Some("no certificate yet");
    };
    let (Some(crt), Some(key), Some(ca)) = (data.get(TLS_CRT), data.get(TLS_KEY), data.get(CA_CRT))
    else {
        return Some("the Secret lacks tls.crt, tls.key or ca.crt");
    };
    if certified_key(&crt.0, &key.0).is_err() {
        return Some("the stored certificate or key cannot be used");
    }
    let Ok(info) = inspect(&crt.0) else {
        return Some("the stored certificate cannot be parsed");
    };
    if !dns_names.iter().all(|n| info.dns_names.contains(n)) {
        return Some("the Service's DNS names changed");
    }
    let renew_before = i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX);
    if info.not_after.saturating_sub(renew_before) <= now.unix_timestamp() {
        return Some("the certificate expires soon");
    }
    let ca_text = String::from_utf8_lossy(&ca.0);
    if split_bundle(&ca_text).is_empty() {
        return Some("the stored CA bundle is empty");
    }
    None
}

/// A rustls key from PEM certificate chain and key, checked to belong together.
pub(crate) fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, CertError> {
    kit::tls::certified_key(cert_pem, key_pem).map_err(|e| CertError::Parse {
        what: "the serving certificate",
        detail: e.to_string(),
    })
}

/// The certificate the HTTPS server presents; replaced in place on renewal or file change.
pub use kit::tls::CertSlot;

/// Where the managed certificate lives and who must trust it.
#[derive(Clone, Debug)]
pub struct ManagedCerts {
    /// The namespace of the webhook's Service and Secret.
    pub namespace: String,
    /// The Secret holding the certificate.
    pub secret_name: String,
    /// The webhook's Service (the certificate's DNS names derive from it).
    pub service_name: String,
    /// The `MutatingWebhookConfiguration` whose `caBundle`s are kept current.
    pub webhook_config: String,
    /// Lifetime of each generated certificate.
    pub validity: Duration,
    /// Renew when less than this is left.
    pub renew_before: Duration,
}

/// The outcome of [`ManagedCerts::ensure`].
#[derive(Clone, Debug)]
pub struct Ensured {
    /// The certificate to serve.
    pub key: Arc<CertifiedKey>,
    /// When it must be renewed (Unix seconds).
    pub renew_at: i64,
    /// When it expires (Unix seconds).
    pub not_after: i64,
    /// Whether this call generated a new certificate.
    pub generated: bool,
    /// Whether this call patched the webhook configuration.
    pub patched_webhooks: bool,
}

const FIELD_MANAGER: &str = "keyway-webhook";

impl ManagedCerts {
    /// Makes sure a valid certificate is stored and trusted, and returns it. Idempotent: with
    /// nothing to change it only reads.
    pub async fn ensure(&self, client: &Client, now: OffsetDateTime) -> Result<Ensured, CertError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let names = service_dns_names(&self.service_name, &self.namespace);
        let kube_err = |action: String| move |source| CertError::Kube { action, source };
        let mut generated = false;
        let mut stored = None;
        for _ in 0..5 {
            let existing = secrets
                .get_opt(&self.secret_name)
                .await
                .map_err(kube_err(format!("reading Secret {}", self.secret_name)))?;
            let data = existing.as_ref().and_then(|s| s.data.as_ref());
            let Some(reason) = renewal_reason(data, &names, now, self.renew_before) else {
                stored = data.cloned();
                break;
            };
            tracing::info!(secret = %self.secret_name, reason, "generating webhook certificate");
            let fresh = generate(&names, self.validity, now)?;
            let old_bundle = data
                .and_then(|d| d.get(CA_CRT))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .unwrap_or_default();
            let bundle = merge_bundle(&fresh.ca_pem, &old_bundle, now);
            let new_data = BTreeMap::from([
                (TLS_CRT.to_string(), ByteString(fresh.cert_pem.into_bytes())),
                (TLS_KEY.to_string(), ByteString(fresh.key_pem.into_bytes())),
                (CA_CRT.to_string(), ByteString(bundle.into_bytes())),
            ]);
            let result = match existing {
                None => {
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(self.secret_name.clone()),
                            namespace: Some(self.namespace.clone()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/managed-by".to_string(),
                                "keyway-operator".to_string(),
                            )])),
                            ..Default::default()
                        },
                        type_: Some("kubernetes.io/tls".to_string()),
                        data: Some(new_data.clone()),
                        ..Default::default()
                    };
                    secrets.create(&PostParams::default(), &secret).await
                }
                Some(mut secret) => {
                    // Replace carries the resourceVersion we read: a concurrent writer makes
                    // this fail with 409 and we start over from its result.
                    secret.data = Some(new_data.clone());
                    secret.string_data = None;
                    secrets
                        .replace(&self.secret_name, &PostParams::default(), &secret)
                        .await
                }
            };
            match result {
                Ok(_) => {
                    generated = true;
                    stored = Some(new_data);
                    break;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => {
                    return Err(CertError::Kube {
                        action: format!("writing Secret {}", self.secret_name),
                        source: e,
                    });
                }
            }
        }
        let Some(data) = stored else {
            return Err(CertError::Contended(self.secret_name.clone()));
        };
        let crt = data
            .get(TLS_CRT)
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        let key = data
            .get(TLS_KEY)
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        let bundle = data.get(CA_CRT).map(|b| b.0.clone()).unwrap_or_default();
        let certified = certified_key(crt, key)?;
        let info = inspect(crt)?;
        let renew_before = i64::try_from(self.renew_before.as_secs()).unwrap_or(i64::MAX);

        let patched_webhooks = self.patch_ca_bundle(client, &bundle).await?;
        Ok(Ensured {
            key: certified,
            renew_at: info.not_after.saturating_sub(renew_before),
            not_after: info.not_after,
            generated,
            patched_webhooks,
        })
    }

    /// Sets `caBundle` on every webhook of the configuration that does not already carry it.
    /// Returns whether anything was patched. A missing configuration is logged, not an error:
    /// the chart creates it, and until it exists no request can reach the webhook anyway.
    async fn patch_ca_bundle(&self, client: &Client, bundle: &[u8]) -> Result<bool, CertError> {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let Some(config) =
            api.get_opt(&self.webhook_config)
                .await
                .map_err(|source| CertError::Kube {
                    action: format!(
                        "reading MutatingWebhookConfiguration {}",
                        self.webhook_config
                    ),
                    source,
                })?
        else {
            tracing::warn!(
                config = %self.webhook_config,
                "MutatingWebhookConfiguration not found; caBundle not set"
            );
            return Ok(false);
        };
        let mut ops = Vec::new();
        for (i, webhook) in config.webhooks.iter().flatten().enumerate() {
            if webhook
                .client_config
                .ca_bundle
                .as_ref()
                .map(|b| b.0.as_slice())
                == Some(bundle)
            {
                continue;
            }
            // The `test` guards against the list having changed since we read it.
            ops.push(serde_json::json!({
                "op": "test", "path": format!("/webhooks/{i}/name"), "value": webhook.name
            }));
            ops.push(serde_json::json!({
                "op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                "value": ByteString(bundle.to_vec()),
            }));
        }
        if ops.is_empty() {
            return Ok(false);
        }
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
            .map_err(|e| CertError::Parse {
                what: "caBundle patch",
                detail: e.to_string(),
            })?;
        api.patch(
            &self.webhook_config,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..Default::default()
            },
            &Patch::<()>::Json(patch),
        )
        .await
        .map_err(|source| CertError::Kube {
            action: format!("patching caBundle of {}", self.webhook_config),
            source,
        })?;
        tracing::info!(config = %self.webhook_config, "caBundle updated");
        Ok(true)
    }
}

/// Certificate files in a directory (cert-manager mode).
#[derive(Clone, Debug)]
pub struct FileCerts {
    /// The directory holding `tls.crt` and `tls.key`.
    pub dir: PathBuf,
    /// How often the files are read again (Secret volumes change in place, atomically).
    pub poll: Duration,
}

impl FileCerts {
    /// Reads both files; returns their bytes (certificate PEM first, to detect changes and read
    /// the expiry) and the key.
    pub(crate) async fn load(&self) -> Result<(Vec<u8>, Arc<CertifiedKey>), CertError> {
        let read = |name: &str| {
            let path = self.dir.join(name);
            async move {
                tokio::fs::read(&path)
                    .await
                    .map_err(|source| CertError::Io { path, source })
            }
        };
        let crt = read(TLS_CRT).await?;
        let key = read(TLS_KEY).await?;
        let certified = certified_key(&crt, &key)?;
        let mut fingerprint = crt;
        fingerprint.extend_from_slice(&key);
        Ok((fingerprint, certified))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn names() -> Vec<String> {
        service_dns_names("keyway-webhook", "keyway-system")
    }

    #[test]
    fn generated_chain_is_usable_and_named() {
        let now = OffsetDateTime::now_utc();
        let g = generate(&names(), Duration::from_secs(86400), now).unwrap();
        certified_key(g.cert_pem.as_bytes(), g.key_pem.as_bytes()).unwrap();
        let info = inspect(g.cert_pem.as_bytes()).unwrap();
        assert_eq!(info.dns_names, names());
        assert_eq!(
            info.not_after,
            (now + Duration::from_secs(86400)).unix_timestamp()
        );
        // The serving key does not match the CA certificate.
        assert!(certified_key(g.ca_pem.as_bytes(), g.key_pem.as_bytes()).is_err());
    }

    #[test]
    fn renewal_reasons() {
        let now = OffsetDateTime::now_utc();
        let day = Duration::from_secs(86400);
        let g = generate(&names(), day * 30, now).unwrap();
        let data = BTreeMap::from([
            (
                TLS_CRT.to_string(),
                ByteString(g.cert_pem.clone().into_bytes()),
            ),
            (
                TLS_KEY.to_string(),
                ByteString(g.key_pem.clone().into_bytes()),
            ),
            (
                CA_CRT.to_string(),
                ByteString(g.ca_pem.clone().into_bytes()),
            ),
        ]);
        assert_eq!(renewal_reason(Some(&data), &names(), now, day * 10), None);
        assert_eq!(
            renewal_reason(Some(&data), &names(), now + day * 21, day * 10),
            Some("the certificate expires soon")
        );
        let other = service_dns_names("other", "keyway-system");
        assert_eq!(
            renewal_reason(Some(&data), &other, now, day),
            Some("the Service's DNS names changed")
        );
        assert_eq!(
            renewal_reason(None, &names(), now, day),
            Some("no certificate yet")
        );
        let mut broken = data.clone();
        broken.insert(TLS_KEY.to_string(), ByteString(b"junk".to_vec()));
        assert_eq!(
            renewal_reason(Some(&broken), &names(), now, day),
            Some("the stored certificate or key cannot be used")
        );
    }

    #[test]
    fn bundle_keeps_valid_cas_only() {
        let now = OffsetDateTime::now_utc();
        let day = Duration::from_secs(86400);
        let old = generate(&names(), day, now - day * 2).unwrap(); // expired
        let current = generate(&names(), day * 10, now).unwrap();
        let new = generate(&names(), day * 10, now).unwrap();
        let old_bundle = format!("{}{}", old.ca_pem, current.ca_pem);
        let merged = merge_bundle(&new.ca_pem, &old_bundle, now);
        let certs = split_bundle(&merged);
        assert_eq!(certs, vec![new.ca_pem.clone(), current.ca_pem.clone()]);
        // Idempotent.
        assert_eq!(merge_bundle(&new.ca_pem, &merged, now), merged);
    }
}
