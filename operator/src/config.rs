//! The controller's settings, as the command line (`crate::cli`) or a test gives them.

use std::time::Duration;

use crate::lease::LeaseConfig;
use crate::signing_keys::SigningKeysConfig;
use crate::webhook::certs::ManagedCerts;

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The issuer URL written into Secrets (`issuer-url`) and status.
    pub issuer_url: String,
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// This replica's identity (events' reporting instance, lease holder).
    pub identity: String,
    /// Resync period of settled apps (a resync makes no writes).
    pub resync: Duration,
    /// How many apps are reconciled at once.
    pub concurrency: u16,
    /// Leader election; `None` runs without (a single replica, or tests).
    pub leader_election: Option<LeaseConfig>,
    /// The issuer's signing-key Secret, kept by the leader; `None`: not managed.
    pub signing_keys: Option<SigningKeysConfig>,
    /// Which namespaces may claim resources on which hosts (`--resource-hosts`); empty: any.
    pub resource_hosts: api::resource_hosts::ResourceHosts,
    /// The webhook's serving certificate, kept by the leader; `None`: not kept here.
    pub webhook_certs: Option<ManagedCerts>,
}

impl ControllerConfig {
    /// Defaults for everything but the issuer URL.
    pub fn new(issuer_url: impl Into<String>) -> Self {
        Self {
            issuer_url: issuer_url.into(),
            namespace: None,
            identity: "keyway-operator".into(),
            resync: Duration::from_secs(3600),
            concurrency: 16,
            leader_election: None,
            signing_keys: None,
            resource_hosts: api::resource_hosts::ResourceHosts::default(),
            webhook_certs: None,
        }
    }
}
