//! The director: keepalived's load-balancing half as a sans-IO core, like [`crate::vrrp::Instance`].
//! [`plan`] takes what the agent knows (the virtual servers, their real servers' health, the
//! neighbour table, this node's addresses and where each VirtualIP runs) and returns a typed
//! rule set and the statuses; [`crate::net::nft`] only renders the rule set. Every decision
//! is here, tested without a kernel:
//!
//! - which real servers take new connections, with which weight (down: left out, or weight 0
//!   with `inhibitOnFailure`), and the sorry server when none is left;
//! - the lookup table that spreads them ([`table`]): a counter over smooth round-robin slots
//!   (rr, wrr), or a Maglev table hashed by client (source hash) or by flow (direct routing);
//! - direct routing's reachability: a real server whose MAC is unknown gets no frames and is
//!   not reported up; one that is this node delivers locally;
//! - loops: only the node holding the address forwards its frames (so a frame another
//!   director forwarded here is never forwarded again), and a director that is a real server
//!   takes what the master forwards to it without a notify script;
//! - where full NAT's connections come from (the virtual address, which moves with the
//!   master, so a takeover with shared connection tracking keeps them).

pub(crate) mod changes;
pub(crate) mod health;
pub(crate) mod stats;
pub(crate) mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::api::{Forwarding, Protocol, Scheduler};
use crate::ids::{Family, InstanceKey};
use crate::model::virtualserver::{ServiceKey, VirtualServer};

pub use table::SLOTS;

/// How long direct routing remembers which real server a flow went to, after its last packet
/// (IPVS's TCP established timeout is 15 minutes; its UDP one 5).
pub const PIN_TCP: Duration = Duration::from_secs(900);
pub const PIN_UDP: Duration = Duration::from_secs(300);

/// Where a VirtualIP's family runs on this node: its interface, that interface's MAC, and
/// the MAC the address answers with (the virtual MAC, or the interface's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnLink {
    pub interface: String,
    pub mac: [u8; 6],
    pub answers: [u8; 6],
}

/// One virtual server as the director sees it: its VirtualIP, and whether each real server
/// passes its check (unchecked: true).
#[derive(Debug, Clone)]
pub struct Service<'a> {
    pub virtual_ip: &'a str,
    pub vs: &'a VirtualServer,
    pub up: Vec<bool>,
}

/// What this node is: its addresses (the VirtualIPs' included while it holds them), the
/// neighbour tables' MACs, and where each VirtualIP's family runs (its instance → link).
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub addresses: BTreeSet<IpAddr>,
    pub neighbours: BTreeMap<IpAddr, [u8; 6]>,
    pub links: BTreeMap<InstanceKey, OnLink>,
    /// The networks real servers must be in (the agent's `--real-server-networks`); empty:
    /// any.
    pub networks: Vec<Network>,
}

/// A network in CIDR notation, e.g. 198.51.100.0/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.address.is_ipv4()
            && crate::model::address::same_subnet(&self.address, &ip, self.prefix)
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Network, String> {
        let bad = || format!("{s:?} is not a network: write address/prefix, e.g. 198.51.100.0/24");
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let address: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > if address.is_ipv4() { 32 } else { 128 } {
            return Err(bad());
        }
        Ok(Network { address, prefix })
    }
}

/// How a new connection's slot is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// A counter walking the slots (round robin, weighted round robin).
    Counter,
    /// A hash of the client's address (source hash).
    Source,
    /// A hash of the client's address and port (every direct-routing flow otherwise).
    Flow,
}

/// How connections leave the director towards a real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snat {
    /// NAT: the client's address is kept; only a real server that is a client of its own
    /// service is masqueraded (a hairpin).
    Hairpin(Vec<IpAddr>),
    /// Full NAT: from the virtual server's own address (the client's port kept where it is
    /// free), which moves with it: a director that takes over holds it, so the real
    /// servers' replies to a connection it inherited (its tracking shared, see
    /// `--sync-connections`) reach it. The director's own connections come from its address.
    FromVirtual(IpAddr),
    /// The director's own connections by direct routing: from the director.
    Masquerade,
}

/// Direct routing on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub link: OnLink,
    /// Every server frames may go to: the real servers in order, then the sorry server.
    pub servers: Vec<DrServer>,
    /// Slot → index into `servers` (this node's own MAC: delivered here). Empty: nowhere.
    pub slots: Vec<u16>,
    /// This node holds the address: only then are frames forwarded.
    pub holds: bool,
    /// This node is one of the real servers: frames the master forwards here are taken.
    pub here: bool,
    /// How long a flow keeps its real server after its last packet.
    pub pin: Duration,
}

/// A server direct routing may send frames to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrServer {
    /// Its MAC; none: unknown (it is in no slot).
    pub mac: Option<[u8; 6]>,
    /// Its flows keep it when it leaves the table (TCP, or kept at weight 0 by
    /// `inhibitOnFailure`); otherwise (UDP) they are forgotten and chosen again.
    pub keeps_flows: bool,
}

impl Routed {
    /// Slot → the MAC its frames go to.
    pub fn macs(&self) -> Vec<[u8; 6]> {
        self.slots
            .iter()
            .filter_map(|i| self.servers[*i as usize].mac)
            .collect()
    }
}

/// The rules of one virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub key: ServiceKey,
    pub protocol: Protocol,
    pub forwarding: Forwarding,
    pub pick: Pick,
    /// Slot → real server, [`SLOTS`] long; empty: nowhere (the director's own stack answers).
    /// Direct routing: for the director's own connections only.
    pub table: Vec<SocketAddr>,
    pub snat: Snat,
    /// Direct routing: where the address runs here; none: not on this node.
    pub routed: Option<Routed>,
    /// keepalived `persistence_timeout`: a client's new connections go where its last one
    /// went, until it has opened none for this long (NAT, full NAT: per new connection;
    /// direct routing: per packet).
    pub persist: Option<Duration>,
    /// The servers whose connections, packets and bytes are counted (NAT and full NAT: the
    /// real servers and the sorry server; direct routing's frames pass no counter).
    pub counted: Vec<SocketAddr>,
}

/// What the rules are, for every virtual server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSet {
    pub services: Vec<Rules>,
}

/// Why a real server takes no new connections, or that it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Up,
    /// Its check fails.
    Down,
    /// Direct routing and its MAC is unknown: no frame can reach it.
    NoMac,
    /// One of this node's own addresses, and the virtual server does not allow them.
    NodeAddress,
    /// Outside the networks real servers must be in.
    Outside,
}

impl Reach {
    /// Why a server that passes its check still takes nothing, in words.
    pub fn why(&self, addr: IpAddr, networks: &[Network]) -> Option<String> {
        match self {
            Reach::Up | Reach::Down => None,
            Reach::NoMac => Some(format!(
                "no MAC address known for {addr}: direct routing cannot send it frames (is it on this node's segment?)"
            )),
            Reach::NodeAddress => Some(format!(
                "{addr} is this node's own address: not relayed to (a node's own services are not the clients'); set allowNodeAddresses: true if this director serves too"
            )),
            Reach::Outside => Some(format!(
                "{addr} is outside the networks real servers may be in ({}, the agent's --real-server-networks): not used",
                networks
                    .iter()
                    .map(Network::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// One real server in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealPlan {
    pub addr: SocketAddr,
    pub reach: Reach,
    /// The weight in force: its weight while up, 0 with `inhibitOnFailure`, none: left out.
    pub weight: Option<u32>,
    /// The slots it holds.
    pub slots: u32,
}

impl RealPlan {
    /// Up, with weight 0 as configured: it takes no new connections; established ones stay.
    pub fn drained(&self) -> bool {
        self.reach == Reach::Up && self.weight == Some(0)
    }
}

/// Where new connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    RealServers,
    Sorry,
    Nowhere,
}

impl Serving {
    pub fn as_str(self) -> &'static str {
        match self {
            Serving::RealServers => "real servers",
            Serving::Sorry => "sorry server",
            Serving::Nowhere => "nowhere",
        }
    }
}

/// One virtual server in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub virtual_ip: String,
    pub key: ServiceKey,
    pub serving: Serving,
    pub reals: Vec<RealPlan>,
    /// Direct routing not running here (the address has no interface on this node).
    pub routed_here: bool,
}

impl ServicePlan {
    /// Real servers up of all, e.g. "2/3": reachable, passing their check and taking new
    /// connections; a drained one (weight 0) is said apart: "2/3 (1 drained)".
    pub fn up(&self) -> String {
        let up = self
            .reals
            .iter()
            .filter(|r| r.reach == Reach::Up && !r.drained())
            .count();
        let drained = self.reals.iter().filter(|r| r.drained()).count();
        match drained {
            0 => format!("{up}/{}", self.reals.len()),
            d => format!("{up}/{} ({d} drained)", self.reals.len()),
        }
    }
}

/// The rules and statuses for `services` on `node`.
pub fn plan(services: &[Service<'_>], node: &Node) -> (RuleSet, Vec<ServicePlan>) {
    let mut rules = Vec::new();
    let mut plans = Vec::new();
    for s in services {
        let (r, p) = one(s, node);
        rules.push(r);
        plans.push(p);
    }
    (RuleSet { services: rules }, plans)
}

fn one(s: &Service<'_>, node: &Node) -> (Rules, ServicePlan) {
    let vs = s.vs;
    let dr = vs.forwarding == Forwarding::DirectRouting;
    let link = dr
        .then(|| {
            node.links
                .get(&InstanceKey::new(s.virtual_ip, Family::of(&vs.address)))
        })
        .flatten();
    // A real server's MAC: this node's own when it is this node, else the neighbour table's.
    let mac_of = |ip: &IpAddr| -> Option<[u8; 6]> {
        if node.addresses.contains(ip) {
            link.map(|l| l.mac)
        } else {
            node.neighbours.get(ip).copied()
        }
    };
    let allowed =
        |ip: IpAddr| node.networks.is_empty() || node.networks.iter().any(|n| n.contains(ip));
    let reach: Vec<Reach> = vs
        .reals
        .iter()
        .zip(s.up.iter().chain(std::iter::repeat(&true)))
        .map(|(r, up)| {
            let ip = r.addr.ip();
            if !vs.allow_node_addresses && node.addresses.contains(&ip) {
                Reach::NodeAddress
            } else if !allowed(ip) {
                Reach::Outside
            } else if !up {
                Reach::Down
            } else if dr && mac_of(&ip).is_none() {
                Reach::NoMac
            } else {
                Reach::Up
            }
        })
        .collect();
    let weights: Vec<Option<u32>> = vs
        .reals
        .iter()
        .zip(&reach)
        .map(
            |(r, reach)| match (reach, r.inhibit.unwrap_or(vs.inhibit_on_failure)) {
                (Reach::Up, _) => Some(r.weight),
                (_, true) => Some(0),
                (_, false) => None,
            },
        )
        .collect();
    let live: Vec<(SocketAddr, u32)> = vs
        .reals
        .iter()
        .zip(&weights)
        .filter_map(|(r, w)| w.filter(|w| *w > 0).map(|w| (r.addr, w)))
        .collect();
    let pick = match (vs.scheduler, dr) {
        (Scheduler::SourceHash, _) => Pick::Source,
        (_, true) => Pick::Flow,
        _ => Pick::Counter,
    };
    let (serving, table, slots_of): (Serving, Vec<SocketAddr>, Vec<u32>) = if live.is_empty() {
        // The sorry server: by direct routing only when its MAC is known.
        let usable = |a: &SocketAddr| {
            allowed(a.ip())
                && (vs.allow_node_addresses || !node.addresses.contains(&a.ip()))
                && (!dr || mac_of(&a.ip()).is_some())
        };
        match vs.sorry.filter(usable) {
            Some(sorry) => (
                Serving::Sorry,
                vec![sorry; SLOTS as usize],
                vec![0; vs.reals.len()],
            ),
            None => (Serving::Nowhere, Vec::new(), vec![0; vs.reals.len()]),
        }
    } else {
        let table: Vec<SocketAddr> = match pick {
            Pick::Counter => {
                // Round robin ignores weights (0 still means no new connections).
                let even = |list: &[(SocketAddr, u32)]| -> Vec<(SocketAddr, u32)> {
                    list.iter()
                        .map(|(a, w)| {
                            (
                                *a,
                                if vs.scheduler == Scheduler::RoundRobin {
                                    1
                                } else {
                                    *w
                                },
                            )
                        })
                        .collect()
                };
                // Every configured server's turns, whatever its health; a server's turns go,
                // while it takes nothing, to the others in their own turn order. A server going
                // down or coming back then changes its own slots only.
                let all = even(
                    &vs.reals
                        .iter()
                        .filter(|r| r.weight > 0)
                        .map(|r| (r.addr, r.weight))
                        .collect::<Vec<_>>(),
                );
                let live = even(&live);
                let base = table::round_robin(&all);
                let fill = table::round_robin(&live);
                let mut k = 0;
                base.iter()
                    .map(|i| {
                        let a = all[*i as usize].0;
                        if live.iter().any(|(l, _)| *l == a) {
                            a
                        } else {
                            let f = live[fill[k] as usize].0;
                            k += 1;
                            f
                        }
                    })
                    .collect()
            }
            Pick::Source | Pick::Flow => table::maglev(&live)
                .iter()
                .map(|i| live[*i as usize].0)
                .collect(),
        };
        let slots_of = vs
            .reals
            .iter()
            .map(|r| table.iter().filter(|a| **a == r.addr).count() as u32)
            .collect();
        (Serving::RealServers, table, slots_of)
    };
    let routed = link.map(|l| {
        let addrs: Vec<SocketAddr> = vs.reals.iter().map(|r| r.addr).chain(vs.sorry).collect();
        let servers = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| DrServer {
                mac: mac_of(&a.ip()),
                // TCP: a new connection (SYN) is always chosen afresh, so a flow's pin
                // only ever serves its own connection, which stays (as conntrack keeps NAT's).
                // UDP has no such start: a flow to a server taken out (not kept at weight 0)
                // is forgotten and chosen again.
                keeps_flows: i >= vs.reals.len()
                    || weights[i].is_some()
                    || vs.protocol == Protocol::Tcp,
            })
            .collect();
        Routed {
            link: l.clone(),
            servers,
            slots: table
                .iter()
                .map(|a| {
                    let i = addrs
                        .iter()
                        .position(|x| x == a)
                        .expect("a server of its own");
                    i as u16
                })
                .collect(),
            holds: node.addresses.contains(&vs.address),
            here: vs
                .reals
                .iter()
                .any(|r| node.addresses.contains(&r.addr.ip())),
            pin: match vs.protocol {
                Protocol::Tcp => PIN_TCP,
                Protocol::Udp => PIN_UDP,
            },
        }
    });
    let reals_ips: Vec<IpAddr> = vs
        .reals
        .iter()
        .map(|r| r.addr.ip())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let snat = match vs.forwarding {
        Forwarding::Nat => Snat::Hairpin(reals_ips),
        Forwarding::FullNat => Snat::FromVirtual(vs.address),
        Forwarding::DirectRouting => Snat::Masquerade,
    };
    let plan = ServicePlan {
        virtual_ip: s.virtual_ip.to_string(),
        key: vs.key(),
        serving,
        reals: vs
            .reals
            .iter()
            .zip(reach)
            .zip(weights)
            .zip(slots_of)
            .map(|(((r, reach), weight), slots)| RealPlan {
                addr: r.addr,
                reach,
                weight,
                slots,
            })
            .collect(),
        routed_here: !dr || link.is_some(),
    };
    let rules = Rules {
        key: vs.key(),
        protocol: vs.protocol,
        forwarding: vs.forwarding,
        pick,
        table,
        snat,
        routed,
        persist: vs.persistence,
        counted: if dr {
            Vec::new()
        } else {
            let mut all: Vec<SocketAddr> = vs.reals.iter().map(|r| r.addr).collect();
            all.extend(vs.sorry.filter(|s| !all.contains(s)));
            all
        },
    };
    (rules, plan)
}

#[cfg(test)]
mod tests;
