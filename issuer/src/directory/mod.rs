//! Who the issuer knows: ConnectedApps and dynamically registered clients, static users,
//! upstream OpenID providers, the origins clients call from, and the sign-in throttle that
//! counts attempts per client address. Nothing here names the state, an endpoint or an HTTP
//! response; the store is the only thing below.

pub mod client_addr;
pub mod clients;
pub mod identity;
pub mod origins;
pub mod registered;
pub mod throttle;
pub mod upstream;
pub mod users;
