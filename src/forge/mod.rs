//! The Forge App logs API: wire types ([`model`]) and the HTTP client ([`client`]).

pub mod client;
pub mod model;
pub mod wire;
