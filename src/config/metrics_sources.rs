//! `metrics_sources:`, the App metrics API's sources (DESIGN.md decision 13).
//!
//! They are a list of their own rather than a `kind` on `sources:` because
//! almost nothing is shared: a metrics source names several environments
//! (one query covers them), a set of metric names, and often another
//! account (the app owner's, not the logs bot's), while the log filters
//! (levels, message, sites) mean nothing to it. Separate lists keep every
//! key valid where it appears, so a misplaced one is an error with its path.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use yaml_serde::{Mapping, Value};

use super::print::Origins;
use super::{AttrValue, TokenSource};
use crate::forge::metrics_client::{APP_ARI_PREFIX, METRIC_NAMES};
use crate::secret::{REDACTED, Secret};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetricsSource {
    pub name: Option<String>,
    pub app_id: Option<String>,
    pub environments: Option<Vec<String>>,
    pub metrics: Option<Vec<String>>,
    pub service_name: Option<String>,
    pub resource_attributes: Option<BTreeMap<String, yaml_serde::Value>>,
    pub settle_delay: Option<super::raw::Scalar>,
    pub email: Option<String>,
    pub api_token: Option<String>,
    pub api_token_file: Option<String>,
}

/// The account a metrics source queries with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsCredentials {
    pub email: String,
    #[serde(flatten)]
    pub token: TokenSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSourceConfig {
    pub name: String,
    /// The app's uuid, as the developer console shows it.
    pub app_id: String,
    pub environments: Vec<String>,
    /// Enum names from [`METRIC_NAMES`], in the config's order.
    pub metrics: Vec<String>,
    pub service_name: String,
    pub resource_attributes: Vec<(String, AttrValue)>,
    /// Overrides `poll.settle_delay`: no point newer than this is read on
    /// the first pass. Metrics are re-aggregated late, and a point's
    /// corrected value is not delivered again (its identity is the same),
    /// so this should cover the API's re-aggregation delay.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "super::ser_opt_duration")]
    pub settle_delay: Option<std::time::Duration>,
    /// `None`: `forge.email` and its token.
    pub credentials: Option<MetricsCredentials>,
}

impl MetricsSourceConfig {
    /// The id the API wants: `ari:cloud:ecosystem::app/<uuid>`.
    pub fn app_ari(&self) -> String {
        format!("{APP_ARI_PREFIX}{}", self.app_id)
    }

    /// The checkpoint's source name, apart from the log sources' names.
    pub fn checkpoint_name(&self) -> String {
        format!("metrics:{}", self.name)
    }

    /// What the source asks for; a checkpoint written for another query is not resumed.
    pub fn query_key(&self) -> String {
        let mut envs = self.environments.clone();
        envs.sort();
        let mut metrics = self.metrics.clone();
        metrics.sort();
        let text = format!("metrics\n{}\n{}\n{}", self.app_id, envs.join(","), metrics.join(","));
        format!("{:016x}", crate::fingerprint::hash_bytes(text.as_bytes()))
    }

    /// The account's email, falling back to `forge.email`.
    pub fn email<'a>(&'a self, forge: &'a super::ForgeConfig) -> &'a str {
        self.credentials.as_ref().map_or(&forge.email, |c| &c.email)
    }

    /// The account's token source, falling back to `forge`'s.
    pub fn token<'a>(&'a self, forge: &'a super::ForgeConfig) -> &'a TokenSource {
        self.credentials.as_ref().map_or(&forge.token, |c| &c.token)
    }
}

/// Validates a `resource_attributes` map at a key path, pushing its errors.
pub(super) type AttributesFn<'a> =
    dyn FnMut(&str, BTreeMap<String, yaml_serde::Value>) -> Vec<(String, AttrValue)> + 'a;
/// Renders configured attributes as a YAML mapping.
pub(super) type RenderAttributes = dyn Fn(&[(String, AttrValue)]) -> Value;

/// `8-4-4-4-12` hexadecimal digits.
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Validates the list; errors are pushed as `metrics_sources[i].key: why`.
/// A metrics source's `settle_delay` when neither it nor `poll` sets one:
/// the logs' default (seconds) is far shorter than the API's re-aggregation.
pub const DEFAULT_SETTLE_DELAY: std::time::Duration = std::time::Duration::from_secs(60);

/// `poll_settle_given`: `poll.settle_delay` is in the file (then it is the
/// default of every metrics source, else [`DEFAULT_SETTLE_DELAY`] is).
pub(super) fn validate(
    raw: Vec<RawMetricsSource>,
    poll_settle_given: bool,
    log_names: &HashSet<String>,
    attributes: &mut AttributesFn<'_>,
    errs: &mut Vec<String>,
) -> Vec<MetricsSourceConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut queries = HashSet::new();
    for (i, s) in raw.into_iter().enumerate() {
        let p = format!("metrics_sources[{i}]");
        let mut push = |key: &str, msg: String| errs.push(format!("{p}.{key}: {msg}"));
        let written = s.app_id.unwrap_or_default().trim().to_string();
        let app_id = written.strip_prefix(APP_ARI_PREFIX).unwrap_or(&written).to_ascii_lowercase();
        if written.is_empty() {
            push("app_id", "required (the app's uuid from the developer console)".into());
        } else if !is_uuid(&app_id) {
            push("app_id", format!("`{written}` is not an app uuid (8-4-4-4-12 hexadecimal digits)"));
        }
        let environments: Vec<String> =
            s.environments.unwrap_or_default().into_iter().map(|e| e.trim().to_string()).collect();
        if environments.is_empty() {
            push("environments", "required: one or more environment ids".into());
        }
        for (j, e) in environments.iter().enumerate() {
            if let Some(why) = super::trust::id_problem(e).or_else(|| e.is_empty().then(|| "is empty".into())) {
                push(&format!("environments[{j}]"), format!("not an environment id: {why}"));
            }
        }
        let mut metrics = Vec::new();
        for (j, m) in s.metrics.unwrap_or_default().iter().enumerate() {
            let up = m.trim().to_ascii_uppercase();
            if !METRIC_NAMES.contains(&up.as_str()) {
                push(&format!("metrics[{j}]"), format!("`{m}` is not one of {}", METRIC_NAMES.join(", ")));
            } else if !metrics.contains(&up) {
                metrics.push(up);
            }
        }
        if metrics.is_empty() {
            metrics = METRIC_NAMES.iter().map(|m| m.to_string()).collect();
        }
        let name = s.name.unwrap_or_else(|| app_id.clone());
        if name.trim().is_empty() {
            push("name", "must not be empty".into());
        } else if let Some(why) = super::trust::id_problem(&name) {
            push("name", format!("not usable as a name: {why}"));
        }
        if !names.insert(name.clone()) {
            push("name", format!("`{name}` is used by another metrics source"));
        } else if log_names.contains(&name) {
            // Different checkpoint names, but /status and /metrics label by name.
            push("name", format!("`{name}` is used by a log source"));
        }
        let settle_delay = s
            .settle_delay
            .as_ref()
            .and_then(|v| super::validate::parse_duration(&v.text()).map_err(|e| push("settle_delay", e)).ok())
            .or((!poll_settle_given).then_some(DEFAULT_SETTLE_DELAY));
        let credentials = credentials(&s.email, s.api_token, s.api_token_file, &mut push);
        let resource_attributes = attributes(&p, s.resource_attributes.unwrap_or_default());
        let source = MetricsSourceConfig {
            name,
            app_id,
            environments,
            metrics,
            service_name: s.service_name.unwrap_or_else(|| "forge-app".into()),
            resource_attributes,
            settle_delay,
            credentials,
        };
        if !queries.insert(source.query_key()) {
            errs.push(format!("{p}: asks for the same metrics as another metrics source"));
        }
        out.push(source);
    }
    out
}

fn credentials(
    email: &Option<String>,
    api_token: Option<String>,
    api_token_file: Option<String>,
    push: &mut dyn FnMut(&str, String),
) -> Option<MetricsCredentials> {
    let email = email.as_deref().map(str::trim).unwrap_or("");
    let token = match (api_token, api_token_file) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            push("api_token", "set either api_token or api_token_file, not both".into());
            None
        }
        (Some(t), None) if t.trim().is_empty() => {
            push("api_token", "is empty (is its environment variable set?)".into());
            None
        }
        (Some(t), None) => Some(TokenSource::Inline(Secret::new(t.trim()))),
        (None, Some(path)) => {
            let source = TokenSource::File(PathBuf::from(path));
            if let Err(e) = source.read() {
                push("api_token_file", e.to_string());
            }
            Some(source)
        }
    };
    match (email.is_empty(), token) {
        (true, None) => None,
        (false, Some(token)) => Some(MetricsCredentials { email: email.to_string(), token }),
        (false, None) => {
            push("api_token", "required with email (or api_token_file); omit both to use forge's account".into());
            None
        }
        (true, Some(_)) => {
            push("email", "required with api_token (the account that owns the token)".into());
            None
        }
    }
}

/// The written `api_token` of each metrics source, before expansion.
pub(super) fn capture_tokens(tree: &Value) -> Vec<Option<String>> {
    let Some(list) = tree.get("metrics_sources").and_then(Value::as_sequence) else { return Vec::new() };
    list.iter().map(|s| s.get("api_token").and_then(Value::as_str).map(str::to_string)).collect()
}

/// The list as config text, secrets as [`print`](super::print) prints them.
pub(super) fn render(
    list: &[MetricsSourceConfig],
    origins: &Origins,
    attrs: &RenderAttributes,
    notes: &mut Vec<String>,
) -> Value {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let mut m = Mapping::new();
        m.insert("name".into(), s.name.clone().into());
        m.insert("app_id".into(), s.app_id.clone().into());
        m.insert("environments".into(), Value::Sequence(s.environments.iter().map(|e| e.clone().into()).collect()));
        m.insert("metrics".into(), Value::Sequence(s.metrics.iter().map(|e| e.clone().into()).collect()));
        m.insert("service_name".into(), s.service_name.clone().into());
        m.insert("resource_attributes".into(), attrs(&s.resource_attributes));
        if let Some(d) = s.settle_delay {
            m.insert("settle_delay".into(), humantime::format_duration(d).to_string().into());
        }
        if let Some(c) = &s.credentials {
            m.insert("email".into(), c.email.clone().into());
            match &c.token {
                TokenSource::File(path) => {
                    m.insert("api_token_file".into(), path.display().to_string().into());
                }
                TokenSource::Inline(_) => {
                    let written = origins.metrics_api_tokens.get(i).and_then(Option::as_ref);
                    let text = origins.secret_text(written).unwrap_or_else(|| {
                        notes.push(format!(
                            "metrics_sources[{i}].api_token: written in the file; printed as {REDACTED}: supply it again (e.g. ${{env:VAR}}) before using this output"
                        ));
                        REDACTED.to_string()
                    });
                    m.insert("api_token".into(), text.into());
                }
            }
        }
        out.push(Value::Mapping(m));
    }
    Value::Sequence(out)
}
