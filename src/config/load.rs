//! Loading: a file or text → YAML tree → `${env:VAR}` expansion → strict
//! serde structs → validated [`Config`], with what `check-config` needs to
//! print it back.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;

impl Config {
    /// Reads, expands and validates a config file.
    pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        Self::load_traced(path, env).map(|(cfg, _)| cfg)
    }

    /// [`Config::load`], with what [`print::render`] needs to print it back.
    pub fn load_traced(path: &Path, env: EnvLookup<'_>) -> Result<(Self, print::Origins), ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_yaml_traced(&text, env)
    }

    /// Parses, expands and validates config text.
    pub fn from_yaml(text: &str, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        Self::from_yaml_traced(text, env).map(|(cfg, _)| cfg)
    }

    /// [`Config::from_yaml`], with what [`print::render`] needs to print it back.
    pub fn from_yaml_traced(text: &str, env: EnvLookup<'_>) -> Result<(Self, print::Origins), ConfigError> {
        let mut tree: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        if tree.is_null() {
            tree = yaml_serde::Value::Mapping(Default::default());
        }
        let mut origins = print::Origins::capture(&tree, env);
        let mut missing = BTreeSet::new();
        expand::expand_value(&mut tree, env, &mut missing);
        if !missing.is_empty() {
            return Err(ConfigError::MissingEnv(missing.into_iter().collect()));
        }
        let raw: raw::RawConfig = serde_path_to_error::deserialize(tree).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            ConfigError::Invalid(vec![describe_serde_error(&path, &inner)])
        })?;
        origins.from_env = otel_env::filled_keys(&raw.exporter, env, otel_env::Signal::Logs);
        let metrics_from_env = otel_env::filled_keys(&raw.exporter, env, otel_env::Signal::Metrics);
        let cfg = validate::validate(raw, env)?;
        if cfg.metrics_exporter.is_some() {
            origins.metrics_from_env = metrics_from_env;
        }
        Ok((cfg, origins))
    }

    /// The effective config as a config file, every inline secret shown as
    /// `[REDACTED]` ([`print::render`] with origins prints references).
    pub fn to_redacted_yaml(&self) -> String {
        print::render(self, &print::Origins::default())
    }

    /// Settings that load but are probably mistakes, for the start-up log
    /// and `check-config`.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let e = &self.exporter;
        out.extend(otel_env::port_mismatch("exporter.endpoint", e.protocol, &e.endpoint));
        let tls_set = e.tls.ca_file.is_some() || e.tls.cert_file.is_some();
        if tls_set && e.endpoint.starts_with("http://") && e.protocol != Protocol::Stdout {
            out.push("exporter.tls: set, but the endpoint is plaintext http://, so the files are not used".into());
        }
        if let Some(t) = &self.telemetry.otlp {
            out.extend(otel_env::port_mismatch("telemetry.otlp.endpoint", t.protocol, &t.endpoint));
        }
        out
    }
}

/// Turns serde's "unknown field `x`" at `poll` into `poll.x: unknown field`.
fn describe_serde_error(path: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, tail)) = rest.split_once('`')
    {
        // The path already ends with the unknown field's name.
        let full = if path == "." || path.is_empty() { field } else { path };
        return format!("{full}: unknown field{tail}");
    }
    if path == "." || path.is_empty() { message.to_string() } else { format!("{path}: {message}") }
}
