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

mod netlink;
mod report;

pub use self::netlink::setup_link;
pub use self::report::{
    log_report, LinkConfig, LinkError, LinkReport, Placement, DEFAULT_LINK_NAME, IPV4_ADDR,
    IPV6_ADDR, LOOPBACK_NAME,
};
