//! Container images the webhook writes into Pods: the reference, checked
//! against the distribution grammar, and the pull policy.

use super::flag::string_value;

/// A container image reference that passed [`image_reference`].
#[derive(Clone, PartialEq, Eq)]
pub struct ImageRef(String);

/// A container `imagePullPolicy`, spelt as Kubernetes spells it (on the
/// command line too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PullPolicy {
    /// `Always`.
    #[value(name = "Always")]
    Always,
    /// `IfNotPresent`.
    #[default]
    #[value(name = "IfNotPresent")]
    IfNotPresent,
    /// `Never`.
    #[value(name = "Never")]
    Never,
}

// === impl ImageRef ===

impl ImageRef {
    /// The reference as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ImageRef {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        image_reference(raw).map(|()| Self(raw.to_owned()))
    }
}

string_value!(ImageRef);

// === impl PullPolicy ===

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Checks an image reference against the distribution grammar:
/// `[domain[:port]/]path[:tag][@algorithm:hex]`, path components lowercase.
pub fn image_reference(raw: &str) -> Result<(), &'static str> {
    const SHAPE: &str =
        "must be an image reference such as registry.example.com/credagent:0.1.0 or …@sha256:<hex>";
    if raw.is_empty() || raw.len() > 512 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SHAPE);
    }
    let (rest, digest) = match raw.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (raw, None),
    };
    if let Some(d) = digest {
        let (algorithm, hex) = d.split_once(':').ok_or(SHAPE)?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '-', '_']).all(|c| {
                c.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                    && c.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SHAPE);
        }
    }
    // A tag is after the last ':' that follows the last '/' (a registry
    // port comes before a '/').
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let tag_ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !tag_ok {
            return Err(SHAPE);
        }
    }
    if name.len() > 255 {
        return Err(SHAPE);
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_domain = components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase()));
    if has_domain {
        components.remove(0);
        let (host, port) = match first.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (first, None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            });
        let port_ok = port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return Err(SHAPE);
        }
    }
    if components.iter().all(|c| path_component(c)) {
        Ok(())
    } else {
        Err(SHAPE)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let run = b[i..].iter().take_while(|&&x| alnum(x)).count();
        if run == 0 {
            return false;
        }
        i += run;
        if i == b.len() {
            return true;
        }
        let sep = b[i..].iter().take_while(|&&x| !alnum(x)).count();
        let ok = match &b[i..i + sep] {
            b"." | b"_" | b"__" => true,
            s => s.iter().all(|&x| x == b'-'),
        };
        if !ok {
            return false;
        }
        i += sep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for good in [
            "credagent",
            "credagent:0.1.0",
            "registry.example.com/credagent:0.1.0",
            "registry.example.com:5000/team/credagent",
            "localhost/credagent:dev",
            "ghcr.io/org/cred-agent__x.y:v1_2-3",
            "credagent@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "r.io/credagent:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_reference(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Credagent",
            "credagent:",
            "credagent:-x",
            "a b",
            "registry.example.com/",
            "x//y",
            "x/-y",
            "x___y",
            "x@sha256:abc",
            "x@:0123456789abcdef0123456789abcdef",
            "bad_host.example.com:port/x",
            "x:1:2",
            "a-.b",
            "a.",
        ] {
            assert!(image_reference(bad).is_err(), "{bad}");
        }
    }
}
