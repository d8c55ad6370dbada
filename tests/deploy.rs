//! The deployment files against the binary: every command, flag, port,
//! path and environment variable they reference must be one the binary
//! accepts, and every config they mount must pass `check-config`.
//! (Schema validation of the same files: scripts/validate-deploy.py.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use yaml_serde::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_forge-otel-sidecar")
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Compose interpolation: `${VAR:-default}`, `${VAR:?message}`, `${VAR}` with no environment set.
fn compose_value(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(end) = rest[i..].find('}') else { break };
        let body = &rest[i + 2..i + end];
        if let Some((_, d)) = body.split_once(":-") {
            out.push_str(d);
        } else if body.contains(":?") {
            out.push_str("set-by-user");
        }
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Runs `check-config` and returns the effective config it printed.
fn check_config(path: &Path, env: &HashMap<String, String>) -> Value {
    let out = Command::new(bin())
        .arg("check-config")
        .arg("--config")
        .arg(path)
        .env_clear()
        .envs(env)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "check-config {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    yaml_serde::from_slice(&out.stdout).unwrap_or_else(|e| panic!("effective config: {e}"))
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr}"))
}

fn host_of(url: &str) -> String {
    let no_scheme = url.split("://").nth(1).unwrap_or(url);
    no_scheme.split(':').next().unwrap_or("").to_string()
}

fn container_ports(service: &Value) -> Vec<u16> {
    strs(&service["ports"]).iter().map(|p| port_of(p)).collect()
}

#[test]
fn compose_stack_matches_the_binary() {
    let doc = yaml("docker-compose.yml");
    let services = &doc["services"];
    let sidecar = &services["sidecar"];
    let simulator = &services["forge-simulator"];
    let collector = &services["otel-collector"];

    // sidecar: run --config <mounted file>
    let cmd = strs(&sidecar["command"]);
    assert_eq!(cmd[..2], ["run", "--config"]);
    let mounts = strs(&sidecar["volumes"]);
    let config_mount = mounts
        .iter()
        .find(|m| m.split(':').nth(1) == Some(cmd[2].as_str()))
        .unwrap_or_else(|| panic!("{} is not mounted", cmd[2]));
    let source = root().join(config_mount.split(':').next().unwrap_or_default().trim_start_matches("./"));
    assert!(source.exists(), "{}", source.display());
    let env: HashMap<String, String> = sidecar["environment"]
        .as_mapping()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), compose_value(v.as_str()?)))).collect())
        .unwrap_or_default();
    let eff = check_config(&source, &env);

    // State lives on the named volume.
    let state_dir = eff["state"]["dir"].as_str().unwrap_or_default().to_string();
    assert!(
        mounts.iter().any(|m| m.starts_with("sidecar-state:") && m.ends_with(&state_dir)),
        "{state_dir} not on the volume"
    );
    assert!(doc["volumes"]["sidecar-state"].is_null() || doc["volumes"]["sidecar-state"].is_mapping());
    // The server's port is the one published.
    let listen = eff["server"]["listen"].as_str().unwrap_or_default();
    assert!(container_ports(sidecar).contains(&port_of(listen)), "{listen}");
    // The simulator is where the sidecar looks, on the port it listens on, with the same token.
    let base = eff["forge"]["base_url"].as_str().unwrap_or_default();
    assert_eq!(host_of(base), "forge-simulator");
    let sim_cmd = strs(&simulator["command"]);
    let listen_at = sim_cmd.iter().position(|a| a == "--listen").map(|i| sim_cmd[i + 1].clone()).unwrap_or_default();
    assert_eq!(port_of(&listen_at), port_of(base));
    assert_eq!(
        compose_value(simulator["environment"]["FORGE_SIM_TOKEN"].as_str().unwrap_or_default()),
        env["FORGE_API_TOKEN"]
    );
    // The exporter reaches the collector on a port it publishes.
    let endpoint = eff["exporter"]["endpoint"].as_str().unwrap_or_default();
    assert_eq!(host_of(endpoint), "otel-collector");
    assert!(container_ports(collector).contains(&port_of(endpoint)));
    assert_eq!(eff["exporter"]["protocol"].as_str(), Some("grpc"));
    // The collector's config file is mounted where its command reads it.
    let col_cmd = strs(&collector["command"]);
    let col_path = col_cmd[0].trim_start_matches("--config=");
    let col_mount =
        strs(&collector["volumes"]).into_iter().find(|m| m.split(':').nth(1) == Some(col_path)).unwrap_or_default();
    assert!(root().join(col_mount.split(':').next().unwrap_or_default().trim_start_matches("./")).exists());

    // The simulator's command line is accepted: start it on loopback and see it listen.
    let mut args = sim_cmd.clone();
    if let Some(i) = args.iter().position(|a| a == "--listen") {
        args[i + 1] = "127.0.0.1:0".into();
    }
    let mut child =
        Command::new(bin()).args(&args).stderr(std::process::Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(800));
    let alive = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let out = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
    assert!(alive, "simulate {args:?} exited: {out}");
    assert!(out.contains("simulator listening"), "{out}");
}

#[test]
fn dockerfile_matches_the_binary() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap_or_default();
    let mut config_dest = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("COPY ") {
            if rest.starts_with("--from") {
                continue;
            }
            let parts: Vec<&str> = rest.split_whitespace().collect();
            for src in &parts[..parts.len() - 1] {
                assert!(root().join(src).exists(), "Dockerfile copies missing {src}");
            }
            if parts[0] == "config/container.yaml" {
                config_dest = parts[1].to_string();
            }
        }
    }
    assert!(
        text.contains(&format!("FORGE_OTEL_CONFIG={config_dest}")),
        "FORGE_OTEL_CONFIG points at the copied config"
    );
    assert!(text.contains("CMD [\"/usr/local/bin/forge-otel-sidecar\", \"healthcheck\"]"));
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/forge-otel-sidecar\"]"));
    assert!(text.contains("CMD [\"run\"]"));
    assert!(text.contains("USER 65532:65532"), "runs as non-root");
    for sub in ["run", "healthcheck", "simulate"] {
        let ok = Command::new(bin()).args([sub, "--help"]).output().map(|o| o.status.success()).unwrap_or(false);
        assert!(ok, "subcommand {sub}");
    }
    // The image's default config, with the variables it documents.
    let env: HashMap<String, String> = [
        ("FORGE_EMAIL", "bot@example.com"),
        ("FORGE_API_TOKEN", "t"),
        ("FORGE_APP_ID", "app"),
        ("FORGE_ENVIRONMENT_ID", "env"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let eff = check_config(&root().join("config/container.yaml"), &env);
    let state = eff["state"]["dir"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("VOLUME [\"{state}\"]")), "VOLUME is the state dir {state}");
    let listen = eff["server"]["listen"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("EXPOSE {}", port_of(listen))));
    assert!(text.contains(&format!("FORGE_OTEL_HEALTH_ADDR=127.0.0.1:{}", port_of(listen))));
    assert_eq!(eff["exporter"]["endpoint"].as_str(), Some("http://collector:4317"));
}

#[test]
fn kubernetes_manifests_match_the_binary() {
    let text = std::fs::read_to_string(root().join("deploy/kubernetes/deployment.yaml")).unwrap_or_default();
    let dep: Value = yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let cm = yaml("deploy/kubernetes/configmap.yaml");
    let secret = yaml("deploy/kubernetes/secret.yaml");
    let col_cm = yaml("deploy/kubernetes/collector-configmap.yaml");
    let spec = &dep["spec"]["template"]["spec"];
    let find = |list: &str, name: &str| {
        spec[list]
            .as_sequence()
            .and_then(|s| s.iter().find(|c| c["name"].as_str() == Some(name)))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {list}"))
    };
    let sidecar = find("containers", "forge-otel-sidecar");
    // The collector is a native sidecar: started before the poller, stopped after it.
    let collector = find("initContainers", "otel-collector");
    assert_eq!(collector["restartPolicy"].as_str(), Some("Always"));
    let volumes = spec["volumes"].as_sequence().cloned().unwrap_or_default();
    let mount = |c: &Value, vol: &str| -> String {
        c["volumeMounts"]
            .as_sequence()
            .and_then(|m| m.iter().find(|m| m["name"].as_str() == Some(vol)))
            .and_then(|m| m["mountPath"].as_str())
            .unwrap_or_else(|| panic!("{vol} not mounted"))
            .to_string()
    };

    // The ConfigMap carries config/kubernetes.yaml as it is.
    let file = std::fs::read_to_string(root().join("config/kubernetes.yaml")).unwrap_or_default();
    assert_eq!(
        cm["data"]["config.yaml"].as_str(),
        Some(file.as_str()),
        "configmap.yaml and config/kubernetes.yaml differ"
    );
    let col_file = std::fs::read_to_string(root().join("collector-config.yaml")).unwrap_or_default();
    assert_eq!(col_cm["data"]["config.yaml"].as_str(), Some(col_file.as_str()));

    // args: run --config <config volume>/config.yaml
    let args = strs(&sidecar["args"]);
    assert_eq!(args, ["run", "--config", &format!("{}/config.yaml", mount(&sidecar, "config"))]);
    assert!(volumes.iter().any(|v| v["configMap"]["name"] == cm["metadata"]["name"]));

    // The token file is the Secret's key, where the Secret is mounted.
    let cfg: Value = yaml_serde::from_str(&file).unwrap_or_default();
    let token_file = cfg["forge"]["api_token_file"].as_str().unwrap_or_default().to_string();
    let key =
        secret["stringData"].as_mapping().and_then(|m| m.keys().next()).and_then(|k| k.as_str()).unwrap_or_default();
    assert_eq!(token_file, format!("{}/{key}", mount(&sidecar, "api-token")));
    assert!(volumes.iter().any(|v| v["secret"]["secretName"] == secret["metadata"]["name"]));

    // check-config passes with the token file where the Secret would put it.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token = dir.path().join(key);
    std::fs::write(&token, "token\n").unwrap_or_else(|e| panic!("{e}"));
    let local = dir.path().join("config.yaml");
    std::fs::write(&local, file.replace(&token_file, &token.display().to_string())).unwrap_or_else(|e| panic!("{e}"));
    let eff = check_config(&local, &HashMap::new());

    // Probes, ports and state path agree with the config.
    let port = port_of(eff["server"]["listen"].as_str().unwrap_or_default());
    assert_eq!(sidecar["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    assert_eq!(sidecar["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(sidecar[probe]["httpGet"]["port"].as_u64(), Some(u64::from(port)), "{probe}");
    }
    assert_eq!(sidecar["ports"][0]["containerPort"].as_u64(), Some(u64::from(port)));
    assert_eq!(mount(&sidecar, "state"), eff["state"]["dir"].as_str().unwrap_or_default());
    let endpoint = eff["exporter"]["endpoint"].as_str().unwrap_or_default();
    assert_eq!(host_of(endpoint), "localhost");
    assert!(
        collector["ports"]
            .as_sequence()
            .is_some_and(|p| p.iter().any(|x| x["containerPort"].as_u64() == Some(u64::from(port_of(endpoint)))))
    );
    let col_args = strs(&collector["args"]);
    assert_eq!(col_args[0], format!("--config={}/config.yaml", mount(&collector, "collector-config")));

    // Restrictive security context.
    for c in [&sidecar, &collector] {
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    }
    assert_eq!(spec["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(dep["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(dep["spec"]["strategy"]["type"].as_str(), Some("Recreate"));
}

#[test]
fn every_example_config_passes_check_config() {
    let env: HashMap<String, String> =
        [("FORGE_API_TOKEN", "t")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for f in ["config/example.yaml", "config/real-api.yaml", "config/compose.yaml"] {
        check_config(&root().join(f), &env);
    }
}

#[test]
fn check_config_on_a_bad_file_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = dir.path().join("bad.yaml");
    std::fs::write(
        &p,
        "forge: {email: a@b.c, api_token: t}\nsources: [{app_id: a, environment_id: e}]\npoll: {intervall: 1m}\n",
    )
    .unwrap_or_default();
    let out = Command::new(bin()).args(["check-config", "--config"]).arg(&p).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("poll.intervall: unknown field"), "{err}");
    let out =
        Command::new(bin()).args(["run", "--config", "/nonexistent.yaml"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin()).args(["frobnicate"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin()).arg("--version").output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// Bytes of a config size (`100MiB`, `1MB`, `4096`) or a Kubernetes quantity (`256Mi`, `1Gi`).
fn bytes_of(size: &str) -> u64 {
    let s = size.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().unwrap_or_else(|e| panic!("{size}: {e}"));
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "Ki" => 1 << 10,
        "MiB" | "Mi" => 1 << 20,
        "GiB" | "Gi" => 1 << 30,
        "KB" | "k" => 1000,
        "MB" | "M" => 1_000_000,
        "GB" | "G" => 1_000_000_000,
        other => panic!("unknown unit {other} in {size}"),
    };
    n * mult
}

/// The state volume must hold the dead-letter file at its cap, the copy
/// `dead-letter replay` rotates aside, and the checkpoints: a full volume
/// also stops checkpoint writes.
fn assert_volume_fits(what: &str, volume: &str, dead_letter_cap: &str) {
    let (volume, cap) = (bytes_of(volume), bytes_of(dead_letter_cap));
    assert!(
        volume >= 2 * cap + (1 << 20),
        "{what}: volume {volume} B cannot hold 2 x dead-letter cap {cap} B + checkpoints"
    );
}

#[test]
fn state_volumes_hold_the_dead_letter_cap() {
    assert_eq!(bytes_of("100MiB"), 104_857_600);
    assert_eq!(bytes_of("256Mi"), 268_435_456);
    let pvc = yaml("deploy/kubernetes/pvc.yaml");
    let cfg = yaml("config/kubernetes.yaml");
    // 100MiB is the documented default of state.dead_letter_max_size.
    let cap = cfg["state"]["dead_letter_max_size"].as_str().unwrap_or("100MiB");
    assert_volume_fits(
        "deploy/kubernetes",
        pvc["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or_default(),
        cap,
    );
    for values in ["values.yaml", "values-full.yaml"] {
        let v = yaml(&format!("deploy/helm/forge-otel-sidecar/{values}"));
        assert_volume_fits(
            values,
            v["persistence"]["size"].as_str().unwrap_or_default(),
            v["deadLetterMaxSize"].as_str().unwrap_or_default(),
        );
    }
}

/// `${env:NAME}` and `${env:NAME:-default}` names in a config text.
fn env_names(text: &str) -> Vec<String> {
    text.split("${env:").skip(1).filter_map(|rest| rest.split(['}', ':']).next()).map(str::to_string).collect()
}

#[test]
fn every_recipe_passes_check_config_and_hides_its_secrets() {
    let dir = root().join("docs/recipes");
    let mut recipes: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            // *.collector.yaml are collector configs (scripts/validate-deploy.py checks them).
            name.ends_with(".yaml") && !name.ends_with(".collector.yaml")
        })
        .collect();
    recipes.sort();
    assert!(recipes.len() >= 6, "recipes: {recipes:?}");
    for recipe in recipes {
        let text = std::fs::read_to_string(&recipe).unwrap_or_default();
        let env: HashMap<String, String> =
            env_names(&text).into_iter().map(|n| (n.clone(), format!("secret-value-of-{n}"))).collect();
        assert!(env.contains_key("FORGE_API_TOKEN"), "{}: token from the environment", recipe.display());
        let out = Command::new(bin())
            .args(["check-config", "--config"])
            .arg(&recipe)
            .env_clear()
            .envs(&env)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}: {}", recipe.display(), String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout);
        let eff: Value = yaml_serde::from_str(&printed).unwrap_or_else(|e| panic!("{e}"));
        let own: Value = yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        for key in ["protocol", "endpoint"] {
            assert_eq!(eff["exporter"][key], own["exporter"][key], "{}: exporter.{key}", recipe.display());
        }
        if let Some(headers) = own["exporter"]["headers"].as_mapping() {
            for name in headers.keys().filter_map(|k| k.as_str()) {
                assert!(
                    printed.contains(name),
                    "{}: header {name} missing from the effective config",
                    recipe.display()
                );
            }
        }
        for secret in env.values() {
            assert!(!printed.contains(secret.as_str()), "{}: {secret} printed", recipe.display());
        }
    }
}

#[test]
fn datadog_override_points_the_sidecar_at_the_agent() {
    let main = yaml("docker-compose.yml");
    let over = yaml("docker-compose.datadog.yml");
    // The main file requires nothing; only the override requires DD_API_KEY.
    let main_text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap_or_default();
    assert!(!main_text.contains(":?"), "docker-compose.yml must not require a variable");
    let agent = &over["services"]["datadog"];
    assert!(agent["environment"]["DD_API_KEY"].as_str().is_some_and(|v| v.contains("DD_API_KEY:?")));
    assert!(!compose_value(agent["environment"]["DD_HOSTNAME"].as_str().unwrap_or_default()).is_empty());

    let mut env: HashMap<String, String> = HashMap::new();
    for layer in [&main["services"]["sidecar"], &over["services"]["sidecar"]] {
        if let Some(m) = layer["environment"].as_mapping() {
            for (k, v) in m {
                if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                    env.insert(k.to_string(), compose_value(v));
                }
            }
        }
    }
    let config = strs(&main["services"]["sidecar"]["command"])[2].clone();
    let mount = strs(&main["services"]["sidecar"]["volumes"])
        .into_iter()
        .find(|m| m.split(':').nth(1) == Some(config.as_str()))
        .unwrap_or_default();
    let source = root().join(mount.split(':').next().unwrap_or_default().trim_start_matches("./"));
    let eff = check_config(&source, &env);
    let endpoint = eff["exporter"]["endpoint"].as_str().unwrap_or_default();
    assert_eq!(host_of(endpoint), "datadog");
    let grpc = agent["environment"]["DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_GRPC_ENDPOINT"].as_str().unwrap_or_default();
    assert_eq!(port_of(endpoint), port_of(grpc));
    assert_eq!(eff["exporter"]["protocol"].as_str(), Some("grpc"));
}
