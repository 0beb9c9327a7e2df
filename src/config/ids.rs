//! Names given on the command line that end up in other programs' input:
//! a region (AWS config files, Pod env), a token audience (a projected
//! token's `audience`, a Pod annotation), a credentials-file profile.

use super::flag::string_value;

/// What a region name may be.
pub const REGION_RULE: &str = "must be 1-64 characters of letters, digits and '-'";

/// A region name (`US-EAST-04A`, `us-east-1`).
#[derive(Clone, PartialEq, Eq)]
pub struct Region(String);

/// A token audience: 1-256 printable ASCII characters, no spaces.
#[derive(Clone, PartialEq, Eq)]
pub struct Audience(String);

/// Whether `region` is a region name ([`REGION_RULE`]).
pub fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A credentials-file profile name: letters, digits, `-`, `_`, `.`.
pub fn profile_name(s: &str) -> Result<String, &'static str> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("must be letters, digits, '-', '_' or '.'")
    }
}

// === impl Region ===

impl Region {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Region {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if valid_region(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(REGION_RULE)
        }
    }
}

// === impl Audience ===

impl Audience {
    /// What an audience may be.
    pub const RULE: &'static str = "must be 1-256 printable characters without spaces";

    /// The audience.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Audience {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Self::RULE)
        }
    }
}

string_value!(Region, Audience);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            "US-EAST-04A".parse::<Region>().unwrap().as_str(),
            "US-EAST-04A"
        );
        for bad in ["", "us east", "us_east", &"a".repeat(65)] {
            assert_eq!(bad.parse::<Region>(), Err(REGION_RULE), "{bad}");
        }
        assert!("sts.example".parse::<Audience>().is_ok());
        for bad in ["", " ", "a b", &"a".repeat(257)] {
            assert_eq!(bad.parse::<Audience>(), Err(Audience::RULE), "{bad}");
        }
        assert_eq!(profile_name("dev-1.x_y"), Ok("dev-1.x_y".into()));
        assert!(profile_name("a b").is_err() && profile_name("").is_err());
    }
}
