//! Extractors of the issuer's own: the client's address ([`ClientAddr`], the TCP peer or, from
//! `--trusted-proxies`, `X-Forwarded-For`). The strict form and query extractors are
//! `crate::params`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;

use crate::directory::client_addr::ClientAddr;
use crate::state::Shared;

impl FromRequestParts<Shared> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, iss: &Shared) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let lines = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>();
        Ok(Self::resolve(
            peer,
            lines.into_iter(),
            iss.trusted_proxies(),
        ))
    }
}
