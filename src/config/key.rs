//! What the POST exchange asks the upstream for (`--key-lifetime`,
//! `--key-attribute`): a key of a chosen lifetime, tagged with attributes.
//!
//! CoreWeave's "Create access key from OIDC" takes `durationSeconds` from 0
//! to 43200 (12 h); the agent asks for 15 minutes to 12 hours, in whole
//! seconds: shorter keys would be refreshed more often than every SDK's
//! own refresh window allows for (docs/deploy.md, "Key lifetime").
//!
//! Attributes: the agent adds its own, from the token's claims (the
//! namespace, Pod, ServiceAccount and node that asked; see
//! `exchange::attributes`); the operator's `--key-attribute K=V` are added to
//! every key. An operator attribute may not take the name of one of the
//! agent's own, so no flag can make a key claim another workload.

use std::time::Duration;

/// The shortest `--key-lifetime`.
pub const MIN_KEY_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The longest `--key-lifetime` (the upstream's own bound on
/// `durationSeconds`).
pub const MAX_KEY_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most `--key-attribute`s.
pub const MAX_KEY_ATTRIBUTES: usize = 16;
/// Longest attribute name.
pub const MAX_ATTRIBUTE_NAME: usize = 63;
/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE: usize = 256;

/// The attribute names the agent sets itself on every POST-issued key.
pub const AGENT_ATTRIBUTES: [&str; 7] = [
    "name",
    "agent",
    "k8s-namespace",
    "k8s-pod",
    "k8s-pod-uid",
    "k8s-service-account",
    "k8s-node",
];

/// What the POST exchange asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    /// The key lifetime (`durationSeconds`).
    pub lifetime: Duration,
    /// The operator's attributes, added to every key, in flag order.
    pub attributes: Vec<KeyAttribute>,
}

/// One `--key-attribute NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    /// `[A-Za-z0-9._-]`, 1 to [`MAX_ATTRIBUTE_NAME`] characters, not one of
    /// [`AGENT_ATTRIBUTES`].
    pub name: String,
    /// At most [`MAX_ATTRIBUTE_VALUE`] bytes, no control characters or
    /// commas, possibly empty.
    pub value: String,
}

/// Which of the upstream's two OIDC exchanges the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeMethod {
    /// `GET …/oidc/ORG` with the token as `Authorization`: the upstream
    /// chooses the lifetime (without `--key-lifetime`).
    Get,
    /// `POST …/oidc` with the token, the org id, the lifetime and the
    /// attributes in a JSON body (with `--key-lifetime`).
    Post {
        /// `orgId`.
        org_id: String,
        /// What to ask for.
        key: KeyRequest,
    },
}

impl ExchangeMethod {
    /// `get` or `post`, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post { .. } => "post",
        }
    }
}

/// Parses `--key-lifetime`: a duration (`1h`, `90m`, `3600`) from 15m to
/// 12h, in whole seconds.
pub fn parse_key_lifetime(raw: &str) -> Result<Duration, String> {
    let d = super::duration::parse_duration(raw)?;
    if d.subsec_nanos() != 0 || d < MIN_KEY_LIFETIME || d > MAX_KEY_LIFETIME {
        return Err(format!(
            "'{raw}' is not a key lifetime: whole seconds from 15m to 12h (the upstream grants at most 12h)"
        ));
    }
    Ok(d)
}

/// Parses one `--key-attribute NAME=VALUE`.
pub fn parse_key_attribute(raw: &str) -> Result<KeyAttribute, String> {
    let Some((name, value)) = raw.split_once('=') else {
        return Err("must be NAME=VALUE, e.g. cluster=prod-1".into());
    };
    let name_ok = !name.is_empty()
        && name.len() <= MAX_ATTRIBUTE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !name_ok {
        return Err(format!(
            "the name must be 1-{MAX_ATTRIBUTE_NAME} letters, digits, '.', '_' or '-'"
        ));
    }
    if AGENT_ATTRIBUTES.contains(&name) {
        return Err(format!(
            "'{name}' is set by the agent from the token (one of {})",
            AGENT_ATTRIBUTES.join(", ")
        ));
    }
    // No commas: CREDAGENT_KEY_ATTRIBUTE lists several, comma-separated.
    if value.len() > MAX_ATTRIBUTE_VALUE || value.chars().any(|c| c.is_control() || c == ',') {
        return Err(format!(
            "the value of '{name}' must be at most {MAX_ATTRIBUTE_VALUE} bytes without control characters or commas"
        ));
    }
    Ok(KeyAttribute {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

/// Checks the attributes as a whole: at most [`MAX_KEY_ATTRIBUTES`], no
/// name twice.
pub fn check_key_attributes(attributes: &[KeyAttribute]) -> Result<(), String> {
    if attributes.len() > MAX_KEY_ATTRIBUTES {
        return Err(format!("at most {MAX_KEY_ATTRIBUTES} attributes"));
    }
    for (i, a) in attributes.iter().enumerate() {
        if attributes[..i].iter().any(|b| b.name == a.name) {
            return Err(format!("'{}' is given twice", a.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_key_lifetime("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_key_lifetime("15m"), Ok(MIN_KEY_LIFETIME));
        assert_eq!(parse_key_lifetime("43200"), Ok(MAX_KEY_LIFETIME));
        for bad in ["14m59s", "12h1s", "0", "1500ms", "61m500ms", "", "1d"] {
            assert!(parse_key_lifetime(bad).is_err(), "{bad}");
        }
        assert!(parse_key_lifetime("5m").unwrap_err().contains("15m to 12h"));
    }

    #[test]
    fn attributes() {
        let a = parse_key_attribute("cluster=prod-1").unwrap();
        assert_eq!((a.name.as_str(), a.value.as_str()), ("cluster", "prod-1"));
        let a = parse_key_attribute("team.cost-center=a=b c").unwrap();
        assert_eq!(a.value, "a=b c", "the first '=' splits");
        assert_eq!(parse_key_attribute("empty=").unwrap().value, "");
        for (bad, why) in [
            ("novalue", "NAME=VALUE"),
            ("=v", "the name"),
            ("a b=v", "the name"),
            ("k8s-pod=evil", "set by the agent"),
            ("name=x", "set by the agent"),
            ("x=a\nb", "control"),
            ("x=a,b", "commas"),
        ] {
            let e = parse_key_attribute(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let long = format!("x={}", "v".repeat(MAX_ATTRIBUTE_VALUE + 1));
        assert!(parse_key_attribute(&long).is_err());
        let name = format!("{}=v", "n".repeat(MAX_ATTRIBUTE_NAME + 1));
        assert!(parse_key_attribute(&name).is_err());
    }

    #[test]
    fn attribute_sets() {
        let a = |s: &str| parse_key_attribute(s).unwrap();
        assert!(check_key_attributes(&[a("a=1"), a("b=2")]).is_ok());
        assert!(check_key_attributes(&[a("a=1"), a("a=2")])
            .unwrap_err()
            .contains("twice"));
        let many: Vec<_> = (0..=MAX_KEY_ATTRIBUTES)
            .map(|i| a(&format!("k{i}=v")))
            .collect();
        assert!(check_key_attributes(&many).is_err());
    }
}
