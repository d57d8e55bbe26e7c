//! The kernel's address events, as the data plane answers them: one of ours removed by
//! someone else while its instance holds it is put back (and announced); one carrying our mark
//! that nothing of ours holds is removed; a conflict clears when the other address goes away.
//! [`decide`] is the pure part; [`on_event`] carries it out off the data plane's loop.

use std::net::IpAddr;
use std::sync::Arc;

use tracing::{info, warn};

use super::kernel::Kernel;
use super::ledger::Ledger;
use super::{Ctx, set_bind_fault};
use crate::agent::messages::AnnounceCmd;
use crate::agent::messages::EngineCmd;
use crate::ids::InstanceKey;
use crate::model::address::is_link_local;
use crate::net::announce::Mac;
use crate::net::netlink::{Address, NetEvent};
use crate::vrrp::VirtualAddress;

/// What an address event calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WatchAction {
    /// Ours, held, and gone: someone removed it. Put it back (and announce it with `mac`).
    PutBack {
        ifindex: u32,
        vip: VirtualAddress,
        key: InstanceKey,
        mac: Option<Mac>,
    },
    /// Marked ours, but no instance of ours holds it here (a backup): remove it.
    RemoveStray(Address),
    /// The address that blocked instance `key` is gone.
    ConflictGone { key: InstanceKey, address: IpAddr },
}

/// What `event` calls for, given the ledger (a cleared conflict leaves it).
pub(crate) fn decide(ledger: &mut Ledger, event: &NetEvent) -> Vec<WatchAction> {
    let mut out = Vec::new();
    match event {
        NetEvent::AddressRemoved(a) => {
            // A predecessor's address expired (or was removed): nothing of ours wanted it.
            if ledger.drop_inherited(a.index, a.address) {
                return out;
            }
            // (An inherited address was dropped above: every one left has a holder.)
            if let Some(h) = ledger.get(a.index, a.address)
                && let Some((_, key)) = &h.holder
            {
                out.push(WatchAction::PutBack {
                    ifindex: a.index,
                    vip: VirtualAddress {
                        address: a.address,
                        prefix_len: h.prefix_len,
                    },
                    key: key.clone(),
                    mac: h.mac,
                });
            }
            if let Some(key) = ledger.clear_conflict(a.index, a.address) {
                out.push(WatchAction::ConflictGone {
                    key,
                    address: a.address,
                });
            }
        }
        // Link-local ones are the virtual-MAC interface's own source address, not VIPs.
        NetEvent::AddressAdded(a)
            if a.is_ours()
                && !is_link_local(&a.address)
                && ledger.get(a.index, a.address).is_none() =>
        {
            out.push(WatchAction::RemoveStray(a.clone()));
        }
        _ => {}
    }
    out
}

/// Answers a kernel address event; kernel requests run in tasks of their own.
pub(crate) fn on_event<K: Kernel>(ctx: &Arc<Ctx<K>>, event: &NetEvent) {
    let actions = decide(&mut ctx.ledger.lock().expect("ledger"), event);
    for action in actions {
        match action {
            WatchAction::PutBack {
                ifindex,
                vip,
                key,
                mac,
            } => {
                let ctx = ctx.clone();
                tokio::spawn(async move { put_back(&ctx, ifindex, vip, key, mac).await });
            }
            WatchAction::RemoveStray(a) => {
                warn!(address = %a.address, "a virtual address of ours appeared where we hold none: removing it");
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let vip = VirtualAddress {
                        address: a.address,
                        prefix_len: a.prefix_len,
                    };
                    if ctx.kernel.del_address(a.index, vip).await.is_err() {
                        ctx.count_netlink_errors(1);
                    }
                });
            }
            WatchAction::ConflictGone { key, address } => {
                info!(instance = %key, %address, "the conflicting address is gone");
                set_bind_fault(&ctx.engine, &key, None);
            }
        }
    }
}

async fn put_back<K: Kernel>(
    ctx: &Ctx<K>,
    ifindex: u32,
    vip: VirtualAddress,
    key: InstanceKey,
    mac: Option<Mac>,
) {
    match ctx.kernel.add_address(ifindex, vip).await {
        // Already there: the removal was our own unbind racing a new bind of the same
        // address, not someone else's. Nothing to count.
        Ok(false) => {}
        Ok(true) => {
            if let Some(mac) = mac {
                let _ = ctx.announcer.send(AnnounceCmd::Once {
                    ifindex,
                    mac,
                    address: vip.address,
                });
            }
            let _ = ctx.engine.send(EngineCmd::Restored {
                key,
                address: vip.address,
            });
        }
        Err(e) => {
            ctx.count_netlink_errors(1);
            warn!(address = %vip, error = %e, "cannot put back a removed virtual address")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InstanceId;
    use crate::net::netlink::ADDRESS_PROTO;

    fn address(s: &str, proto: Option<u8>) -> Address {
        Address {
            index: 2,
            address: s.parse().unwrap(),
            prefix_len: 24,
            proto,
        }
    }

    fn held(ledger: &mut Ledger, s: &str) {
        let vip = VirtualAddress {
            address: s.parse().unwrap(),
            prefix_len: 24,
        };
        ledger.hold(
            2,
            InstanceId::nth(1),
            &"a/ipv4".parse().unwrap(),
            &[vip],
            Some([2; 6]),
        );
    }

    #[test]
    fn a_held_address_removed_is_put_back() {
        let mut l = Ledger::default();
        held(&mut l, "10.0.0.1");
        let actions = decide(
            &mut l,
            &NetEvent::AddressRemoved(address("10.0.0.1", Some(ADDRESS_PROTO))),
        );
        assert_eq!(
            actions,
            vec![WatchAction::PutBack {
                ifindex: 2,
                vip: VirtualAddress {
                    address: "10.0.0.1".parse().unwrap(),
                    prefix_len: 24
                },
                key: "a/ipv4".parse().unwrap(),
                mac: Some([2; 6]),
            }]
        );
    }

    #[test]
    fn an_address_not_held_removed_is_left_alone() {
        let mut l = Ledger::default();
        let e = NetEvent::AddressRemoved(address("10.0.0.1", Some(ADDRESS_PROTO)));
        assert!(decide(&mut l, &e).is_empty());
    }

    #[test]
    fn a_conflicting_address_removed_clears_the_conflict_once() {
        let mut l = Ledger::default();
        l.conflict(2, "10.0.0.1".parse().unwrap(), &"a/ipv4".parse().unwrap());
        let e = NetEvent::AddressRemoved(address("10.0.0.1", None));
        assert_eq!(
            decide(&mut l, &e),
            vec![WatchAction::ConflictGone {
                key: "a/ipv4".parse().unwrap(),
                address: "10.0.0.1".parse().unwrap()
            }]
        );
        assert!(decide(&mut l, &e).is_empty());
    }

    #[test]
    fn a_marked_address_nobody_holds_is_removed() {
        let mut l = Ledger::default();
        let stray = address("10.0.0.1", Some(ADDRESS_PROTO));
        assert_eq!(
            decide(&mut l, &NetEvent::AddressAdded(stray.clone())),
            vec![WatchAction::RemoveStray(stray)]
        );
    }

    #[test]
    fn added_addresses_that_are_held_foreign_or_link_local_are_left_alone() {
        let mut l = Ledger::default();
        held(&mut l, "10.0.0.1");
        for a in [
            address("10.0.0.1", Some(ADDRESS_PROTO)),
            address("10.0.0.2", None),
            address("fe80::1", Some(ADDRESS_PROTO)),
        ] {
            assert!(decide(&mut l, &NetEvent::AddressAdded(a)).is_empty());
        }
    }
}
