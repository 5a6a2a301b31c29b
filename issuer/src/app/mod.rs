//! Composition: the router, one line per URL ([`router()`]), [`serve()`] with the background
//! work, and the Kubernetes watch of ConnectedApps ([`watch`]). Nothing below names `app`.

mod router;
mod serve;
pub(crate) mod watch;

pub use router::router;
pub use serve::serve;
