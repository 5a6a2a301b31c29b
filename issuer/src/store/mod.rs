//! The issuer's persistent state (being written).
