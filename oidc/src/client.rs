//! The HTTP(S) client of a relying party: a provider's metadata (OpenID Connect Discovery /
//! RFC 8414), its keys (JWKS, refetched on an unknown `kid` at most once per interval), the token
//! endpoint (code exchange and refresh), RFC 7009 revocation and userinfo. Only the provider's
//! public, standard HTTP surface is used; each request times out after 10 s and reads at most
//! 1 MiB.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::discovery::Metadata;
use crate::jwks::KeySet;
use crate::provider::Provider;

/// Largest provider response read.
const MAX_RESPONSE: usize = 1 << 20;
/// Timeout of one request to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Errors talking to the provider.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Transport failure.
    #[error("request to {url} failed: {reason}")]
    Transport {
        /// The URL (never carries secrets).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Non-success status.
    #[error("{url} answered {status}: {error}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// OAuth `error` code, if any.
        error: String,
    },
    /// Unparseable body.
    #[error("{url}: invalid response: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// A token endpoint response (RFC 6749 section 5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// Access token.
    pub access_token: String,
    /// Lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// ID token.
    #[serde(default)]
    pub id_token: Option<String>,
    /// Granted scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// Token type (must be Bearer).
    #[serde(default)]
    pub token_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// HTTP(S) client for a provider.
#[derive(Clone)]
pub struct Client {
    client: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client; the system's trust roots are loaded only when `https` is true, and
    /// the PEM certificates in `extra_ca` are trusted too.
    pub fn new(https: bool, extra_ca: Option<&std::path::Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        if https {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(connector);
        Ok(Client { client })
    }

    async fn send(&self, req: http::Request<Full<Bytes>>) -> Result<(u16, Bytes), OidcError> {
        let url = strip_query(&req.uri().to_string());
        let transport = |reason: String| OidcError::Transport {
            url: url.clone(),
            reason,
        };
        let resp = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| transport("timed out".into()))?
            .map_err(|e| transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(
            TIMEOUT,
            Limited::new(resp.into_body(), MAX_RESPONSE).collect(),
        )
        .await
        .map_err(|_| transport("timed out reading the body".into()))?
        .map_err(|e| transport(e.to_string()))?
        .to_bytes();
        Ok((status, body))
    }

    async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Bytes, OidcError> {
        let mut req = http::Request::get(url).header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| OidcError::Transport {
                url: url.into(),
                reason: e.to_string(),
            })?;
        let (status, body) = self.send(req).await?;
        if status != 200 {
            return Err(OidcError::Status {
                url: url.into(),
                status,
                error: String::new(),
            });
        }
        Ok(body)
    }

    /// Fetches discovery metadata and checks `issuer` exactly (OIDC Discovery 4.3).
    pub async fn discover(&self, issuer: &str) -> Result<Metadata, OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = self.get(&url, None).await?;
        let md: Metadata = serde_json::from_slice(&body).map_err(|e| OidcError::Invalid {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if md.issuer != issuer {
            return Err(OidcError::Invalid {
                url,
                reason: format!(
                    "issuer {:?} differs from the configured {issuer:?}",
                    md.issuer
                ),
            });
        }
        Ok(md)
    }

    /// Fetches and parses a JWKS.
    pub async fn jwks(&self, url: &str) -> Result<KeySet, OidcError> {
        let body = self.get(url, None).await?;
        let keys = KeySet::from_jwks(&body).map_err(|e| OidcError::Invalid {
            url: url.into(),
            reason: e.to_string(),
        })?;
        if keys.is_empty() {
            return Err(OidcError::Invalid {
                url: url.into(),
                reason: "no usable signing key".into(),
            });
        }
        Ok(keys)
    }

    /// Loads metadata, then keys.
    pub async fn load(&self, issuer: &str) -> Result<Provider, OidcError> {
        let metadata = self.discover(issuer).await?;
        let keys = self.jwks(&metadata.jwks_uri).await?;
        Ok(Provider::new(metadata, keys))
    }

    /// Refetches the keys when a token names an unknown `kid`, at most once per `min_interval`.
    /// Returns whether new keys were loaded.
    pub async fn refetch_keys(&self, provider: &Provider, min_interval: Duration) -> bool {
        let _guard = provider.refetch.lock().await;
        if provider.fetched_at().elapsed() < min_interval {
            return false;
        }
        match self.jwks(&provider.metadata.jwks_uri).await {
            Ok(keys) => {
                provider.set_keys(keys);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refetch failed");
                provider.mark_fetched();
                false
            }
        }
    }

    /// Periodic refresh of the keys (keeps the old ones on failure).
    pub async fn refresh_keys(&self, provider: &Provider) -> Result<(), OidcError> {
        let keys = self.jwks(&provider.metadata.jwks_uri).await?;
        provider.set_keys(keys);
        Ok(())
    }

    /// POSTs a form to an endpoint of the issuer with client authentication:
    /// `client_secret_basic`, or `client_secret_post` when that is all `methods` lists; a public
    /// client sends its `client_id` in the form.
    async fn post_form(
        &self,
        url: &str,
        methods: Option<&Vec<String>>,
        client_id: &str,
        client_secret: Option<&str>,
        params: &[(&str, &str)],
    ) -> Result<(u16, Bytes), OidcError> {
        // Build the form before any await: the serializer is not Send.
        let form_body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let mut form_extra = String::new();
        let mut builder = http::Request::post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        let post_only = methods.is_some_and(|m| {
            m.iter().any(|x| x == "client_secret_post")
                && !m.iter().any(|x| x == "client_secret_basic")
        });
        match client_secret {
            Some(secret) if !post_only => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(client_id),
                    enc(secret)
                ));
                builder = builder.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
            }
            Some(secret) => {
                form_extra = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", secret)
                    .finish();
            }
            None => {
                form_extra = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", client_id)
                    .finish();
            }
        }
        let req = builder
            .body(Full::new(Bytes::from(if form_extra.is_empty() {
                form_body
            } else {
                format!("{form_body}&{form_extra}")
            })))
            .map_err(|e| OidcError::Transport {
                url: url.into(),
                reason: e.to_string(),
            })?;
        self.send(req).await
    }

    /// Revokes a refresh token at the issuer's RFC 7009 revocation endpoint (client
    /// authenticated, `token_type_hint=refresh_token`). `Ok(false)` when the issuer has none.
    pub async fn revoke_refresh_token(
        &self,
        metadata: &Metadata,
        client_id: &str,
        client_secret: Option<&str>,
        refresh_token: &str,
    ) -> Result<bool, OidcError> {
        let Some(url) = metadata.revocation_endpoint.as_deref() else {
            return Ok(false);
        };
        let methods = metadata
            .revocation_endpoint_auth_methods_supported
            .as_ref()
            .or(metadata.token_endpoint_auth_methods_supported.as_ref());
        let (status, body) = self
            .post_form(
                url,
                methods,
                client_id,
                client_secret,
                &[
                    ("token", refresh_token),
                    ("token_type_hint", "refresh_token"),
                ],
            )
            .await?;
        // RFC 7009 2.2: 200 also for a token that was already invalid.
        if status != 200 {
            return Err(status_error(url, status, &body));
        }
        Ok(true)
    }

    /// Calls the token endpoint with a form (client authentication as in `post_form`).
    pub async fn token(
        &self,
        metadata: &Metadata,
        client_id: &str,
        client_secret: Option<&str>,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, OidcError> {
        let url = metadata.token_endpoint.as_str();
        let (status, body) = self
            .post_form(
                url,
                metadata.token_endpoint_auth_methods_supported.as_ref(),
                client_id,
                client_secret,
                params,
            )
            .await?;
        if status != 200 {
            return Err(status_error(url, status, &body));
        }
        let resp: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| OidcError::Invalid {
                url: url.into(),
                reason: e.to_string(),
            })?;
        if !resp
            .token_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("bearer"))
        {
            return Err(OidcError::Invalid {
                url: url.into(),
                reason: "token_type is not Bearer".into(),
            });
        }
        Ok(resp)
    }

    /// The provider's UserInfo response for `access_token` (OpenID Connect Core 5.3): a JSON
    /// object, or an error when the endpoint does not answer 200 with one.
    pub async fn userinfo(
        &self,
        url: &str,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let body = self.get(url, Some(access_token)).await?;
        serde_json::from_slice(&body).map_err(|e| OidcError::Invalid {
            url: strip_query(url),
            reason: e.to_string(),
        })
    }
}

fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or("").to_string()
}
/// The error for a non-200 answer: the status and the OAuth `error` code of the body, if any.
fn status_error(url: &str, status: u16, body: &[u8]) -> OidcError {
    let error = serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.error)
        .unwrap_or_default();
    OidcError::Status {
        url: url.into(),
        status,
        error,
    }
}
