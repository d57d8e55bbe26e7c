//! Virtual servers (keepalived `virtual_server` / `real_server`): the master of a VirtualIP
//! spreads the connections to one of its addresses and a port over checked real servers, with
//! nftables rules in a table of the agent's own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DurationText, ExecCheckSpec, Scheme};

/// One service on one of the VirtualIP's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServerSpec {
    /// One of the VirtualIP's addresses, without the prefix, e.g. 198.51.100.50.
    #[schemars(length(max = 64))]
    pub address: String,
    /// TCP or UDP port, 1 to 65535.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// TCP (default) or UDP. Address, port and protocol name a virtual server in the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "TCP"))]
    pub protocol: Option<Protocol>,
    /// How new connections are spread: RoundRobin (default; keepalived `rr`),
    /// WeightedRoundRobin (`wrr`) or SourceHash (`sh`: one client, one real server while the
    /// set of servers stands). Every scheduler keeps each server's share as its weight says.
    /// nftables keeps no per-server connection counts to choose by, so least-connection
    /// schedulers (`lc`, `wlc`, ...) are not offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Scheduler>,
    /// One client, one real server (keepalived `persistence_timeout`): a client's new
    /// connections go to the real server its last one went to, until it has opened none for
    /// this long (1s to 86400s, a day). A real server that goes down or is removed loses its clients to
    /// the others. IPv4 only (nftables cannot record an IPv6 client's server from the packet
    /// path: use SourceHash there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub persistence_timeout: Option<DurationText>,
    /// NAT (default; keepalived `lb_kind NAT`: the real servers route their replies back
    /// through the director), FullNAT (also the source is the director's address: works with
    /// the real servers on the clients' segment) or DirectRouting (`DR`: the real servers hold
    /// the address on a non-ARPing interface and answer the clients themselves; the director
    /// rewrites the frames' MACs, needs a check and keeps the port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,
    /// The real servers, up to 64, each named by its address and port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["address", "port"]))]
    pub real_servers: Vec<RealServerSpec>,
    /// Real servers given as Nodes (cluster only): every Node the selector matches, at its
    /// InternalIP of the virtual server's family, joins `realServers` and follows the Nodes as
    /// they come and go. A control-plane address balances over every API server with
    /// `{nodeSelector: {node-role.kubernetes.io/control-plane: ""}, port: 6443}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_server_nodes: Option<RealServerNodesSpec>,
    /// How each real server is checked (keepalived `HTTP_GET`, `SSL_GET`, `TCP_CHECK`,
    /// `MISC_CHECK`). None: every real server counts as up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<RealServerCheckSpec>,
    /// Where connections go while no real server is up (keepalived `sorry_server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServerSpec>,
    /// A real server that fails its check keeps its place with weight 0 instead of being
    /// removed (keepalived `inhibit_on_failure`). Either way it gets no new connections.
    #[serde(default)]
    pub inhibit_on_failure: bool,
    /// Real servers may be the director's own addresses: a director that also serves (the
    /// classic two-node LVS-DR, or the API servers behind a control-plane address). Off by
    /// default: a virtual server would relay clients to services only the node should reach.
    /// `realServerNodes` implies it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_node_addresses: bool,
}

/// The transport protocol of a virtual server. One text form, `TCP` / `UDP` (serde,
/// `Display`, `FromStr`): the CR, the status's service names, `kube-vrrp status`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Default,
)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    /// `TCP` or `UDP`, as written; the kernel's lower-case names too (`tcp`, as conntrack
    /// writes them).
    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "TCP" | "tcp" => Ok(Protocol::Tcp),
            "UDP" | "udp" => Ok(Protocol::Udp),
            _ => Err(format!("{s:?} is not a protocol: use TCP or UDP")),
        }
    }
}

/// How new connections are spread over the real servers that are up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum Scheduler {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    SourceHash,
}

/// How a connection reaches its real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum Forwarding {
    #[default]
    #[serde(rename = "NAT")]
    Nat,
    #[serde(rename = "FullNAT")]
    FullNat,
    DirectRouting,
}

/// One real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerSpec {
    /// Its IP address (of the virtual server's family).
    #[schemars(length(max = 64))]
    pub address: String,
    /// Its port; 0 (the default): the virtual server's. With the address it names the real
    /// server in the list (a list-map), so `kubectl apply --server-side` can set one real
    /// server's weight.
    // A list-map key must be required or defaulted (the API server refuses the CRD
    // otherwise): the schema defaults it to 0, which means "the virtual server's port".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535), extend("default" = 0))]
    pub port: Option<u16>,
    /// 0 to 1000, default 1: its share of new connections (WeightedRoundRobin, SourceHash).
    /// 0: it takes no new connections (drained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: Option<u32>,
    /// A check of its own instead of the virtual server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<RealServerCheckSpec>,
    /// Its own `inhibitOnFailure` (keepalived's is per real server). Default: the virtual
    /// server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_on_failure: Option<bool>,
}

/// Real servers given as the Nodes a selector matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerNodesSpec {
    /// Node labels that must all match (an empty map: every Node).
    #[serde(default)]
    #[schemars(extend("maxProperties" = 16))]
    pub node_selector: std::collections::BTreeMap<String, String>,
    /// Their port. Default: the virtual server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Each one's weight, 0 to 1000, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: Option<u32>,
}

/// Where connections go while no real server is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SorryServerSpec {
    #[schemars(length(max = 64))]
    pub address: String,
    /// Default: the virtual server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

/// A real server's check, with keepalived's timing: every `delayLoop`, one attempt of at most
/// `connectTimeout`; after a failure up to `retry` more attempts `delayBeforeRetry` apart
/// before the server is down; one success brings it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerCheckSpec {
    /// Time between checks (keepalived `delay_loop`), 100ms to 1h. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub delay_loop: Option<DurationText>,
    /// How long one attempt may take (`connect_timeout`). Default 5s, at most `delayLoop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub connect_timeout: Option<DurationText>,
    /// Attempts after a failure before the server is down (`retry`, `nb_get_retry`), 0 to
    /// 10. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub retry: Option<u32>,
    /// Time between those attempts (`delay_before_retry`). Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub delay_before_retry: Option<DurationText>,
    /// The port to check (`connect_port`). Default: the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// HTTP(S) GET of the real server (`HTTP_GET`, `SSL_GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<RealServerHttpCheck>,
    /// TCP connect to the real server (`TCP_CHECK`): `tcp: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<RealServerTcpCheck>,
    /// A program (`MISC_CHECK`), run on the director; as for `healthChecks`, in cluster mode
    /// only on agents started with `--allow-exec` naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheckSpec>,
}

/// `GET scheme://realserver:port/path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerHttpCheck {
    /// HTTP (default) or HTTPS (not verified: `SSL_GET` does not verify either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// Request path (`url { path }`), default "/".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
    /// The Host header. Default: the real server's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub host_header: Option<String>,
    /// Status codes that pass (`status_code`): codes ("200") or ranges ("200-299").
    /// Default 200-399, as every HTTP check here (keepalived's default is 200-299:
    /// `kube-vrrp import` writes it out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 7)))]
    pub expected_status: Vec<String>,
    /// The MD5 of the whole body, in hex (keepalived `url { digest }`, as `genhash` prints
    /// it): the page must also read exactly this. The body is read up to 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 32, max = 32))]
    pub digest: Option<String>,
}

/// TCP connect: no settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub struct RealServerTcpCheck {}

impl RealServerSpec {
    /// The port it serves on: its own, or (none, or 0 as the API server defaults it) the
    /// virtual server's.
    pub fn port_on(&self, virtual_port: u16) -> u16 {
        match self.port {
            None | Some(0) => virtual_port,
            Some(p) => p,
        }
    }
}
