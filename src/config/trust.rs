//! Security checks of the config: what may be trusted with credentials.
//!
//! - No endpoint carries `user:password@`: the password would show in
//!   `check-config`, in error messages and so on `/status`. Credentials go
//!   in `exporter.headers` or `forge.api_token`, which are redacted.
//! - The Forge API over plain `http://` only on a loopback host (the
//!   simulator), unless `forge.allow_insecure_http` says otherwise: Basic
//!   credentials travel with every call.
//! - App and environment ids are what the developer console shows, so
//!   that they stay one path segment and one query value: an id with `:`,
//!   `/` or `..` could point the request, credentials included, elsewhere.

use std::net::IpAddr;

/// Longest app or environment id accepted (the console's are 36 characters).
pub(crate) const MAX_ID_LEN: usize = 128;

/// The authority of `url` (between `scheme://` and the path), if any.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// True when `url` carries a user name or password before its host.
pub(crate) fn has_userinfo(url: &str) -> bool {
    authority(url).is_some_and(|a| a.contains('@'))
}

/// `url` fit for an error message: any `user:password@` replaced by `***@`.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.split_once("://"), authority(url)) {
        (Some((scheme, rest)), Some(auth)) if auth.contains('@') => {
            let host = auth.rsplit('@').next().unwrap_or("");
            format!("{scheme}://***@{host}{}", &rest[auth.len()..])
        }
        (None, Some(auth)) if auth.contains('@') => {
            let host = auth.rsplit('@').next().unwrap_or("");
            format!("***@{host}{}", &url[auth.len()..])
        }
        _ => url.to_string(),
    }
}

/// True when the host of `url` is `localhost`, 127.0.0.0/8 or `::1`.
pub(crate) fn is_loopback(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    let Some(host) = parsed.host_str() else { return false };
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Why `id` is not an app or environment id as the console shows them
/// (letters, digits, `-`, `_`, `.`; at most [`MAX_ID_LEN`]), if it is not.
pub(crate) fn id_problem(id: &str) -> Option<String> {
    if id.len() > MAX_ID_LEN {
        return Some(format!("longer than {MAX_ID_LEN} characters"));
    }
    if id.contains("..") || id == "." {
        return Some("must not be `.` or contain `..`".into());
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c))) {
        let shown = if c.is_ascii_graphic() { format!("`{c}`") } else { format!("{:?}", c) };
        return Some(format!(
            "contains {shown}; ids are letters, digits, `-`, `_` and `.` (as the developer console shows them)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_found_and_redacted() {
        let cases = [
            ("https://user:hunter2@collector:4318/otlp", true, "https://***@collector:4318/otlp"),
            ("http://hunter2@collector:4317", true, "http://***@collector:4317"),
            ("user:hunter2@collector:4317", true, "***@collector:4317"),
            ("https://u:p%40ss@h/x@y", true, "https://***@h/x@y"),
            ("https://collector:4318/path@x", false, "https://collector:4318/path@x"),
            ("https://collector:4318/?a=b@c", false, "https://collector:4318/?a=b@c"),
            ("http://[::1]:4317", false, "http://[::1]:4317"),
        ];
        for (url, has, shown) in cases {
            assert_eq!(has_userinfo(url), has, "{url}");
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("hunter2"));
        }
    }

    #[test]
    fn loopback_hosts() {
        for url in
            ["http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:80", "http://localhost:1", "http://LOCALHOST"]
        {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.1",
            "http://api.atlassian.com",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://[::2]",
            "http://0.0.0.0",
            "not a url",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn ids_as_the_console_shows_them() {
        for ok in ["0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6", "demo-app", "production", "env_2.staging", "a"] {
            assert_eq!(id_problem(ok), None, "{ok}");
        }
        let long = "a".repeat(MAX_ID_LEN + 1);
        for bad in
            ["evil.example:443", "a/b", "..", "a..b", ".", "a?b", "a#b", "a%2fb", "a b", "é", "a\nb", long.as_str()]
        {
            assert!(id_problem(bad).is_some(), "{bad}");
        }
    }
}
