//! The clock the controller and the signing-key manager read (the system clock in production;
//! fixed or shifted in tests).

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

/// A clock (the system clock in production; fixed in tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;
