//! Who the issuer knows: ConnectedApps and dynamically registered clients, static users,
//! upstream OpenID providers, the origins clients call from, and the sign-in throttle that
//! counts attempts per client address. Nothing here names an HTTP type, the state or an
//! endpoint (`tests/tools/layering.py` checks it); below it are only the store, the scope syntax,
//! `random` and `clock`.

pub(crate) mod client_addr;
pub(crate) mod clients;
pub(crate) mod distinct_subjects;
pub(crate) mod origins;
pub(crate) mod registered;
pub(crate) mod throttle;
pub(crate) mod upstream;
pub(crate) mod users;
