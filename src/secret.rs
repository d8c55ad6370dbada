//! Secrets: values that must never be printed.
//!
//! [`Secret`] wraps a string whose `Debug`, `Display` and `Serialize` all
//! print `[REDACTED]`. The only way to read the value is [`Secret::expose`],
//! which makes every use greppable.

use std::fmt;

/// What every secret prints as.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// A string that never prints its content.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call sites must not log or format the result.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_content() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s:#?}"), REDACTED);
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json, "\"[REDACTED]\"");
        let wrapped = format!("{:?}", Some(vec![s.clone()]));
        assert!(!wrapped.contains("hunter2"), "{wrapped}");
        assert_eq!(s.expose(), "hunter2-token");
    }
}
