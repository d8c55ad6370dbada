//! What the registry knows of an App metrics source beyond the counters
//! every source has: its environments and the account whose budget it
//! draws on, for `/status` and `forge_sidecar_metrics_source_info`.

use std::sync::Arc;

use super::{Registry, SourceMetrics};

/// An App metrics source's identity beside its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSourceInfo {
    pub environments: Vec<String>,
    /// The account's budget key (`metrics-account-…`, no address in it):
    /// the `app` label of its budget gauges.
    pub account: String,
    /// Calls the account may make per `forge.rate_period`.
    pub calls_per_period: u32,
}

impl Registry {
    /// Registers a metrics source: a source whose `info` is set.
    pub fn metrics_source(&self, source: &str, app: &str, info: MetricsSourceInfo) -> Arc<SourceMetrics> {
        let m = self.source(source, app);
        let _ = m.metrics_source.set(info);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metrics_sources_carry_their_info() {
        let r = Registry::default();
        let info = MetricsSourceInfo {
            environments: vec!["prod".into()],
            account: "metrics-account-1".into(),
            calls_per_period: 5,
        };
        r.source("logs", "app");
        r.metrics_source("m", "app", info.clone());
        let kinds: Vec<_> = r.sources().iter().map(|m| (m.source.clone(), m.metrics_source.get().cloned())).collect();
        assert_eq!(kinds, vec![("logs".to_string(), None), ("m".to_string(), Some(info))]);
    }
}
