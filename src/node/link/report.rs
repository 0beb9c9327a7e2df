//! What `setup-link` is asked to do and what it did: the configuration,
//! the report, the errors, and the report's log lines.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The name of the dummy link created by default.
pub const DEFAULT_LINK_NAME: &str = "credagent0";

/// The IPv4 address the node agent serves on (added as a `/32`).
pub const IPV4_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 23);

/// The IPv6 address the node agent serves on (added as a `/128`).
pub const IPV6_ADDR: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x23);

/// The loopback device used when the kernel has no dummy link type.
pub const LOOPBACK_NAME: &str = "lo";

/// What to set up.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The name of the dummy link. Default [`DEFAULT_LINK_NAME`].
    pub name: String,
    /// The addresses to add, each as a host route (`/32` or `/128`). Default
    /// [`IPV4_ADDR`] and [`IPV6_ADDR`].
    pub addrs: Vec<IpAddr>,
}

/// Where the addresses were put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On a dummy link of their own.
    DummyLink {
        /// The link's name.
        name: String,
        /// Whether this run created the link (false: it existed already).
        created: bool,
    },
    /// On the loopback device, because the kernel has no dummy link type.
    Loopback,
}

/// What [`setup_link`] did.
#[derive(Debug, Clone)]
pub struct LinkReport {
    /// Where the addresses were put.
    pub placement: Placement,
    /// Addresses added by this run.
    pub added: Vec<IpAddr>,
    /// Addresses that were there already.
    pub already_present: Vec<IpAddr>,
    /// Addresses not added, with the reason (only IPv6 ones, when the node has
    /// no usable IPv6).
    pub skipped: Vec<(IpAddr, String)>,
}

/// Why [`setup_link`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {error}")]
    Connect {
        /// The I/O error.
        error: io::Error,
    },
    /// The kernel refused a change for lack of privilege (`EPERM`).
    #[error("cannot {action}: operation not permitted (needs CAP_NET_ADMIN)")]
    PermissionDenied {
        /// What was refused, e.g. `create dummy link credagent0`.
        action: String,
    },
    /// Looking a link up failed for a reason other than its absence.
    #[error("cannot look up link {name}: {error}")]
    Lookup {
        /// The link's name.
        name: String,
        /// The kernel's answer.
        error: io::Error,
    },
    /// A link that should exist does not (`lo`, or the dummy link right after
    /// it was created).
    #[error("link {name} does not exist")]
    Missing {
        /// The link's name.
        name: String,
    },
    /// A link with the configured name exists but is not a dummy link: the
    /// addresses are not put on someone else's interface.
    #[error("link {name} exists but is a {kind} link, not a dummy link; configure another name")]
    NotDummy {
        /// The link's name.
        name: String,
        /// Its kind as the kernel names it, or `physical` when it has none.
        kind: String,
    },
    /// Creating the dummy link failed for a reason other than a missing
    /// device type.
    #[error("cannot create dummy link {name}: {error}")]
    Create {
        /// The link's name.
        name: String,
        /// The kernel's answer.
        error: io::Error,
    },
    /// Bringing the link up failed.
    #[error("cannot bring link {name} up: {error}")]
    LinkUp {
        /// The link's name.
        name: String,
        /// The kernel's answer.
        error: io::Error,
    },
    /// Adding an address failed for a reason other than its presence (or, for
    /// IPv6, a missing IPv6 stack).
    #[error("cannot add {address} to {link}: {error}")]
    AddAddress {
        /// The address with its prefix length.
        address: String,
        /// The link's name.
        link: String,
        /// The kernel's answer.
        error: io::Error,
    },
}

/// Logs one line per outcome: info for the link and each address added or
/// already present, warn for the loopback fallback and each skipped address.
pub fn log_report(report: &LinkReport) {
    let link = match &report.placement {
        Placement::DummyLink { name, created } => {
            if *created {
                tracing::info!(link = %name, "dummy link created");
            } else {
                tracing::info!(link = %name, "dummy link already exists");
            }
            name.as_str()
        }
        Placement::Loopback => {
            tracing::warn!(
                link = LOOPBACK_NAME,
                "the kernel has no dummy link type; using the loopback device instead"
            );
            LOOPBACK_NAME
        }
    };
    for addr in &report.added {
        tracing::info!(address = %Cidr(*addr), link, "address added");
    }
    for addr in &report.already_present {
        tracing::info!(address = %Cidr(*addr), link, "address already present");
    }
    for (addr, reason) in &report.skipped {
        tracing::warn!(address = %Cidr(*addr), link, reason = %reason, "address skipped");
    }
}

/// Displays an address as a host prefix: `169.254.170.23/32`.
pub(super) struct Cidr(pub(super) IpAddr);

// === impl LinkConfig ===

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_LINK_NAME.to_owned(),
            addrs: vec![IpAddr::V4(IPV4_ADDR), IpAddr::V6(IPV6_ADDR)],
        }
    }
}

// === impl Cidr ===

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0, host_prefix_len(self.0))
    }
}

/// `/32` for IPv4, `/128` for IPv6: the agent needs the address, not a subnet.
pub(super) fn host_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_credagent0_with_both_addresses() {
        let config = LinkConfig::default();
        assert_eq!(config.name, "credagent0");
        assert_eq!(
            config.addrs,
            vec![
                "169.254.170.23".parse::<IpAddr>().unwrap(),
                "fd00:ec2::23".parse::<IpAddr>().unwrap(),
            ]
        );
    }

    #[test]
    fn addresses_are_host_prefixes() {
        assert_eq!(Cidr(IPV4_ADDR.into()).to_string(), "169.254.170.23/32");
        assert_eq!(Cidr(IPV6_ADDR.into()).to_string(), "fd00:ec2::23/128");
    }

    #[test]
    fn permission_errors_name_the_capability() {
        let e = LinkError::PermissionDenied {
            action: "create dummy link credagent0".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot create dummy link credagent0: operation not permitted (needs CAP_NET_ADMIN)"
        );
    }
}
