//! `check-config`'s output fed back to `check-config`, through the binary:
//! it loads (exit 0) and prints the same configuration again.

use std::path::Path;
use std::process::{Command, Output};

fn check_config(path: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forge-otel-sidecar"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The YAML without its comments (which say where values came from).
fn body(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n")
}

#[test]
fn printed_config_loads_back_and_prints_the_same() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
    let otel = [
        ("FORGE_API_TOKEN", "tok-SECRET"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://intake.example/custom/logs"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "dd-api-key=dd-SECRET"),
    ];
    let minimal = dir.path().join("minimal.yaml");
    std::fs::write(
        &minimal,
        "forge: {email: a@b.c, api_token: '${env:FORGE_API_TOKEN}'}\nsources: [{app_id: a, environment_id: e}]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cases: [(&Path, &[(&str, &str)]); 3] =
        [(&example, &[("FORGE_API_TOKEN", "tok-SECRET")]), (&minimal, &otel), (&minimal, &otel[..1])];
    for (i, (input, env)) in cases.into_iter().enumerate() {
        let first = check_config(input, env);
        assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
        let text = String::from_utf8_lossy(&first.stdout).into_owned();
        assert!(!text.contains("SECRET"), "{text}");
        let printed = dir.path().join(format!("printed-{i}.yaml"));
        std::fs::write(&printed, &text).unwrap_or_else(|e| panic!("{e}"));
        let second = check_config(&printed, env);
        assert_eq!(second.status.code(), Some(0), "{}\n{text}", String::from_utf8_lossy(&second.stderr));
        assert_eq!(body(&first), body(&second), "case {i}");
    }
}
