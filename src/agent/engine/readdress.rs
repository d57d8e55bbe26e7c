//! Changes applied in place to a running instance (no restart, no election): a new priority,
//! new announcement timing, new excluded addresses. What the data plane must do is decided by
//! the pure [`readdress_commands`] and [`retiming_command`]; the engine sends it.

use tracing::info;

use super::Engine;
use crate::agent::dataplane::excluded_ipv6;
use crate::agent::excluded::{AddressChange, change};
use crate::agent::messages::DataplaneCmd;
use crate::ids::InstanceId;
use crate::model::resolved::ResolvedInstance;
use crate::net::announce::Mac;
use crate::vrrp::{State, VirtualAddress};

/// Where an instance's addresses live.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    pub id: InstanceId,
    /// Where the VIPs are bound.
    pub ifindex: u32,
    pub mac: Mac,
    /// Whether it runs on a virtual-MAC link (then it has no standby link).
    pub vmac: bool,
}

/// The data plane's work when excluded addresses change from `change` to `new`: the standby
/// link follows (without a virtual MAC); a master binds the new ones and announces them at
/// once, releases the old ones, and takes the whole list on the usual announcement schedule.
/// Advertisements stay as they are.
pub(super) fn readdress_commands(
    at: Placement,
    change: AddressChange<VirtualAddress>,
    new: &ResolvedInstance,
    master: bool,
) -> Vec<DataplaneCmd> {
    let mut out = Vec::new();
    if !at.vmac {
        out.push(DataplaneCmd::Restage {
            id: at.id,
            key: new.key.clone(),
            ifindex: at.ifindex,
            addresses: excluded_ipv6(&new.config),
            master,
        });
    }
    if !master {
        return out;
    }
    if !change.removed.is_empty() {
        out.push(DataplaneCmd::Unbind {
            id: at.id,
            ifindex: at.ifindex,
            addresses: change.removed,
        });
    }
    if !change.added.is_empty() {
        out.push(DataplaneCmd::Bind {
            id: at.id,
            key: new.key.clone(),
            ifindex: at.ifindex,
            addresses: change.added.clone(),
        });
        out.push(announce(at, new, change.added, true));
    }
    out.push(announce(at, new, new.config.addresses.clone(), false));
    out
}

/// New announcement timing: a master's announcer takes it from the next burst on.
pub(super) fn retiming_command(
    at: Placement,
    old: &ResolvedInstance,
    new: &ResolvedInstance,
    master: bool,
) -> Option<DataplaneCmd> {
    (old.garp != new.garp && master).then(|| announce(at, new, new.config.addresses.clone(), false))
}

fn announce(
    at: Placement,
    r: &ResolvedInstance,
    addresses: Vec<VirtualAddress>,
    burst: bool,
) -> DataplaneCmd {
    DataplaneCmd::Announce {
        id: at.id,
        key: r.key.clone(),
        ifindex: at.ifindex,
        mac: at.mac,
        addresses,
        garp: r.garp,
        burst,
    }
}

impl Engine {
    /// Same instance, new priority, announcement timing and/or excluded addresses.
    pub(super) fn update(&mut self, resolved: ResolvedInstance) {
        let Some(&id) = self.by_key.get(&resolved.key.clone()) else {
            return;
        };
        let slot = self.slots.get_mut(&id).expect("slot");
        let (old, new) = (slot.resolved.config.priority, resolved.config.priority);
        if old != new {
            info!(instance = %resolved.key, from = old, to = new, "priority changed in place");
            slot.instance.reconfigure_priority(new);
        }
        let master = slot.instance.state() == State::Master;
        let mut commands = Vec::new();
        if slot.resolved.config.addresses != resolved.config.addresses {
            let c = change(
                slot.resolved.config.addresses.iter().copied(),
                &resolved.config.addresses,
            );
            info!(instance = %resolved.key, added = c.added.len(), removed = c.removed.len(), "excluded addresses changed in place");
            slot.instance
                .reconfigure_excluded(resolved.config.addresses.clone());
            commands = readdress_commands(slot.placement(), c, &resolved, master);
        }
        commands.extend(retiming_command(
            slot.placement(),
            &slot.resolved,
            &resolved,
            master,
        ));
        slot.resolved = resolved;
        for cmd in commands {
            super::links::send(&self.dataplane, &slot.resolved.away, cmd);
        }
        self.apply_trackers(id);
        self.mark_changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::GarpConfig;
    use crate::vrrp::InstanceConfig;

    const AT: Placement = Placement {
        id: InstanceId::nth(4),
        ifindex: 2,
        mac: [2, 0, 0, 0, 0, 1],
        vmac: false,
    };

    fn va(s: &str) -> VirtualAddress {
        s.parse().unwrap()
    }

    fn resolved(addresses: &[&str]) -> ResolvedInstance {
        let mut config = InstanceConfig::new(
            1,
            "2001:db8::11".parse().unwrap(),
            addresses.iter().map(|a| va(a)).collect(),
        );
        config.advertised = 1;
        ResolvedInstance {
            key: "web/ipv6".parse().unwrap(),
            name: "web".into(),
            interface: "eth0".into(),
            ifindex: 2,
            config,
            virtual_mac: false,
            garp: GarpConfig::default(),
            away: Vec::new(),
        }
    }

    fn names(cmds: &[DataplaneCmd]) -> Vec<&'static str> {
        cmds.iter()
            .map(|c| match c {
                DataplaneCmd::Restage { .. } => "restage",
                DataplaneCmd::Bind { .. } => "bind",
                DataplaneCmd::Unbind { .. } => "unbind",
                DataplaneCmd::Announce { burst: true, .. } => "burst",
                DataplaneCmd::Announce { burst: false, .. } => "schedule",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn a_backup_only_restages() {
        let old = resolved(&["2001:db8::1/128", "2001:db8::2/128"]);
        let new = resolved(&["2001:db8::1/128", "2001:db8::3/128"]);
        let c = change(old.config.addresses.iter().copied(), &new.config.addresses);
        let cmds = readdress_commands(AT, c, &new, false);
        assert_eq!(names(&cmds), vec!["restage"]);
        let DataplaneCmd::Restage {
            addresses, master, ..
        } = &cmds[0]
        else {
            unreachable!()
        };
        assert_eq!(addresses, &vec![va("2001:db8::3/128")]);
        assert!(!master);
    }

    #[test]
    fn a_master_releases_binds_announces_the_new_then_reschedules_all() {
        let old = resolved(&["2001:db8::1/128", "2001:db8::2/128"]);
        let new = resolved(&["2001:db8::1/128", "2001:db8::3/128"]);
        let c = change(old.config.addresses.iter().copied(), &new.config.addresses);
        let cmds = readdress_commands(AT, c, &new, true);
        assert_eq!(
            names(&cmds),
            vec!["restage", "unbind", "bind", "burst", "schedule"]
        );
        let DataplaneCmd::Unbind { addresses, .. } = &cmds[1] else {
            unreachable!()
        };
        assert_eq!(addresses, &vec![va("2001:db8::2/128")]);
        let DataplaneCmd::Announce { addresses, .. } = &cmds[3] else {
            unreachable!()
        };
        assert_eq!(addresses, &vec![va("2001:db8::3/128")]);
        let DataplaneCmd::Announce { addresses, .. } = &cmds[4] else {
            unreachable!()
        };
        assert_eq!(addresses, &new.config.addresses);
    }

    #[test]
    fn a_virtual_mac_master_that_only_lost_addresses_has_no_standby_link() {
        let old = resolved(&["2001:db8::1/128", "2001:db8::2/128"]);
        let new = resolved(&["2001:db8::1/128"]);
        let c = change(old.config.addresses.iter().copied(), &new.config.addresses);
        let at = Placement { vmac: true, ..AT };
        assert_eq!(
            names(&readdress_commands(at, c, &new, true)),
            vec!["unbind", "schedule"]
        );
    }

    #[test]
    fn new_timing_reaches_a_masters_announcer_only() {
        let old = resolved(&["2001:db8::1/128"]);
        let mut new = old.clone();
        assert!(
            retiming_command(AT, &old, &new, true).is_none(),
            "unchanged"
        );
        new.garp.repeat += 1;
        assert!(retiming_command(AT, &old, &new, false).is_none(), "backup");
        let cmd = retiming_command(AT, &old, &new, true).expect("master");
        assert_eq!(names(&[cmd]), vec!["schedule"]);
    }
}
