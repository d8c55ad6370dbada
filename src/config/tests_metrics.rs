//! `metrics_sources:`: defaults, validation with key paths, secrets, and
//! the printed config loading back.

use super::*;

const APP: &str = "0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6";

fn base(list: &str) -> String {
    format!("forge:\n  email: bot@example.com\n  api_token: tok-123\nmetrics_sources:\n{list}")
}

fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
}

fn errors(text: &str) -> Vec<String> {
    match Config::from_yaml(text, &env(&[])) {
        Err(ConfigError::Invalid(v)) => v,
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn defaults_inherit_the_forge_account_and_ask_for_every_metric() {
    let text = base(&format!("  - app_id: {APP}\n    environments: [prod]\n"));
    let cfg = Config::from_yaml(&text, &env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.sources.is_empty(), "a metrics source alone is enough");
    let m = &cfg.metrics_sources[0];
    assert_eq!(m.metrics.len(), 10);
    assert_eq!(m.name, APP);
    assert_eq!(m.app_ari(), format!("ari:cloud:ecosystem::app/{APP}"));
    assert_eq!(m.email(&cfg.forge), "bot@example.com");
    assert_eq!(m.token(&cfg.forge).read().map(|s| s.expose().to_string()).ok().as_deref(), Some("tok-123"));
    assert_eq!(m.checkpoint_name(), format!("metrics:{APP}"));
}

#[test]
fn own_account_and_ari_app_ids_are_accepted() {
    let text = base(&format!(
        "  - app_id: ari:cloud:ecosystem::app/{}\n    name: m\n    environments: [a, b]\n    metrics: [service_instance_count]\n    email: owner@example.com\n    api_token: ${{env:OWNER}}\n",
        APP.to_uppercase()
    ));
    let cfg = Config::from_yaml(&text, &env(&[("OWNER", "own-SECRET")])).unwrap_or_else(|e| panic!("{e}"));
    let m = &cfg.metrics_sources[0];
    assert_eq!(m.app_id, APP);
    assert_eq!(m.metrics, vec!["SERVICE_INSTANCE_COUNT".to_string()]);
    assert_eq!(m.email(&cfg.forge), "owner@example.com");
    assert!(!format!("{cfg:?}").contains("own-SECRET"), "secrets are never printed");
}

#[test]
fn mistakes_are_named_by_key_path() {
    let text = base(
        "  - app_id: not-a-uuid\n    environments: []\n    metrics: [FORGE_NOPE]\n    email: x@example.com\n  - app_id: 0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6\n    environments: [p]\n    api_token: t\n    levels: [INFO]\n",
    );
    let errs = Config::from_yaml(&text, &env(&[])).map_err(|e| e.to_string()).err().unwrap_or_default();
    assert!(errs.contains("metrics_sources[1].levels: unknown field"), "{errs}");
    let text = base(
        "  - app_id: not-a-uuid\n    environments: []\n    metrics: [FORGE_NOPE]\n    email: x@example.com\n  - app_id: 0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6\n    environments: [p]\n    api_token: t\n",
    );
    let errs = errors(&text);
    for want in [
        "metrics_sources[0].app_id: `not-a-uuid` is not an app uuid",
        "metrics_sources[0].environments: required",
        "metrics_sources[0].metrics[0]: `FORGE_NOPE` is not one of",
        "metrics_sources[0].api_token: required with email",
        "metrics_sources[1].email: required with api_token",
    ] {
        assert!(errs.iter().any(|e| e.starts_with(want)), "{want:?} not in {errs:#?}");
    }
    let twice = base(&format!("  - app_id: {APP}\n    environments: [p]\n  - app_id: {APP}\n    environments: [p]\n"));
    let errs = errors(&twice);
    assert!(errs.iter().any(|e| e.contains("metrics_sources[1].name")), "{errs:?}");
    let none = "forge:\n  email: a@b.c\n  api_token: t\nmetrics_sources: []\n";
    assert!(errors(none).iter().any(|e| e.starts_with("sources: at least one source")));
}

#[test]
fn printed_metrics_sources_load_back_without_secrets() {
    let text = format!(
        "{}    name: own\n    settle_delay: 3m\n    email: owner@example.com\n    api_token: ${{env:OWNER}}\n  - app_id: {APP}\n    name: literal\n    environments: [q]\n    email: o2@example.com\n    api_token: lit-SECRET\n    resource_attributes:\n      team: ops\n",
        base(&format!("  - app_id: {APP}\n    environments: [p, q]\n    metrics: [FORGE_API_REQUEST_COUNT]\n"))
    );
    let text = text.replace("tok-123", "${env:FT}");
    let e = env(&[("OWNER", "own-SECRET"), ("FT", "ft-SECRET")]);
    let (cfg, origins) = Config::from_yaml_traced(&text, &e).unwrap_or_else(|e| panic!("{e}"));
    let printed = print::render(&cfg, &origins);
    assert!(!printed.contains("SECRET"), "{printed}");
    assert!(printed.contains("api_token: ${env:OWNER}"), "{printed}");
    assert_eq!(cfg.metrics_sources[0].settle_delay, Some(std::time::Duration::from_secs(180)));
    // Neither the source nor poll sets it: a minute, not the logs' seconds.
    assert_eq!(cfg.metrics_sources[1].settle_delay, Some(super::metrics_sources::DEFAULT_SETTLE_DELAY));
    let with_poll = format!("{text}poll:\n  settle_delay: 20s\n");
    let cfg2 = Config::from_yaml(&with_poll, &e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg2.metrics_sources[1].settle_delay, None, "poll.settle_delay is every source's default then");
    assert!(printed.contains("metrics_sources[1].api_token: written in the file"), "{printed}");
    let again = Config::from_yaml(&printed.replace("'[REDACTED]'", "lit-SECRET"), &e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg, again, "{printed}");
}
