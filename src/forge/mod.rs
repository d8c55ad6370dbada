//! The Forge App logs API: the HTTP client ([`client`]), which fetches a
//! page's bytes, and the API's wire types ([`model`]), which the
//! simulator writes and the reference conversion reads. Decoding a page
//! is [`crate::convert`]'s work: this stage imports no later one.
//! [`metrics_client`] is the App metrics API's GraphQL client.

pub mod client;
pub mod metrics_client;
pub mod model;
