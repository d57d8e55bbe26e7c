//! Stale cleanup: what a previous run of this agent left behind (SIGKILL, crash) is removed
//! at start, and what this run made is removed at stop. Ours only: addresses carrying our
//! IFA_PROTO mark, and links named as ours (virtual-MAC and standby links).

use tracing::warn;

use super::AgentError;
use super::dataplane::is_standby_name;
use super::instances::is_vmac_name;
use crate::model::address::is_link_local;
use crate::model::host::INHERITED_LIFETIME;
use crate::net::netlink::{Address, Netlink};
use crate::vrrp::VirtualAddress;

/// Whether a link is one this agent makes (by name).
pub(crate) fn is_our_link(name: &str) -> bool {
    is_vmac_name(name) || is_standby_name(name)
}

/// Takes over what a previous run of this agent left (SIGKILL, crash), once this agent holds
/// the node's lock: our virtual-MAC and standby interfaces are removed; addresses carrying
/// our IFA_PROTO mark are kept, so a quickly restarted master goes on answering while the
/// election decides, and returned to be recorded as inherited. Each gets a short lifetime,
/// [`INHERITED_LIFETIME`] (one left by an older version may have none), and is never renewed
/// unless an instance binds it: what this run does not claim is gone then. Nothing else is
/// touched.
pub(super) async fn remove_stale(nl: &Netlink) -> Result<Vec<Address>, AgentError> {
    for l in nl.links().await? {
        if is_our_link(&l.name) {
            warn!(link = %l.name, "removing a stale virtual-MAC or standby interface");
            nl.delete_link(l.index).await?;
        }
    }
    let mut inherited = Vec::new();
    for a in nl.addresses(None).await? {
        if a.is_ours() && !is_link_local(&a.address) {
            warn!(address = %a.address, "a virtual address left by a previous run: kept while the election decides, gone in {:?} unless bound", INHERITED_LIFETIME);
            let vip = VirtualAddress {
                address: a.address,
                prefix_len: a.prefix_len,
            };
            nl.expire_address_in(a.index, &vip, INHERITED_LIFETIME)
                .await?;
            inherited.push(a);
        }
    }
    Ok(inherited)
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
        assert!(is_our_link(&super::super::dataplane::standby_name(
            crate::ids::InstanceId::nth(7)
        )));
        for name in ["eth0", "lo", "kvs-", "vrrp", "macvlan0"] {
            assert!(!is_our_link(name), "{name}");
        }
    }
}
