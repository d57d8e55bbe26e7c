//! Reading Services: which are ours, what each asks for (families, addresses, pool, sharing),
//! and what its status says now.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::sharing::Holder;
use super::types::ServiceKey;
use crate::api::{ANNOTATION_IPS, ANNOTATION_POOL, CONDITION_ANNOUNCED, LOAD_BALANCER_CLASS};
use crate::vrrp::Family;

/// Whether `svc` is a LoadBalancer Service kube-vrrp serves.
pub(crate) fn is_ours(svc: &Service, classless: bool) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && svc.metadata.deletion_timestamp.is_none()
        && match spec.load_balancer_class.as_deref() {
            Some(c) => c == LOAD_BALANCER_CLASS,
            None => classless,
        }
}

/// The addresses in the Service's `status.loadBalancer.ingress`.
pub(crate) fn current_ingress(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// Our condition in the Service's status, if it has one.
pub(crate) fn current_condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION_ANNOUNCED)
}

/// What a Service asks for.
pub(crate) struct Wants {
    pub families: Vec<Family>,
    /// Families that must be served (the rest: PreferDualStack, if a pool has them).
    pub required: usize,
    pub requested: BTreeMap<Family, IpAddr>,
    pub pool: Option<String>,
    pub holder: Holder,
}

pub(crate) fn wants(svc: &Service) -> Result<Wants, String> {
    let empty = Default::default();
    let spec: &ServiceSpec = svc.spec.as_ref().unwrap_or(&empty);
    let ann = svc.annotations();
    let mut requested = BTreeMap::new();
    let text = ann
        .get(ANNOTATION_IPS)
        .cloned()
        .or(spec.load_balancer_ip.clone())
        .unwrap_or_default();
    for t in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let ip: IpAddr = t.parse().map_err(|_| {
            format!("{ANNOTATION_IPS} (or spec.loadBalancerIP): {t:?} is not an IP address")
        })?;
        if requested.insert(Family::of(&ip), ip).is_some() {
            return Err(format!(
                "{ANNOTATION_IPS}: one address per family, {t} is the second {}",
                Family::of(&ip)
            ));
        }
    }
    let mut families: Vec<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| Family::ALL.into_iter().find(|family| family.label() == f))
        .collect();
    if families.is_empty() {
        families = requested.keys().copied().collect();
    }
    if families.is_empty() {
        families.push(Family::V4);
    }
    if let Some(f) = requested.keys().find(|f| !families.contains(f)) {
        return Err(format!(
            "an {f} address is asked for, but spec.ipFamilies does not include {f}"
        ));
    }
    let required = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => 1,
        _ => families.len(),
    };
    Ok(Wants {
        families,
        required,
        requested,
        pool: ann.get(ANNOTATION_POOL).cloned(),
        holder: Holder::of(svc, spec),
    })
}

/// Every Service, sorted into ours (oldest first) and what to do about the others.
pub(crate) struct Requests<'a> {
    /// Ours, oldest first, with what each asks for.
    pub parsed: Vec<(&'a Arc<Service>, Wants)>,
    /// Ours, but what they ask for cannot be read: why.
    pub invalid: BTreeMap<ServiceKey, String>,
    /// Not ours (any more) but still carrying our condition: to be removed.
    pub released: Vec<ServiceKey>,
}

pub(crate) fn read(services: &[Arc<Service>], classless: bool) -> Requests<'_> {
    let mut sorted: Vec<&Arc<Service>> = services.iter().collect();
    sorted.sort_by(|a, b| {
        fn key(s: &Service) -> (Option<Timestamp>, Option<&str>, Option<&str>) {
            (
                s.metadata.creation_timestamp.as_ref().map(|t| t.0),
                s.metadata.namespace.as_deref(),
                s.metadata.name.as_deref(),
            )
        }
        key(a).cmp(&key(b))
    });
    let mut out = Requests {
        parsed: Vec::new(),
        invalid: BTreeMap::new(),
        released: Vec::new(),
    };
    for svc in sorted {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        if !is_ours(svc, classless) {
            if current_condition(svc).is_some() {
                out.released.push(key);
            }
            continue;
        }
        match wants(svc) {
            Ok(w) => out.parsed.push((svc, w)),
            Err(e) => {
                out.invalid.insert(key, e);
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    /// A LoadBalancer Service `default/{name}` on port 80, created `age` seconds after the
    /// epoch, with these annotations.
    pub(crate) fn lb_service(name: &str, age: i64, annotations: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                creation_timestamp: Some(Time(Timestamp::from_second(age).unwrap())),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// The Service with these addresses in its status.
    pub(crate) fn with_ingress(mut svc: Service, ips: &[&str]) -> Service {
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        svc
    }

    #[test]
    fn ours_are_load_balancers_of_our_class_or_classless_when_served() {
        let mut s = lb_service("a", 1, &[]);
        assert!(is_ours(&s, true));
        assert!(!is_ours(&s, false));
        s.spec.as_mut().unwrap().load_balancer_class = Some(LOAD_BALANCER_CLASS.into());
        assert!(is_ours(&s, false));
        s.spec.as_mut().unwrap().load_balancer_class = Some("other.io/lb".into());
        assert!(!is_ours(&s, true));
        let mut s = lb_service("a", 1, &[]);
        s.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert!(!is_ours(&s, true));
        let mut s = lb_service("a", 1, &[]);
        s.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(2).unwrap()));
        assert!(!is_ours(&s, true));
    }

    #[test]
    fn wants_reads_families_requests_and_policy() {
        let w = wants(&lb_service("a", 1, &[])).unwrap();
        assert_eq!(
            (w.families.as_slice(), w.required),
            ([Family::V4].as_slice(), 1)
        );
        assert!(w.requested.is_empty() && w.pool.is_none());
        // Requested addresses decide the families when spec.ipFamilies does not.
        let w = wants(&lb_service(
            "a",
            1,
            &[
                (ANNOTATION_IPS, "2001:db8::1, 198.51.100.1"),
                (ANNOTATION_POOL, "p"),
            ],
        ))
        .unwrap();
        assert_eq!(w.families, [Family::V4, Family::V6]);
        assert_eq!(w.required, 2);
        assert_eq!(w.pool.as_deref(), Some("p"));
        let mut s = lb_service("a", 1, &[]);
        let spec = s.spec.as_mut().unwrap();
        spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
        spec.ip_family_policy = Some("PreferDualStack".into());
        spec.load_balancer_ip = Some("2001:db8::7".into());
        let w = wants(&s).unwrap();
        assert_eq!(w.families, [Family::V6, Family::V4]);
        assert_eq!(w.required, 1);
        assert_eq!(
            w.requested[&Family::V6],
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn wants_refuses_bad_or_conflicting_requests() {
        let e = |ann: &str| {
            wants(&lb_service("a", 1, &[(ANNOTATION_IPS, ann)]))
                .err()
                .unwrap()
        };
        assert!(e("198.51.100.x").contains("is not an IP address"));
        assert!(e("198.51.100.1,198.51.100.2").contains("one address per family"));
        let mut s = lb_service("a", 1, &[(ANNOTATION_IPS, "2001:db8::1")]);
        s.spec.as_mut().unwrap().ip_families = Some(vec!["IPv4".into()]);
        assert_eq!(
            wants(&s).err().unwrap(),
            "an IPv6 address is asked for, but spec.ipFamilies does not include IPv6"
        );
    }

    #[test]
    fn read_sorts_ours_oldest_first_and_releases_what_is_not_ours() {
        let mut gone = lb_service("gone", 1, &[]);
        gone.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        gone.status = Some(ServiceStatus {
            conditions: Some(vec![Condition {
                type_: CONDITION_ANNOUNCED.into(),
                status: "True".into(),
                reason: "Announced".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(Timestamp::from_second(1).unwrap()),
            }]),
            ..Default::default()
        });
        let mut never = lb_service("never", 1, &[]);
        never.spec.as_mut().unwrap().type_ = Some("NodePort".into());
        let all = [
            Arc::new(lb_service("young", 30, &[])),
            Arc::new(lb_service("bad", 20, &[(ANNOTATION_IPS, "x")])),
            Arc::new(lb_service("old", 10, &[])),
            Arc::new(gone),
            Arc::new(never),
        ];
        let r = read(&all, true);
        let names: Vec<&str> = r
            .parsed
            .iter()
            .map(|(_, w)| w.holder.service.1.as_str())
            .collect();
        assert_eq!(names, ["old", "young"]);
        assert!(r.invalid[&("default".to_string(), "bad".to_string())].contains("x"));
        assert_eq!(r.released, [("default".to_string(), "gone".to_string())]);
        let ips = current_ingress(&with_ingress(
            lb_service("a", 1, &[]),
            &["198.51.100.1", "nope"],
        ));
        assert_eq!(ips, ["198.51.100.1".parse::<IpAddr>().unwrap()]);
    }
}
