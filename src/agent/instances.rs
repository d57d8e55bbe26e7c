//! Instance lifecycle: what to start, stop or change in place when the configuration changes
//! (a pure diff), and the setup an instance needs before the engine can run it — sockets, the
//! virtual-MAC interface, the wait for a fresh IPv6 source to leave DAD — done here, off the
//! engine, concurrently per instance.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing::info;

use super::AgentError;
use super::messages::{Prepared, SocketKey};
use crate::ids::InstanceKey;
use crate::model::resolved::ResolvedInstance;
use crate::net::netlink::{Link, Netlink};
use crate::net::socket::{VrrpReceiver, VrrpSender};
use crate::net::virtual_mac;
use crate::vrrp::Family;

/// One step that makes the running set the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Hand over and stop.
    Stop(InstanceKey),
    /// Start (after setup).
    Start(ResolvedInstance),
    /// Priority, announcement timing and/or excluded addresses only: in place, no handover
    /// and take-back.
    Update(ResolvedInstance),
}

/// Same instance but for what can change in place.
fn same_but_in_place(a: &ResolvedInstance, b: &ResolvedInstance) -> bool {
    // Priority 255 makes an address owner: that is not a mere number.
    let owner_same = (a.config.priority == 255) == (b.config.priority == 255);
    let mut b = b.clone();
    b.config.priority = a.config.priority;
    b.garp = a.garp;
    // Excluded addresses are never advertised: they come and go without a restart (a pool
    // router gains and loses Services all day).
    if super::excluded::same_advertised(&a.config, &b.config) {
        b.config.addresses = a.config.addresses.clone();
    }
    *a == b && owner_same
}

/// Steps from `running` to `target`, stops first. Unchanged instances get no step at all.
pub(crate) fn diff(
    running: &BTreeMap<InstanceKey, ResolvedInstance>,
    target: &BTreeMap<InstanceKey, ResolvedInstance>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut starts = Vec::new();
    for (key, r) in running {
        match target.get(key) {
            None => steps.push(Step::Stop(key.clone())),
            Some(t) if t == r => {}
            Some(t) if same_but_in_place(r, t) => steps.push(Step::Update(t.clone())),
            Some(t) => {
                steps.push(Step::Stop(key.clone()));
                starts.push(Step::Start(t.clone()));
            }
        }
    }
    for (key, t) in target {
        if !running.contains_key(key) {
            starts.push(Step::Start(t.clone()));
        }
    }
    steps.extend(starts);
    steps
}

/// Shared by the setups: senders per (interface, source) — one socket for every instance
/// there, closed when the last instance using it is gone — and the receive sockets opened.
type SenderMap = HashMap<(u32, IpAddr), Weak<VrrpSender>>;

#[derive(Clone, Default)]
pub(crate) struct Sockets {
    senders: Arc<Mutex<SenderMap>>,
    receivers: Arc<Mutex<HashSet<SocketKey>>>,
}

impl Sockets {
    /// An interface is gone: its receivers must be opened anew when it comes back.
    pub(crate) fn forget_interface(&self, ifindex: u32) {
        self.receivers
            .lock()
            .expect("sockets")
            .retain(|(i, _)| *i != ifindex);
        self.senders
            .lock()
            .expect("sockets")
            .retain(|(i, _), _| *i != ifindex);
    }

    fn receiver(
        &self,
        key: SocketKey,
        ifname: &str,
    ) -> Result<Option<(SocketKey, socket2::Socket)>, AgentError> {
        let mut open = self.receivers.lock().expect("sockets");
        if open.contains(&key) {
            return Ok(None);
        }
        let s = VrrpReceiver::open_socket(key.1, ifname, key.0).map_err(|source| {
            AgentError::Socket {
                what: format!("VRRP receive socket on {ifname}"),
                source,
            }
        })?;
        open.insert(key);
        Ok(Some((key, s)))
    }

    async fn sender(
        &self,
        ifname: &str,
        ifindex: u32,
        source: IpAddr,
    ) -> Result<Arc<VrrpSender>, AgentError> {
        if let Some(s) = self
            .senders
            .lock()
            .expect("sockets")
            .get(&(ifindex, source))
            .and_then(Weak::upgrade)
        {
            return Ok(s);
        }
        let s = Arc::new(
            open_sender(ifname, ifindex, source)
                .await
                .map_err(|source| AgentError::Socket {
                    what: format!("VRRP send socket on {ifname}"),
                    source,
                })?,
        );
        self.senders
            .lock()
            .expect("sockets")
            .insert((ifindex, source), Arc::downgrade(&s));
        Ok(s)
    }
}

/// Everything an instance needs before the engine runs it. `base` is its interface as the
/// resolution read it (one read of the links for the whole configuration, not one per
/// instance).
pub(crate) async fn prepare(
    nl: &Netlink,
    sockets: &Sockets,
    resolved: ResolvedInstance,
    base: Link,
) -> Result<Prepared, AgentError> {
    let family = resolved.config.family();
    let mut receivers = Vec::new();
    receivers.extend(sockets.receiver((base.index, family), &base.name)?);
    let (addr_ifindex, send_ifname, announce_mac, vmac_link) = if resolved.virtual_mac {
        let mac = virtual_mac(family, resolved.config.vrid);
        let name = vmac_name(family, resolved.config.vrid);
        let index = nl.ensure_macvlan(base.index, &name, mac).await?;
        // The base interface must never tie the VIPs to its own MAC: not by answering ARP
        // for them (arp_ignore), nor by using them as the sender of its own ARP requests
        // when replies from a VIP leave through it (arp_announce).
        crate::net::sysctl::set(&format!("net/ipv4/conf/{}/arp_ignore", base.name), "1");
        crate::net::sysctl::set(&format!("net/ipv4/conf/{}/arp_announce", base.name), "2");
        // Both nodes have this interface with the same MAC: it must never speak on its
        // own. No IPv6 link-local (and so no DAD, MLD or router solicitation) for an IPv4
        // instance; for an IPv6 one no generated address, and our VIPs skip DAD.
        match family {
            Family::V4 => {
                crate::net::sysctl::set(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1")
            }
            Family::V6 => {
                crate::net::sysctl::set(&format!("net/ipv6/conf/{name}/addr_gen_mode"), "1");
                crate::net::sysctl::set(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
                crate::net::sysctl::set(&format!("net/ipv6/conf/{name}/accept_dad"), "0");
            }
        }
        nl.set_up(index).await?;
        if resolved.config.primary_address.is_ipv6() {
            // IPv6 adverts leave from our link-local address (RFC 5798 §5.1.2.1) but
            // through the virtual-MAC interface: give it the same link-local address.
            let own = crate::vrrp::VirtualAddress {
                address: resolved.config.primary_address,
                prefix_len: 64,
            };
            nl.add_address(index, &own).await?;
        }
        // Another node's adverts come from the same virtual MAC: the macvlan driver hands
        // such frames to our macvlan, not to the base interface. Listen there too.
        receivers.extend(sockets.receiver((index, family), &name)?);
        (index, name, mac, Some(index))
    } else {
        (
            base.index,
            base.name.clone(),
            base.mac.unwrap_or_default(),
            None,
        )
    };
    let sender = sockets
        .sender(&send_ifname, addr_ifindex, resolved.config.primary_address)
        .await?;
    Ok(Prepared {
        resolved,
        sender,
        receivers,
        addr_ifindex,
        announce_mac,
        vmac_link,
        base_up: base.up,
    })
}

/// Opens the sender, waiting up to 3 s for a fresh IPv6 link-local source to finish duplicate
/// address detection (the kernel refuses a tentative source). Only this instance's setup
/// waits: the engine runs on.
async fn open_sender(ifname: &str, ifindex: u32, source: IpAddr) -> std::io::Result<VrrpSender> {
    let mut tries = 0;
    loop {
        match VrrpSender::open(ifname, ifindex, source) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && tries < 30 => {
                if tries == 0 {
                    info!(%source, "source address not usable yet (duplicate address detection?); waiting");
                }
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

pub(crate) fn vmac_name(family: Family, vrid: u8) -> String {
    match family {
        Family::V4 => format!("vrrp4-{vrid}"),
        Family::V6 => format!("vrrp6-{vrid}"),
    }
}

pub(crate) fn is_vmac_name(name: &str) -> bool {
    ["vrrp4-", "vrrp6-"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|v| v.parse::<u8>().is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::GarpConfig;
    use crate::vrrp::InstanceConfig;

    fn inst(key: &str, vrid: u8, priority: u8) -> ResolvedInstance {
        let mut config = InstanceConfig::new(
            vrid,
            "198.51.100.11".parse().unwrap(),
            vec!["198.51.100.50/24".parse().unwrap()],
        );
        config.priority = priority;
        let key: InstanceKey = key.parse().unwrap();
        ResolvedInstance {
            name: key.name().into(),
            key,
            interface: "eth0".into(),
            ifindex: 2,
            config,
            virtual_mac: false,
            garp: GarpConfig::default(),
            away: Vec::new(),
        }
    }

    fn map(v: &[ResolvedInstance]) -> BTreeMap<InstanceKey, ResolvedInstance> {
        v.iter().map(|r| (r.key.clone(), r.clone())).collect()
    }

    #[test]
    fn unchanged_instances_are_left_alone() {
        let a = map(&[inst("a/ipv4", 1, 100), inst("b/ipv4", 2, 100)]);
        assert_eq!(diff(&a, &a), vec![]);
    }

    #[test]
    fn added_removed_and_changed() {
        let running = map(&[inst("a/ipv4", 1, 100), inst("b/ipv4", 2, 100)]);
        let target = map(&[inst("b/ipv4", 3, 100), inst("c/ipv4", 4, 100)]);
        assert_eq!(
            diff(&running, &target),
            vec![
                Step::Stop("a/ipv4".parse().unwrap()),
                Step::Stop("b/ipv4".parse().unwrap()),
                Step::Start(inst("b/ipv4", 3, 100)),
                Step::Start(inst("c/ipv4", 4, 100)),
            ]
        );
    }

    #[test]
    fn priority_and_announcement_timing_change_in_place() {
        let running = map(&[inst("a/ipv4", 1, 100)]);
        let mut t = inst("a/ipv4", 1, 150);
        t.garp.repeat = 1;
        assert_eq!(
            diff(&running, &map(std::slice::from_ref(&t))),
            vec![Step::Update(t)]
        );
        // Becoming the address owner is a restart.
        let owner = inst("a/ipv4", 1, 255);
        assert_eq!(
            diff(&running, &map(std::slice::from_ref(&owner))),
            vec![Step::Stop("a/ipv4".parse().unwrap()), Step::Start(owner)]
        );
    }

    #[test]
    fn excluded_addresses_change_in_place_advertised_ones_restart() {
        let running = map(&[inst("a/ipv4", 1, 100)]);
        let mut t = inst("a/ipv4", 1, 100);
        t.config.addresses.push("198.51.100.60/32".parse().unwrap());
        assert_eq!(
            diff(&running, &map(std::slice::from_ref(&t))),
            vec![Step::Update(t.clone())]
        );
        // And back: an excluded address goes in place too.
        assert_eq!(
            diff(&map(std::slice::from_ref(&t)), &running),
            vec![Step::Update(inst("a/ipv4", 1, 100))]
        );
        // A new advertised address changes every advertisement: a restart.
        let mut adv = t.clone();
        adv.config.advertised = 2;
        assert_eq!(
            diff(&running, &map(std::slice::from_ref(&adv))),
            vec![Step::Stop("a/ipv4".parse().unwrap()), Step::Start(adv)]
        );
    }

    #[test]
    fn vmac_names() {
        assert_eq!(vmac_name(Family::V6, 51), "vrrp6-51");
        assert!(is_vmac_name("vrrp4-255"));
        assert!(!is_vmac_name("vrrp4-256"));
        assert!(!is_vmac_name("eth0"));
    }
}
