//! Talking netlink: finding or creating the link, bringing it up, adding
//! each address, and telling the kernel's answers apart.

use std::io;
use std::net::IpAddr;

use futures_util::TryStreamExt as _;
use rtnetlink::packet_route::address::AddressHeaderFlags;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkDummy, LinkUnspec};
use tokio::task::JoinHandle;

use super::report::{
    host_prefix_len, Cidr, LinkConfig, LinkError, LinkReport, Placement, LOOPBACK_NAME,
};

// Linux errno values (asm-generic, as on x86_64 and aarch64). netlink answers
// with these, negated.
const EPERM: i32 = 1;
const EACCES: i32 = 13;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EOPNOTSUPP: i32 = 95;
const EAFNOSUPPORT: i32 = 97;
const ENETDOWN: i32 = 100;

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
}
