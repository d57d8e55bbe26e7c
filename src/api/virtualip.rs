//! `VirtualIP` (`kube-vrrp.io/v1alpha1`, cluster-scoped): the desired state of one virtual
//! router: its addresses, VRRP settings, health checks, tracked interfaces and notify hooks.
//! Also the form a standalone agent file writes it in ([`VirtualIpDocument`]).
// Every type here is re-exported as `api::*`. kube's `KubeSchema` derive copies the structs
// it validates into a private module of its own, and those copies are what unreachable_pub
// sees.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DurationText, VirtualIPStatus};

/// Desired state of a set of virtual addresses held by one VRRP virtual router.
// clippy reads the repeated `type_ = "string"` of several printcolumns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "kube-vrrp.io",
    version = "v1alpha1",
    kind = "VirtualIP",
    plural = "virtualips",
    singular = "virtualip",
    shortname = "vip",
    status = "VirtualIPStatus",
    derive = "PartialEq",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "VRID",
        type_ = "integer",
        json_path = ".status.virtualRouterID"
    ),
    printcolumn(name = "Master", type_ = "string", json_path = ".status.master"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Nodes", type_ = "string", json_path = ".status.summary"),
    printcolumn(name = "Failing", type_ = "string", json_path = ".status.failing"),
    printcolumn(name = "Servers", type_ = "string", json_path = ".status.servers"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Version",
        type_ = "integer",
        json_path = ".spec.version",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.version == 2 || !has(self.authentication)")
        .message("authentication exists only in VRRPv2 (RFC 5798 removed it): set version 2 or remove authentication"),
    validation = Rule::new("self.version == 3 || !has(self.advertInterval) || self.advertInterval.matches('^[0-9]+s$')")
        .message("VRRPv2 advertisement intervals are whole seconds (1s to 255s): write e.g. 1s, or use version 3"),
    validation = Rule::new("self.version == 3 || self.addresses.all(a, !a.contains(':'))")
        .message("VRRPv2 carries IPv4 only: use version 3 for IPv6 addresses")
)]
pub struct VirtualIpSpec {
    /// Virtual addresses as "ip/prefix", e.g. 192.0.2.10/24 or 2001:db8::10/64. IPv4 and IPv6
    /// may be mixed: each family gets its own VRRP instance with the same virtual router ID.
    /// "ip/prefix dev IFACE" (keepalived's `dev`) binds that address on another interface
    /// than the one VRRP runs on, e.g. a two-armed director's back gateway
    /// "203.0.113.1/24 dev eth1"; that interface is tracked (down: FAULT; missing when the
    /// instance starts: it does not run on that node, and its status says why).
    // Bounds keep the CEL rules' estimated cost within the API server's budget (an unbounded
    // list of unbounded strings is refused when the CRD is created). 255: an advertisement's
    // address count; 69: the longest IPv6 text with a prefix, " dev " and an interface name.
    #[schemars(length(min = 1, max = 255), inner(length(max = 69)))]
    #[x_kube(validation = Rule::new("self.all(a, isCIDR(a) || isIP(a) || a.matches('^[0-9a-fA-F.:]+(/[0-9]{1,3})? dev [^ /:]{1,15}$'))")
        .message("every address must be ip/prefix, e.g. 192.0.2.10/24 or 2001:db8::10/64, optionally followed by dev and an interface name"))]
    pub addresses: Vec<String>,
    /// Interface to run VRRP on and bind the addresses to. Default: on each node, the
    /// interface with an address in the subnet of the first virtual address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// VRRP Virtual Router ID, 1 to 255, unique per L2 segment. Default: allocated by the
    /// controller (standalone mode requires it).
    #[serde(
        rename = "virtualRouterID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 255))]
    pub virtual_router_id: Option<u8>,
    /// VRRP version: 3 (RFC 5798, default) or 2 (RFC 3768, IPv4 only).
    #[serde(default = "default_version")]
    #[schemars(range(min = 2, max = 3))]
    pub version: u8,
    /// Advertisement interval, e.g. "1s", "100ms". VRRPv3: 10ms to 40.95s in steps of 10ms;
    /// VRRPv2: whole seconds. Default "1s". A backup takes over after 3 intervals plus a skew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub advert_interval: Option<DurationText>,
    /// VRRPv3: the longest advertisement interval a backup adopts from a master (RFC 5798
    /// lets it learn any). Default: advertInterval itself, so one spoofed advertisement
    /// cannot make the backups wait minutes; raise it to follow a foreign master (say a
    /// keepalived) with a longer interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub max_learned_interval: Option<DurationText>,
    /// A higher-priority node takes the addresses back from a lower-priority master.
    /// Default true. The address owner (priority 255) always preempts.
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// Hold-off before preempting a lower-priority master after start-up, e.g. "30s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub preempt_delay: Option<DurationText>,
    /// Only nodes with these labels take part. Default: every node with an agent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Per-node priorities (1 to 255; 255 makes that node the address owner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"]))]
    pub priorities: Vec<NodePriority>,
    /// Priority of nodes not listed in `priorities`, 1 to 255. Default 100.
    #[serde(default = "default_priority")]
    #[schemars(range(min = 1, max = 255))]
    pub default_priority: u8,
    /// Send advertisements to the eligible nodes' addresses instead of multicast, and accept
    /// only theirs (for networks that drop multicast). Cluster mode.
    #[serde(default)]
    pub unicast: bool,
    /// Explicit unicast peers (IP addresses); empty: multicast, or the nodes with `unicast`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<String>,
    /// Use the RFC 5798 virtual MAC (00:00:5e:00:01:VRID, IPv6 00:00:5e:00:02:VRID) through a
    /// macvlan interface, so clients' ARP entries never change on failover.
    #[serde(rename = "virtualMAC", default)]
    pub virtual_mac: bool,
    /// RFC 5798 Accept_Mode: whether a non-owner master accepts traffic addressed to the
    /// virtual addresses. Carried to the data plane but not enforced yet: a master accepts such
    /// traffic either way, as keepalived does without `vrrp_strict`.
    #[serde(default)]
    pub accept_mode: bool,
    /// Gratuitous ARP / unsolicited NA timing (keepalived garp_master_*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp: Option<GarpSpec>,
    /// VRRPv2 simple password authentication (RFC 2338 / keepalived `auth_type PASS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthenticationSpec>,
    /// Health checks each node runs for this VirtualIP (keepalived `vrrp_script`,
    /// `track_file`): a failing check of weight 0 puts the node in FAULT (a master hands over
    /// at once), other weights move its priority. In cluster mode `exec` checks run only on
    /// agents started with `--allow-exec` naming the program.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub health_checks: Vec<HealthCheckSpec>,
    /// Other interfaces whose link state counts (keepalived `track_interface`): down or
    /// missing is a failure. The interface VRRP runs on is always tracked (weight 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub track_interfaces: Vec<TrackInterfaceSpec>,
    /// Commands run on state changes (keepalived `notify_master`, `notify_backup`,
    /// `notify_fault`, `notify_stop`, `notify`). In cluster mode only on agents started with
    /// `--allow-exec` naming the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySpec>,
    /// Cluster mode: a cordoned node (`kubectl cordon`, `kubectl drain`) hands the addresses
    /// over gracefully and takes none until it is uncordoned. Nodes labelled
    /// `node.kubernetes.io/exclude-from-external-load-balancers` always do.
    #[serde(default)]
    pub leave_cordoned_nodes: bool,
    /// More addresses held with `addresses` but not listed in advertisements (keepalived
    /// `virtual_ipaddress_excluded`): for more addresses than an advertisement carries. Same
    /// form as `addresses`; not checked by the API server (the controller reports a bad one).
    // Shared: the controller copies a router's spec into every node's entry.
    #[serde(default, skip_serializing_if = "excluded_is_empty")]
    #[schemars(length(max = 4096), inner(length(max = 69)))]
    pub excluded_addresses: std::sync::Arc<Vec<String>>,
    /// Cluster mode: when set, only the listed nodes may hold the addresses. The others keep
    /// running VRRP in FAULT (a weight-0 tracker named `node`): a master that is left out hands
    /// over gracefully, and a node that is listed again takes part without a restart. Set by
    /// the controller for `externalTrafficPolicy: Local` Services (the nodes with a ready
    /// endpoint); an empty list holds the addresses nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_nodes: Option<ActiveNodes>,
    /// Services on these addresses that the master spreads over checked real servers
    /// (keepalived `virtual_server`), with nftables rules in a table of the agent's own. Every
    /// node programs them; only the master receives the addresses' traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["address", "port", "protocol"]))]
    pub virtual_servers: Vec<super::VirtualServerSpec>,
}

fn excluded_is_empty(v: &std::sync::Arc<Vec<String>>) -> bool {
    v.is_empty()
}

/// The nodes that may hold a VirtualIP's addresses, and why only those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveNodes {
    /// Node names.
    #[serde(default)]
    #[schemars(length(max = 5000))]
    pub nodes: Vec<String>,
    /// What the others lack, e.g. "no ready endpoint of default/web": shown in their status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub reason: Option<String>,
}

/// One health check: exactly one of `http`, `tcp`, `exec`, `file`, and keepalived's timing.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.http) || has(self.tcp) || has(self.exec) || has(self.file)")
        .message("a health check needs one of http, tcp, exec or file: none is set"),
    validation = Rule::new("(has(self.http) ? 1 : 0) + (has(self.tcp) ? 1 : 0) + (has(self.exec) ? 1 : 0) + (has(self.file) ? 1 : 0) <= 1")
        .message(Message::Expression("'a health check has exactly one of http, tcp, exec or file: this one sets ' + (has(self.http) ? 'http ' : '') + (has(self.tcp) ? 'tcp ' : '') + (has(self.exec) ? 'exec ' : '') + (has(self.file) ? 'file' : '')".into()))
)]
pub struct HealthCheckSpec {
    /// Unique within the VirtualIP; shown in the status and the `Failing` column. Not one of
    /// the agent's own entries: `node`, `notify`, `interface`, `address-conflict`,
    /// `interface:NAME`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$")
    )]
    pub name: String,
    /// How often the check runs, e.g. "1s" (default), "500ms". 100ms to 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub interval: Option<DurationText>,
    /// How long one run may take before it counts as failed. Default: the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub timeout: Option<DurationText>,
    /// Consecutive failures before the check is failing (keepalived `fall`), 1 to 100.
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub fall: Option<u32>,
    /// Consecutive successes before a failing check passes again (`rise`), 1 to 100.
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub rise: Option<u32>,
    /// -253 to 253. 0 (default): failing puts the node in FAULT. Positive: added to the
    /// priority while passing. Negative: added (subtracted) while failing. For `file` checks
    /// in `Value` mode the number in the file is multiplied by it.
    #[serde(default)]
    #[schemars(range(min = -253, max = 253))]
    pub weight: i16,
    /// The state before the first result: Passing (default) or Failing (keepalived
    /// `init_fail`: a node takes no address until its check has passed `rise` times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_state: Option<InitialState>,
    /// HTTP(S) GET: passes on an expected status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheckSpec>,
    /// TCP connect: passes when the connection is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheckSpec>,
    /// A program (no shell): passes on exit status 0. Killed with its process group at the
    /// timeout (SIGTERM, then SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheckSpec>,
    /// A file: its presence is a failure (`Exists`, the maintenance file), or its number
    /// times the weight is added to the priority (`Value`, keepalived `track_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileCheckSpec>,
}

/// A check's state before its first result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum InitialState {
    Passing,
    Failing,
}

/// HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Scheme {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

/// `GET scheme://host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheckSpec {
    /// HTTP (default) or HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// Address to connect to (an IP address). Default 127.0.0.1 (the node itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub host: Option<String>,
    /// TCP port, 1 to 65535.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Request path, default "/".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
    /// The Host header and the TLS server name. Default: `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub host_header: Option<String>,
    /// Status codes that pass: codes ("200") or ranges ("200-299"). Default 200-399.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 7)))]
    pub expected_status: Vec<String>,
    /// HTTPS: a PEM CA bundle file on the node to verify the server with (in cluster mode,
    /// under the agent's `--check-files` directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub ca_file: Option<String>,
    /// HTTPS: a PEM CA bundle in a Secret key (cluster mode; the controller hands the
    /// certificate, which is public, to the nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// HTTPS: the PEM CA bundle itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_bundle: Option<String>,
    /// HTTPS: accept any certificate (the connection and the status code still count).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// TCP connect to `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpCheckSpec {
    /// Address to connect to (an IP address). Default 127.0.0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub host: Option<String>,
    /// TCP port, 1 to 65535.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

/// A program and its arguments, run without a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecCheckSpec {
    /// argv: an absolute path, then the arguments, e.g. ["/usr/bin/pgrep", "-x", "nginx"].
    #[schemars(length(min = 1, max = 32), inner(length(max = 4096)))]
    pub command: Vec<String>,
}

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum FileMode {
    /// The file's presence is a failure (a maintenance file).
    #[default]
    Exists,
    /// The integer in the file, times the weight, is added to the priority (keepalived
    /// `track_file`); with weight 0 a non-zero value is a fault.
    Value,
}

/// A file on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileCheckSpec {
    /// Absolute path (in cluster mode, inside the agent's `--check-files` directory).
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Exists (default) or Value.
    #[serde(default)]
    pub mode: FileMode,
}

/// An interface whose link state counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackInterfaceSpec {
    /// Interface name on every node running this VirtualIP.
    #[schemars(length(min = 1, max = 15))]
    pub name: String,
    /// 0 (default): down means FAULT. Otherwise as a health check's weight.
    #[serde(default)]
    #[schemars(range(min = -253, max = 253))]
    pub weight: i16,
}

/// Commands run on state changes, off the VRRP loop, one at a time per VirtualIP, each with
/// the timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NotifySpec {
    /// On becoming master (keepalived `notify_master`): argv, run as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 4096)))]
    pub master: Vec<String>,
    /// On becoming backup (`notify_backup`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 4096)))]
    pub backup: Vec<String>,
    /// On entering FAULT (`notify_fault`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 4096)))]
    pub fault: Vec<String>,
    /// When the instance stops (`notify_stop`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 4096)))]
    pub stop: Vec<String>,
    /// On every change (`notify`), after the state's own command, with keepalived's four
    /// arguments appended: `INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 4096)))]
    pub any: Vec<String>,
    /// How long one command may run, default "10s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub timeout: Option<DurationText>,
}

pub(super) fn default_version() -> u8 {
    3
}
pub(super) fn default_true() -> bool {
    true
}
fn default_priority() -> u8 {
    100
}

/// A node's priority for this virtual router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePriority {
    /// Node name.
    pub node: String,
    /// 1 to 255; 255 makes the node the address owner.
    #[schemars(range(min = 1, max = 255))]
    pub priority: u8,
}

/// Gratuitous ARP / unsolicited NA timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GarpSpec {
    /// Second burst this long after becoming master (keepalived garp_master_delay, default
    /// "5s"; "0s" disables).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::duration_text"
    )]
    pub master_delay: Option<String>,
    /// Announcements per burst, 1 to 100 (garp_master_repeat, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub master_repeat: Option<u32>,
    /// Re-announce this often while master (garp_master_refresh; default off).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::duration_text"
    )]
    pub master_refresh: Option<String>,
}

/// VRRPv2 password authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationSpec {
    /// The password itself, 1 to 8 characters (standalone mode; in a cluster prefer
    /// `passwordSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8))]
    pub password: Option<String>,
    /// A key of a Secret holding the password (cluster mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

/// A key in a Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Secret namespace.
    pub namespace: String,
    /// Key within the Secret.
    pub key: String,
}

/// Object metadata as far as the standalone file needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectMeta {
    pub name: String,
}

/// A `VirtualIP` document as written in a standalone YAML file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIpDocument {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: VirtualIpSpec,
}
