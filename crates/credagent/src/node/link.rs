//! `credagent node setup-link`: puts the node agent's link-local addresses on
//! the node.
//!
//! In node mode one agent per node answers every Pod at `169.254.170.23` and
//! `fd00:ec2::23`, the addresses the EKS Pod Identity Agent uses and that
//! every AWS SDK accepts for a plain-http container-credentials endpoint. The
//! agent can only bind to them once they sit on a local interface, so this
//! module adds them, the way the EKS agent does: on a `dummy` link of their
//! own (`credagent0`), which never answers ARP, carries no traffic of its own
//! and is easy to find and remove.
//!
//! Some kernels are built without the dummy driver and answer `EOPNOTSUPP`
//! (which `ip` prints as "Unknown device type"). There the addresses go on
//! the loopback device instead: a `/32` and a `/128` on `lo` are just as local
//! and just as unreachable from outside, only less tidy. The report says which
//! placement was used so that the operator hears about it.
//!
//! It talks netlink directly (`rtnetlink`) instead of running `ip`: node images
//! need not ship iproute2, and the kernel's answers arrive as errnos that can be
//! told apart (an address that already exists, a missing device type, a
//! missing privilege) rather than as text to parse.
//!
//! Running it again changes nothing: an existing dummy link is reused (and
//! brought up), and an address the kernel reports as existing (`EEXIST`) is
//! counted as already present. A node without IPv6 (the stack compiled out,
//! or `disable_ipv6` set) still gets its IPv4 address; the IPv6 one is skipped
//! with a reason instead of failing the whole setup.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt as _;
use rtnetlink::packet_route::address::AddressHeaderFlags;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkDummy, LinkUnspec};
use tokio::task::JoinHandle;

/// The name of the dummy link created by default.
pub const DEFAULT_LINK_NAME: &str = "credagent0";

/// The IPv4 address the node agent serves on (added as a `/32`).
pub const IPV4_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 23);

/// The IPv6 address the node agent serves on (added as a `/128`).
pub const IPV6_ADDR: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x23);

/// The loopback device used when the kernel has no dummy link type.
pub const LOOPBACK_NAME: &str = "lo";

// Linux errno values (asm-generic, as on x86_64 and aarch64). netlink answers
// with these, negated.
const EPERM: i32 = 1;
const EACCES: i32 = 13;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EOPNOTSUPP: i32 = 95;
const EAFNOSUPPORT: i32 = 97;
const ENETDOWN: i32 = 100;

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

/// Creates (or finds) the dummy link [`LinkConfig::name`], brings it up and
/// adds each address to it; an address the kernel already has there
/// (`EEXIST`) is reported as already present.
///
/// When the kernel lacks the dummy link type (`EOPNOTSUPP`, "Unknown device
/// type") the addresses go on `lo` instead, which is brought up if needed. An
/// IPv6 address that cannot be added because IPv6 is unavailable
/// (`EAFNOSUPPORT`, `EOPNOTSUPP`, `EACCES` from `disable_ipv6`, `ENETDOWN`) is
/// skipped with a reason, not an error. A link of that name that is not a
/// dummy link is an error.
///
/// It runs on the caller's tokio runtime: the netlink connection is a task
/// spawned here and stopped before returning.
pub async fn setup_link(config: &LinkConfig) -> Result<LinkReport, LinkError> {
    let (connection, handle, _messages) =
        rtnetlink::new_connection().map_err(|error| LinkError::Connect { error })?;
    let _connection = ConnectionTask(tokio::spawn(connection));
    Netlink { handle }.setup(config).await
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

/// The open netlink connection.
struct Netlink {
    handle: Handle,
}

/// The link the addresses go on, as found in the kernel.
struct Link {
    index: u32,
    name: String,
    up: bool,
    kind: Option<InfoKind>,
}

/// The kernel's answer to one address.
enum AddOutcome {
    Added,
    AlreadyPresent,
    Skipped(String),
}

/// Stops the netlink connection task when setup ends, however it ends.
struct ConnectionTask(JoinHandle<()>);

/// Displays an address as a host prefix: `169.254.170.23/32`.
struct Cidr(IpAddr);

// === impl LinkConfig ===

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_LINK_NAME.to_owned(),
            addrs: vec![IpAddr::V4(IPV4_ADDR), IpAddr::V6(IPV6_ADDR)],
        }
    }
}

// === impl Netlink ===

impl Netlink {
    async fn setup(&self, config: &LinkConfig) -> Result<LinkReport, LinkError> {
        let (placement, link) = self.place(&config.name).await?;
        if !link.up {
            self.set_up(&link).await?;
        }
        let mut report = LinkReport {
            placement,
            added: Vec::new(),
            already_present: Vec::new(),
            skipped: Vec::new(),
        };
        for &addr in &config.addrs {
            match self.add_address(&link, addr).await? {
                AddOutcome::Added => report.added.push(addr),
                AddOutcome::AlreadyPresent => report.already_present.push(addr),
                AddOutcome::Skipped(reason) => report.skipped.push((addr, reason)),
            }
        }
        Ok(report)
    }

    /// Finds or creates the dummy link, or falls back to `lo`.
    async fn place(&self, name: &str) -> Result<(Placement, Link), LinkError> {
        if let Some(link) = self.find(name).await? {
            return Ok((existing_dummy(&link)?, link));
        }
        let request = self.handle.link().add(LinkDummy::new(name).build());
        let created = match request.execute().await {
            Ok(()) => true,
            // Created concurrently by another run: use it.
            Err(e) if errno(&e) == Some(EEXIST) => false,
            Err(e) if errno(&e) == Some(EOPNOTSUPP) => {
                let lo = self.refind(LOOPBACK_NAME).await?;
                return Ok((Placement::Loopback, lo));
            }
            Err(e) if errno(&e) == Some(EPERM) => {
                return Err(LinkError::PermissionDenied {
                    action: format!("create dummy link {name}"),
                })
            }
            Err(e) => {
                return Err(LinkError::Create {
                    name: name.to_owned(),
                    error: to_io(e),
                })
            }
        };
        let link = self.refind(name).await?;
        let placement = if created {
            Placement::DummyLink {
                name: name.to_owned(),
                created: true,
            }
        } else {
            existing_dummy(&link)?
        };
        Ok((placement, link))
    }

    /// Looks a link up by name; `None` when there is none (`ENODEV`).
    async fn find(&self, name: &str) -> Result<Option<Link>, LinkError> {
        let mut answers = self.handle.link().get().match_name(name).execute();
        match answers.try_next().await {
            Ok(Some(message)) => Ok(Some(Link::from_message(message, name))),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(LinkError::Lookup {
                name: name.to_owned(),
                error: to_io(e),
            }),
        }
    }

    /// Looks up a link that must exist.
    async fn refind(&self, name: &str) -> Result<Link, LinkError> {
        self.find(name).await?.ok_or_else(|| LinkError::Missing {
            name: name.to_owned(),
        })
    }

    async fn set_up(&self, link: &Link) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(link.index).up().build();
        match self.handle.link().change(message).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EPERM) => Err(LinkError::PermissionDenied {
                action: format!("bring link {} up", link.name),
            }),
            Err(e) => Err(LinkError::LinkUp {
                name: link.name.clone(),
                error: to_io(e),
            }),
        }
    }

    async fn add_address(&self, link: &Link, addr: IpAddr) -> Result<AddOutcome, LinkError> {
        let mut request = self
            .handle
            .address()
            .add(link.index, addr, host_prefix_len(addr));
        if addr.is_ipv6() {
            // Serve at once: a tentative address cannot be bound. Dummy and
            // loopback links skip duplicate detection anyway; this makes sure.
            request.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        match request.execute().await {
            Ok(()) => Ok(AddOutcome::Added),
            Err(e) => match errno(&e) {
                Some(EEXIST) => Ok(AddOutcome::AlreadyPresent),
                Some(EPERM) => Err(LinkError::PermissionDenied {
                    action: format!("add {} to {}", Cidr(addr), link.name),
                }),
                Some(code) if addr.is_ipv6() => match ipv6_unavailable(code, &link.name) {
                    Some(reason) => Ok(AddOutcome::Skipped(reason)),
                    None => Err(add_error(link, addr, e)),
                },
                _ => Err(add_error(link, addr, e)),
            },
        }
    }
}

// === impl Link ===

impl Link {
    fn from_message(message: LinkMessage, name: &str) -> Self {
        let kind = message.attributes.iter().find_map(|attr| match attr {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Kind(kind) => Some(kind.clone()),
                _ => None,
            }),
            _ => None,
        });
        Self {
            index: message.header.index,
            name: name.to_owned(),
            up: message.header.flags.contains(LinkFlags::Up),
            kind,
        }
    }
}

// === impl ConnectionTask ===

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// === impl Cidr ===

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0, host_prefix_len(self.0))
    }
}

/// The placement for a link found under the configured name, if it is a
/// dummy link.
fn existing_dummy(link: &Link) -> Result<Placement, LinkError> {
    match &link.kind {
        Some(InfoKind::Dummy) => Ok(Placement::DummyLink {
            name: link.name.clone(),
            created: false,
        }),
        kind => Err(LinkError::NotDummy {
            name: link.name.clone(),
            kind: kind
                .as_ref()
                .map_or_else(|| "physical".to_owned(), ToString::to_string),
        }),
    }
}

/// `/32` for IPv4, `/128` for IPv6: the agent needs the address, not a subnet.
fn host_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The positive errno of a netlink error answer, if that is what `e` is.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(message) => {
            message.code.map(|code| code.get().saturating_abs())
        }
        _ => None,
    }
}

fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn add_error(link: &Link, addr: IpAddr, e: rtnetlink::Error) -> LinkError {
    LinkError::AddAddress {
        address: Cidr(addr).to_string(),
        link: link.name.clone(),
        error: to_io(e),
    }
}

/// Why an IPv6 address could not be added, when the answer means the node
/// has no usable IPv6 rather than that something is wrong.
fn ipv6_unavailable(code: i32, link: &str) -> Option<String> {
    match code {
        EAFNOSUPPORT | EOPNOTSUPP => {
            Some("IPv6 is not supported by this kernel (IPv6 disabled or not built in)".to_owned())
        }
        EACCES => Some(format!(
            "IPv6 is disabled on {link} (net.ipv6.conf.{link}.disable_ipv6 = 1)"
        )),
        ENETDOWN => Some(format!("IPv6 is unavailable on {link} (network is down)")),
        _ => None,
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
    fn a_missing_ipv6_stack_is_a_reason_not_an_error() {
        for code in [EAFNOSUPPORT, EOPNOTSUPP, EACCES, ENETDOWN] {
            assert!(ipv6_unavailable(code, "lo").is_some(), "errno {code}");
        }
        let reason = ipv6_unavailable(EACCES, "credagent0").unwrap();
        assert!(reason.contains("disable_ipv6"), "{reason}");
        for code in [EPERM, EEXIST, ENODEV, 22] {
            assert!(ipv6_unavailable(code, "lo").is_none(), "errno {code}");
        }
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
