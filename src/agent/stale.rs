//! Stale cleanup: what a previous run of this agent left behind (SIGKILL, crash) is removed
//! at start, and what this run made is removed at stop. Ours only: addresses carrying our
//! IFA_PROTO mark, and links named as ours (virtual-MAC and standby links).

use tracing::warn;

use super::AgentError;
use super::dataplane::is_standby_name;
use super::instances::is_vmac_name;
use crate::net::netlink::Netlink;

/// Whether a link is one this agent makes (by name).
pub(crate) fn is_our_link(name: &str) -> bool {
    is_vmac_name(name) || is_standby_name(name)
}

/// Removes the VIPs a previous run of this agent left bound (SIGKILL, crash): addresses
/// carrying our IFA_PROTO mark, and our virtual-MAC interfaces. Nothing else is touched, and
/// only once this agent holds the node's lock.
pub(super) async fn remove_stale(nl: &Netlink) -> Result<(), AgentError> {
    for l in nl.links().await? {
        if is_our_link(&l.name) {
            warn!(link = %l.name, "removing a stale virtual-MAC or standby interface");
            nl.delete_link(l.index).await?;
        }
    }
    for a in nl.addresses(None).await? {
        if a.is_ours() {
            warn!(address = %a.address, "removing a stale virtual address left by a previous run");
            nl.del_address(a.index, a.address, a.prefix_len).await?;
        }
    }
    Ok(())
}

/// Removes this agent's links (the agent stops; their addresses go with them).
pub(super) async fn remove_our_links(nl: &Netlink) {
    for l in nl.links().await.unwrap_or_default() {
        if is_our_link(&l.name) {
            nl.delete_link(l.index).await.ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_links_are_ours() {
        assert!(is_our_link(&super::super::dataplane::standby_name(7)));
        for name in ["eth0", "lo", "kvs-", "vrrp", "macvlan0"] {
            assert!(!is_our_link(name), "{name}");
        }
    }
}
