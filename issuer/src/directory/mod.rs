//! Who the issuer knows: ConnectedApps and dynamically registered clients, static users,
//! upstream OpenID providers, the origins clients call from, and the sign-in throttle that
//! counts attempts per client address. Nothing here names an HTTP type, the state or an
//! endpoint (`tests/tools/layering.py` checks it); below it are only the store, the scope syntax
//! and `util`.

pub mod client_addr;
pub mod clients;
pub mod identity;
pub mod origins;
pub mod registered;
pub mod throttle;
pub mod upstream;
pub mod users;
