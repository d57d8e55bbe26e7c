//! Address sharing between Services, MetalLB's rules: Services share an address only with the
//! same `kube-vrrp.io/allow-shared-ip` key, no port in common, and `externalTrafficPolicy:
//! Local` only with the same selector. Who holds each address, and which addresses each
//! sharing key already has in each pool.

use std::collections::HashMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use kube::ResourceExt;

use super::pools::Pools;
use super::types::ServiceKey;
use crate::api::ANNOTATION_SHARED;
use crate::vrrp::Family;

/// What about a Service decides whom it may share an address with.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub service: ServiceKey,
    pub key: Option<String>,
    /// (protocol, port), sorted.
    pub ports: Vec<(String, i32)>,
    /// `externalTrafficPolicy: Local`: namespace and selector.
    pub local: Option<String>,
}

impl Holder {
    pub(super) fn of(svc: &Service, spec: &ServiceSpec) -> Holder {
        let local = (spec.external_traffic_policy.as_deref() == Some("Local")).then(|| {
            let sel: Vec<String> = spec
                .selector
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let ns = svc.namespace().unwrap_or_default();
            if sel.is_empty() {
                // No selector: endpoints are the Service's own business.
                format!("{ns}/service={}", svc.name_any())
            } else {
                format!("{ns}/{}", sel.join(","))
            }
        });
        let mut ports: Vec<(String, i32)> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
            .collect();
        ports.sort();
        Holder {
            service: (svc.namespace().unwrap_or_default(), svc.name_any()),
            key: svc.annotations().get(ANNOTATION_SHARED).cloned(),
            ports,
            local,
        }
    }
}

/// Whether `new` may join `holders` on one address, or why not.
pub(crate) fn compatible(new: &Holder, holders: &[Holder]) -> Result<(), String> {
    let Some(first) = holders.first() else {
        return Ok(());
    };
    let who = format!("{}/{}", first.service.0, first.service.1);
    if new.key.is_none() || holders.iter().any(|h| h.key != new.key) {
        return Err(format!(
            "it is used by Service {who} (Services share an address only with the same {ANNOTATION_SHARED} key)"
        ));
    }
    for h in holders {
        if let Some((p, n)) = new.ports.iter().find(|p| h.ports.contains(p)) {
            return Err(format!(
                "port {p}/{n} is also a port of Service {}/{}, which uses it",
                h.service.0, h.service.1
            ));
        }
        if h.local != new.local {
            return Err(format!(
                "Service {}/{} uses it, and externalTrafficPolicy Local shares only with the same policy and selector",
                h.service.0, h.service.1
            ));
        }
    }
    Ok(())
}

/// Every given address and the Services holding it, first taker first.
#[derive(Debug, Default)]
pub(crate) struct Holders(HashMap<IpAddr, Vec<Holder>>);

impl Holders {
    /// Who holds `ip` (empty: it is free).
    pub(super) fn of(&self, ip: &IpAddr) -> &[Holder] {
        self.0.get(ip).map(Vec::as_slice).unwrap_or_default()
    }

    pub(super) fn is_held(&self, ip: &IpAddr) -> bool {
        self.0.contains_key(ip)
    }

    /// Whether `new` may take `ip` too, or why not.
    pub(super) fn admits(&self, ip: &IpAddr, new: &Holder) -> Result<(), String> {
        compatible(new, self.of(ip))
    }

    pub(super) fn add(&mut self, ip: IpAddr, holder: &Holder) {
        self.0.entry(ip).or_default().push(holder.clone());
    }

    /// Takes `ips` back from `service`; an address nobody holds any more is free.
    pub(super) fn release<'i>(
        &mut self,
        service: &ServiceKey,
        ips: impl IntoIterator<Item = &'i IpAddr>,
    ) {
        for ip in ips {
            if let Some(hs) = self.0.get_mut(ip) {
                hs.retain(|h| &h.service != service);
                if hs.is_empty() {
                    self.0.remove(ip);
                }
            }
        }
    }

    /// Every held address with its holders (in no particular order).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&IpAddr, &Vec<Holder>)> {
        self.0.iter()
    }
}

/// (pool index, sharing key) → the addresses of that pool whose first holder has the key.
#[derive(Debug, Default)]
pub(crate) struct SharedAddresses(HashMap<(usize, String), Vec<IpAddr>>);

impl SharedAddresses {
    /// The shared addresses among those already held.
    pub(super) fn of(holders: &Holders, pools: &Pools) -> SharedAddresses {
        let mut out = SharedAddresses::default();
        for (ip, hs) in holders.iter() {
            if let (Some(i), Some(k)) = (pools.pool_of(*ip), hs.first().and_then(|h| h.key.clone()))
            {
                out.0.entry((i, k)).or_default().push(*ip);
            }
        }
        out
    }

    /// Records that a Service with sharing key `key` took `ip` of pool `pool`.
    pub(super) fn note(&mut self, pool: usize, key: String, ip: IpAddr) {
        let list = self.0.entry((pool, key)).or_default();
        if !list.contains(&ip) {
            list.push(ip);
        }
    }

    /// An address of family `f` in one of `pools` (in their order) that `new`, with its key,
    /// may share.
    pub(super) fn find(
        &self,
        pools: &[usize],
        f: Family,
        new: &Holder,
        holders: &Holders,
    ) -> Option<IpAddr> {
        let k = new.key.as_ref()?;
        pools.iter().find_map(|i| {
            self.0
                .get(&(*i, k.clone()))?
                .iter()
                .copied()
                .find(|ip| Family::of(ip) == f && holders.admits(ip, new).is_ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServicePort;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn holder(name: &str, key: Option<&str>, ports: &[i32], local: Option<&str>) -> Holder {
        Holder {
            service: ("default".into(), name.into()),
            key: key.map(Into::into),
            ports: ports.iter().map(|p| ("TCP".to_string(), *p)).collect(),
            local: local.map(Into::into),
        }
    }

    #[test]
    fn sharing_needs_the_same_key_no_common_port_and_the_same_local_policy() {
        let a = holder("a", Some("k"), &[80], None);
        assert!(compatible(&a, &[]).is_ok(), "a free address fits anyone");
        let no_key = holder("b", None, &[443], None);
        let e = compatible(&no_key, std::slice::from_ref(&a)).unwrap_err();
        assert!(
            e.contains("used by Service default/a") && e.contains(ANNOTATION_SHARED),
            "{e}"
        );
        let other_key = holder("b", Some("other"), &[443], None);
        assert!(compatible(&other_key, std::slice::from_ref(&a)).is_err());
        let same_port = holder("b", Some("k"), &[80], None);
        assert_eq!(
            compatible(&same_port, std::slice::from_ref(&a)).unwrap_err(),
            "port TCP/80 is also a port of Service default/a, which uses it"
        );
        let local = holder("b", Some("k"), &[443], Some("default/app=x"));
        assert!(
            compatible(&local, std::slice::from_ref(&a))
                .unwrap_err()
                .contains("externalTrafficPolicy Local")
        );
        let fits = holder("b", Some("k"), &[443], None);
        assert!(compatible(&fits, std::slice::from_ref(&a)).is_ok());
        // Every holder counts, not only the first.
        let c = holder("c", Some("k"), &[443], None);
        assert!(
            compatible(&c, &[a, fits])
                .unwrap_err()
                .contains("default/b")
        );
    }

    #[test]
    fn a_holder_reads_key_sorted_ports_and_local_selector_from_the_service() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                annotations: Some([(ANNOTATION_SHARED.to_string(), "k".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let port = |p: i32, proto: Option<&str>| ServicePort {
            port: p,
            protocol: proto.map(Into::into),
            ..Default::default()
        };
        let mut spec = ServiceSpec {
            ports: Some(vec![port(443, None), port(53, Some("UDP")), port(80, None)]),
            external_traffic_policy: Some("Local".into()),
            ..Default::default()
        };
        let h = Holder::of(&svc, &spec);
        assert_eq!(h.service, ("shop".to_string(), "web".to_string()));
        assert_eq!(h.key.as_deref(), Some("k"));
        assert_eq!(
            h.ports,
            [
                ("TCP".to_string(), 80),
                ("TCP".to_string(), 443),
                ("UDP".to_string(), 53)
            ]
        );
        assert_eq!(h.local.as_deref(), Some("shop/service=web"));
        spec.selector = Some([("app".to_string(), "web".to_string())].into());
        assert_eq!(
            Holder::of(&svc, &spec).local.as_deref(),
            Some("shop/app=web")
        );
        spec.external_traffic_policy = Some("Cluster".into());
        assert_eq!(Holder::of(&svc, &spec).local, None);
    }

    #[test]
    fn holders_release_an_address_once_its_last_service_gives_it_back() {
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let (a, b) = (
            holder("a", Some("k"), &[80], None),
            holder("b", Some("k"), &[81], None),
        );
        let mut hs = Holders::default();
        hs.add(ip, &a);
        assert!(hs.admits(&ip, &b).is_ok());
        hs.add(ip, &b);
        hs.release(&a.service, [&ip]);
        assert_eq!(hs.of(&ip).len(), 1);
        assert!(hs.is_held(&ip));
        hs.release(&b.service, [&ip]);
        assert!(!hs.is_held(&ip) && hs.of(&ip).is_empty());
    }

    #[test]
    fn shared_addresses_are_found_by_key_family_and_compatibility() {
        let v4: IpAddr = "198.51.100.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let a = holder("a", Some("k"), &[80], None);
        let mut hs = Holders::default();
        hs.add(v4, &a);
        hs.add(v6, &a);
        let mut shared = SharedAddresses::default();
        shared.note(0, "k".into(), v4);
        shared.note(0, "k".into(), v4);
        shared.note(0, "k".into(), v6);
        assert_eq!(shared.0[&(0, "k".to_string())], [v4, v6], "noted once");
        let b = holder("b", Some("k"), &[81], None);
        assert_eq!(shared.find(&[0], Family::V6, &b, &hs), Some(v6));
        assert_eq!(shared.find(&[1], Family::V4, &b, &hs), None, "another pool");
        let clash = holder("c", Some("k"), &[80], None);
        assert_eq!(shared.find(&[0], Family::V4, &clash, &hs), None);
        let keyless = holder("d", None, &[82], None);
        assert_eq!(shared.find(&[0], Family::V4, &keyless, &hs), None);
    }
}
