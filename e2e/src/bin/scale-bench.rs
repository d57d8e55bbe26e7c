//! The controller's pure pass at scale, without an API server: Services in one
//! `VirtualIPPool` (IPv6, the longer text), nodes with registered agents. For each size it
//! builds the world as the controller would see it in a steady state (every Service already
//! has its address, every router its VRID) and measures
//!
//! * `full_pass_ms`: the Service side (allocation, grouping, statuses) + the VirtualIP side
//!   (resolution, each node's entries) + cutting each node's entries into objects + the diff
//!   against what is written (what a resync costs), median of `--runs`;
//! * `one_change_ms`: the same pass after one Service is added (the controller has no
//!   incremental path: a change costs a pass);
//! * `largest_object_bytes`: the largest object the controller would write (a node
//!   configuration object, a router VirtualIP, the pool's status), as JSON;
//! * `routers`: the virtual routers (VRIDs) the pool uses.
//!
//! Prints one JSON line per size. Usage: scale-bench [--sizes 1000x50,10000x500] [--runs 5]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, NodeStatus, Service, ServicePort,
    ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube_vrrp::api::{
    LABEL_POOL, NodeConfigStatus, VirtualIP, VirtualIPNodeConfig, VirtualIPNodeConfigSpec,
    VirtualIPPool, VirtualIPPoolSpec, VirtualIPStatus,
};
use kube_vrrp::controller::planners;
use kube_vrrp_e2e::stats::median;

fn node(i: usize) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(format!("node-{i:04}")),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/os".into(),
                "linux".into(),
            )])),
            ..Default::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: format!("2001:db8:f::{:x}", i + 1),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn service(i: usize, now: Timestamp, ip: Option<String>) -> Arc<Service> {
    Arc::new(Service {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i:05}")),
            namespace: Some(format!("ns-{}", i % 50)),
            creation_timestamp: Some(Time(now)),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            load_balancer_class: Some("kube-vrrp.io/vrrp".into()),
            ip_families: Some(vec!["IPv6".into()]),
            ports: Some(vec![ServicePort {
                port: 443,
                ..Default::default()
            }]),
            selector: Some(BTreeMap::from([("app".into(), format!("app-{i}"))])),
            ..Default::default()
        }),
        status: ip.map(|ip| ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip),
                    ip_mode: Some("VIP".into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }),
    })
}

struct World {
    pools: Vec<Arc<VirtualIPPool>>,
    services: Vec<Arc<Service>>,
    vips: Vec<Arc<VirtualIP>>,
    nodes: Vec<Arc<Node>>,
    configs: Vec<Arc<VirtualIPNodeConfig>>,
}

struct Pass {
    largest: usize,
    routers: usize,
    configs: Vec<Arc<VirtualIPNodeConfig>>,
    vips: Vec<Arc<VirtualIP>>,
    services: BTreeMap<(String, String), planners::ServiceOutcome>,
    objects: usize,
}

/// One controller pass; `measure`: also serialize every object written (not timed).
fn pass(w: &World, now: Timestamp) -> Pass {
    let t0 = Instant::now();
    let lbp = planners::plan_services(&planners::LbWorld {
        pools: &w.pools,
        services: &w.services,
        slices: &[],
        vips: &w.vips,
        nodes: &w.nodes,
        classless: true,
        now,
    });
    if std::env::var_os("SCALE_BENCH_TRACE").is_some() {
        eprintln!("lb::plan {:?}", t0.elapsed());
    }
    // The routers as the shell would write them (VRIDs from their status).
    let mut vips: BTreeMap<String, Arc<VirtualIP>> =
        w.vips.iter().map(|v| (v.name_any(), v.clone())).collect();
    for (name, r) in &lbp.routers {
        let unchanged = vips.get(name).is_some_and(|v| v.spec == r.spec);
        if !unchanged {
            let mut v = VirtualIP::new(name, r.spec.clone());
            v.metadata.labels = Some(BTreeMap::from([(LABEL_POOL.into(), r.pool.clone())]));
            v.metadata.creation_timestamp = Some(Time(now));
            v.metadata.finalizers = Some(vec![planners::FINALIZER.into()]);
            v.status = vips.get(name).and_then(|o| o.status.clone());
            vips.insert(name.clone(), Arc::new(v));
        }
    }
    let vips: Vec<Arc<VirtualIP>> = vips.into_values().collect();
    let secrets = BTreeMap::new();
    let mut p = planners::plan(&planners::World {
        vips: &vips,
        nodes: &w.nodes,
        configs: &w.configs,
        secrets: &secrets,
        announced: &Default::default(),
        now,
    });
    if std::env::var_os("SCALE_BENCH_TRACE").is_some() {
        eprintln!("plan::plan done at {:?}", t0.elapsed());
    }
    let current: std::collections::HashMap<String, &Arc<VirtualIPNodeConfig>> =
        w.configs.iter().map(|c| (c.name_any(), c)).collect();
    let mut configs = Vec::new();
    let mut objects = 0;
    for (node, entries) in std::mem::take(&mut p.configs) {
        for (i, part) in planners::shard(entries).into_iter().enumerate() {
            let name = planners::shard_name(&node, i);
            objects += 1;
            if current
                .get(&name)
                .is_some_and(|c| c.spec.virtual_ips == part)
            {
                configs.push(current[&name].clone());
                continue;
            }
            let mut c = VirtualIPNodeConfig::new(
                &name,
                VirtualIPNodeConfigSpec {
                    node: Some(node.clone()),
                    virtual_ips: part,
                },
            );
            c.status = current.get(&node).and_then(|c| c.status.clone());
            configs.push(Arc::new(c));
        }
    }
    // Statuses the plan gives the routers (VRIDs), kept for the next pass.
    let vips = vips
        .into_iter()
        .map(|v| match p.statuses.get(&v.name_any()) {
            Some(s) if v.status.as_ref().map(planners::controller_part).as_ref() != Some(s) => {
                let mut n = (*v).clone();
                n.status = Some(VirtualIPStatus {
                    master: Some(w.nodes[0].name_any()),
                    ..s.clone()
                });
                Arc::new(n)
            }
            _ => v,
        })
        .collect::<Vec<_>>();
    Pass {
        largest: 0,
        routers: lbp.routers.len(),
        configs,
        vips,
        services: lbp.services,
        objects,
    }
}

fn largest(p: &Pass, pools: &[Arc<VirtualIPPool>]) -> usize {
    let size = |v: serde_json::Result<Vec<u8>>| v.map(|b| b.len()).unwrap_or(0);
    let configs = p
        .configs
        .iter()
        .map(|c| size(serde_json::to_vec(c.as_ref())))
        .max()
        .unwrap_or(0);
    let vips = p
        .vips
        .iter()
        .map(|v| size(serde_json::to_vec(v.as_ref())))
        .max()
        .unwrap_or(0);
    let pools = pools
        .iter()
        .map(|v| size(serde_json::to_vec(v.as_ref())))
        .max()
        .unwrap_or(0);
    configs.max(vips).max(pools)
}

/// The controller's plan at scale: how long one pass takes for SERVICES Services over NODES
/// nodes, without I/O. Prints JSON lines.
#[derive(clap::Parser)]
struct Args {
    /// SERVICESxNODES sizes, comma-separated.
    #[arg(long, default_value = "1000x50,1000x500,10000x50,10000x500")]
    sizes: String,
    /// Passes per size.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

fn main() {
    let Args { sizes, runs } = clap::Parser::parse();
    let now = Timestamp::now();
    for size in sizes.split(',') {
        let (s, n) = size.split_once('x').expect("SERVICESxNODES");
        let (services, nodes): (usize, usize) = (s.parse().unwrap(), n.parse().unwrap());
        let pool = Arc::new({
            let mut p = VirtualIPPool::new(
                "bench",
                VirtualIPPoolSpec {
                    addresses: vec!["2001:db8:1::/108".into()],
                    auto_assign: true,
                    service_allocation: None,
                    spread: None,
                    vrrp: Default::default(),
                },
            );
            p.metadata.creation_timestamp = Some(Time(now));
            p
        });
        let node_objs: Vec<Arc<Node>> = (0..nodes).map(node).collect();
        let registered = |n: &Arc<Node>| {
            let mut c = VirtualIPNodeConfig::new(&n.name_any(), Default::default());
            c.status = Some(NodeConfigStatus {
                agent: Some("bench".into()),
                heartbeat_time: Some(now.to_string()),
                heartbeat_seconds: Some(10),
                ..Default::default()
            });
            Arc::new(c)
        };
        let mut w = World {
            pools: vec![pool.clone()],
            services: (0..services).map(|i| service(i, now, None)).collect(),
            vips: Vec::new(),
            nodes: node_objs.clone(),
            configs: node_objs.iter().map(registered).collect(),
        };
        // Converge: allocate, write back the addresses, the routers and the configurations.
        for _ in 0..3 {
            let p = pass(&w, now);
            w.services = w
                .services
                .iter()
                .map(|s| {
                    let key = (s.namespace().unwrap_or_default(), s.name_any());
                    let ip = p.services.get(&key).and_then(|o| o.ingress.first());
                    let name = s.name_any();
                    let i: usize = name[4..].parse().unwrap();
                    service(i, now, ip.map(|ip| ip.to_string()))
                })
                .collect();
            w.vips = p.vips;
            w.configs = p.configs;
        }
        let mut full = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let t = Instant::now();
            let p = pass(&w, now);
            full.push(t.elapsed().as_secs_f64() * 1000.0);
            last = Some(p);
        }
        let last = last.expect("runs > 0");
        let mut big = largest(&last, &w.pools);
        let objects = last.objects;
        let routers = last.routers;
        let _ = last.largest;
        // One more Service.
        let mut one = Vec::new();
        for _ in 0..runs {
            let mut w2 = World {
                pools: w.pools.clone(),
                services: w.services.clone(),
                vips: w.vips.clone(),
                nodes: w.nodes.clone(),
                configs: w.configs.clone(),
            };
            w2.services.push(service(services, now, None));
            let t = Instant::now();
            let p = pass(&w2, now);
            one.push(t.elapsed().as_secs_f64() * 1000.0);
            big = big.max(largest(&p, &w2.pools));
        }
        println!(
            "{}",
            serde_json::json!({
                "services": services,
                "nodes": nodes,
                "full_pass_ms": (median(full) * 10.0).round() / 10.0,
                "one_change_ms": (median(one) * 10.0).round() / 10.0,
                "largest_object_bytes": big,
                "node_config_objects": objects,
                "routers": routers,
                "runs": runs,
            })
        );
    }
}
