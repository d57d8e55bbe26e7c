//! The standalone agent's configuration source: a file of `VirtualIP` YAML documents,
//! validated as a whole (a bad file never half-configures the agent) with the shared model's
//! rules, read at start and on SIGHUP.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::api::{API_VERSION, KIND, VirtualIpDocument};
use crate::model::spec::{VirtualIp, VridRule, validate};

/// What is wrong, where: document number (1-based), object name when known, field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub document: usize,
    pub name: Option<String>,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(n) = &self.name {
            write!(f, " ({n:?})")?;
        }
        if !self.field.is_empty() {
            write!(f, ", field {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// One document of a file, validated on its own.
#[derive(Debug)]
pub struct Document {
    /// 1-based.
    pub index: usize,
    pub name: Option<String>,
    /// `kind`, when the document has one.
    pub kind: Option<String>,
    pub result: Result<VirtualIp, ConfigError>,
}

/// Every document of a text, each validated alone (`rule`: standalone files need a VRID,
/// cluster objects may leave it to the controller). Empty documents are skipped.
pub fn documents(text: &str, rule: VridRule) -> Vec<Document> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = match serde_yaml::Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                out.push(Document {
                    index: document,
                    name: None,
                    kind: None,
                    result: Err(ConfigError {
                        document,
                        name: None,
                        field: String::new(),
                        reason: format!("not YAML: {e}"),
                    }),
                });
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        };
        if value.is_null() {
            continue; // an empty document (e.g. a trailing ---)
        }
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(String::from);
        let kind = value.get("kind").and_then(|k| k.as_str()).map(String::from);
        let result = document_of(value, document, name.clone(), rule);
        out.push(Document {
            index: document,
            name,
            kind,
            result,
        });
    }
    out
}

fn document_of(
    value: serde_yaml::Value,
    document: usize,
    name: Option<String>,
    rule: VridRule,
) -> Result<VirtualIp, ConfigError> {
    let err = |field: &str, reason: String| ConfigError {
        document,
        name: name.clone(),
        field: field.to_string(),
        reason,
    };
    // The CRD schema lets the API server reject unknown fields; a file has no server, so
    // collect them here: a misspelt field must not silently fall back to a default.
    let mut unknown = Vec::new();
    let doc: VirtualIpDocument = serde_path_to_error::deserialize(
        serde_ignored::Deserializer::new(value.clone(), &mut |path: serde_ignored::Path<'_>| {
            unknown.push(path.to_string())
        }),
    )
    .map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let reason = super::super::check::explain(&path, &e.into_inner().to_string());
        err(&path, reason)
    })?;
    if let Some(path) = unknown.first() {
        let field = path.rsplit('.').next().unwrap_or(path);
        let hint = match super::super::check::suggest(path) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "check the spelling".to_string(),
        };
        return Err(err(path, format!("unknown field `{field}`: {hint}")));
    }
    if doc.api_version != API_VERSION {
        return Err(err(
            "apiVersion",
            format!("must be {API_VERSION}, not {:?}", doc.api_version),
        ));
    }
    if doc.kind != KIND {
        return Err(err("kind", format!("must be {KIND}, not {:?}", doc.kind)));
    }
    if doc.metadata.name.is_empty() {
        return Err(err("metadata.name", "must not be empty".into()));
    }
    validate(doc.metadata.name.clone(), doc.spec, rule).map_err(|(f, r)| err(f, r))
}

/// What a VirtualIP may not share with the ones before it in a file: its name, or its VRID
/// on the same interface and family.
pub fn cross_check(before: &[VirtualIp], v: &VirtualIp) -> Result<(), (&'static str, String)> {
    if before.iter().any(|o| o.name == v.name) {
        return Err(("metadata.name", format!("{:?} is defined twice", v.name)));
    }
    if let Some(other) = before.iter().find(|o| {
        o.vrid.is_some()
            && o.vrid == v.vrid
            && o.spec.interface == v.spec.interface
            && shares_family(o, v)
    }) {
        return Err((
            "spec.virtualRouterID",
            format!(
                "{} is already used by {:?} on the same interface",
                v.vrid.unwrap_or_default(),
                other.name
            ),
        ));
    }
    Ok(())
}

/// Parses and validates every document of a file. Any error rejects the whole file.
pub fn parse(text: &str) -> Result<Vec<VirtualIp>, ConfigError> {
    let mut out: Vec<VirtualIp> = Vec::new();
    for d in documents(text, VridRule::Required) {
        let v = d.result?;
        cross_check(&out, &v).map_err(|(field, reason)| ConfigError {
            document: d.index,
            name: d.name.clone(),
            field: field.into(),
            reason,
        })?;
        out.push(v);
    }
    if out.is_empty() {
        return Err(ConfigError {
            document: 0,
            name: None,
            field: String::new(),
            reason: "no VirtualIP documents: the agent would run nothing".into(),
        });
    }
    Ok(out)
}

fn shares_family(a: &VirtualIp, b: &VirtualIp) -> bool {
    a.addresses
        .iter()
        .any(|x| b.addresses.iter().any(|y| x.family() == y.family()))
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Vec<VirtualIp>, super::AgentError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| super::AgentError::Read {
        path: p.clone(),
        source,
    })?;
    parse(&text).map_err(|source| super::AgentError::Config { path: p, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::resolve_all;
    use crate::net::netlink::{Address, Link};
    use crate::vrrp::Authentication;
    use std::net::IpAddr;

    const GOOD: &str = r#"
apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec:
  addresses: ["198.51.100.50/24", "2001:db8:1::50/64"]
  virtualRouterID: 51
  advertInterval: 100ms
  priorities: [{node: n1, priority: 200}]
---
apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: legacy}
spec:
  addresses: ["198.51.100.60/24"]
  virtualRouterID: 52
  version: 2
  authentication: {password: s3cret}
"#;

    fn links() -> Vec<Link> {
        vec![
            Link {
                index: 1,
                name: "lo".into(),
                mac: None,
                mtu: 65536,
                up: true,
                parent: None,
            },
            Link {
                index: 2,
                name: "eth0".into(),
                mac: Some([2, 0, 0, 0, 0, 1]),
                mtu: 1500,
                up: true,
                parent: None,
            },
        ]
    }

    fn addrs() -> Vec<Address> {
        let a = |index, s: &str, prefix_len, proto| Address {
            index,
            address: s.parse().unwrap(),
            prefix_len,
            proto,
        };
        vec![
            a(1, "127.0.0.1", 8, None),
            a(
                2,
                "198.51.100.50",
                24,
                Some(crate::net::netlink::ADDRESS_PROTO),
            ), // a stale VIP of ours
            a(2, "198.51.100.11", 24, None),
            a(2, "2001:db8:1::11", 64, None),
            a(2, "fe80::1", 64, None),
        ]
    }

    #[test]
    fn parses_and_resolves_for_a_node() {
        let vips = parse(GOOD).unwrap();
        assert_eq!(vips.len(), 2);
        let plan = resolve_all(&vips, "n1", &links(), &addrs());
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        let all = plan.instances;
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            vec!["legacy/ipv4", "web/ipv4", "web/ipv6"]
        );
        let w4 = &all["web/ipv4"];
        assert_eq!((w4.interface.as_str(), w4.config.priority), ("eth0", 200));
        assert_eq!(
            w4.config.primary_address,
            "198.51.100.11".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            all["web/ipv6"].config.primary_address,
            "fe80::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(all["legacy/ipv4"].config.priority, 100);
        assert_eq!(
            all["legacy/ipv4"].config.authentication,
            Authentication::password("s3cret")
        );
    }

    fn error_of(yaml: &str) -> String {
        parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_document_field_and_reason() {
        let bad = GOOD.replace("advertInterval: 100ms", "advertInterval: 100");
        assert_eq!(
            error_of(&bad),
            "document 1 (\"web\"), field spec.advertInterval: \"100\": missing unit (use h, m, s, ms, us or ns)"
        );
        let bad = GOOD.replace("version: 2", "version: 2\n  advertInterval: 500ms");
        assert!(
            error_of(&bad)
                .starts_with("document 2 (\"legacy\"), field spec.advertInterval: VRRPv2"),
            "{}",
            error_of(&bad)
        );
        let bad = GOOD.replace("priority: 200", "priority: 300");
        assert!(
            error_of(&bad).contains("field spec.priorities[0].priority"),
            "{}",
            error_of(&bad)
        );
        let bad = GOOD.replace("virtualRouterID: 52", "virtualRouterID: 51");
        assert!(
            error_of(&bad).contains("51 is already used by \"web\""),
            "{}",
            error_of(&bad)
        );
        let bad = GOOD.replace("198.51.100.60/24", "198.51.100.600/24");
        assert!(
            error_of(&bad)
                .contains("field spec.addresses: \"198.51.100.600/24\" is not an IP address")
        );
        let bad = GOOD.replace("virtualRouterID: 51", "virtualRouterId: 51");
        assert!(
            error_of(&bad).contains("unknown field `virtualRouterId`"),
            "{}",
            error_of(&bad)
        );
        let bad = GOOD.replace(
            "kind: VirtualIP\nmetadata: {name: legacy}",
            "kind: VirtualIp\nmetadata: {name: legacy}",
        );
        assert!(error_of(&bad).contains("document 2 (\"legacy\"), field kind"));
        let bad = GOOD.replace("version: 2", "version: 3");
        assert!(error_of(&bad).contains("authentication exists only in VRRPv2"));
        let bad = GOOD.replace(
            "password: s3cret",
            "passwordSecretRef: {name: vrrp, namespace: kube-system, key: password}",
        );
        assert!(error_of(&bad).contains(
            "field spec.authentication.passwordSecretRef: Secrets exist only in a cluster"
        ));
        let bad = GOOD.replace("password: s3cret", "password: waytoolongpassword");
        assert!(error_of(&bad).contains("1 to 8 characters"));
    }

    #[test]
    fn resolution_errors_say_what_to_set() {
        let vips = parse(&GOOD.replace("198.51.100.60/24", "203.0.113.60/24")).unwrap();
        let e = resolve_all(&vips, "n1", &links(), &addrs()).errors[0]
            .2
            .clone();
        assert!(
            e.contains(
                "no interface on node n1 has an address in 203.0.113.60/24: set spec.interface"
            ),
            "{e}"
        );
        let vips = parse(&GOOD.replace(
            "virtualRouterID: 52",
            "virtualRouterID: 52\n  interface: eth9",
        ))
        .unwrap();
        let e = resolve_all(&vips, "n1", &links(), &addrs()).errors[0]
            .2
            .clone();
        assert!(e.contains("interface \"eth9\" does not exist"), "{e}");
    }

    #[test]
    fn one_family_failing_leaves_the_other_running() {
        let vips = parse(GOOD).unwrap();
        let v4_only: Vec<Address> = addrs()
            .into_iter()
            .filter(|a| a.address.is_ipv4())
            .collect();
        let plan = resolve_all(&vips, "n1", &links(), &v4_only);
        assert_eq!(
            plan.instances.keys().collect::<Vec<_>>(),
            vec!["legacy/ipv4", "web/ipv4"]
        );
        assert_eq!(plan.errors.len(), 1);
        assert_eq!(plan.errors[0].0, "web");
        assert!(
            plan.errors[0]
                .2
                .contains("no interface on node n1 has an address in 2001:db8:1::50/64"),
            "{:?}",
            plan.errors
        );
    }

    #[test]
    fn a_host_address_is_never_taken_as_a_virtual_address() {
        let vips = parse(&GOOD.replace("198.51.100.60/24", "198.51.100.11/24")).unwrap();
        let plan = resolve_all(&vips, "n1", &links(), &addrs());
        assert!(plan.instances.contains_key("web/ipv4"));
        assert!(
            plan.errors[0]
                .2
                .contains("198.51.100.11 is already an address of node n1 (eth0)"),
            "{:?}",
            plan.errors
        );
    }

    #[test]
    fn vrids_are_unique_per_resolved_interface() {
        // One names eth0, the other leaves it to be found: both end up on eth0.
        let yaml = GOOD
            .replace(
                "virtualRouterID: 52",
                "virtualRouterID: 51\n  interface: eth0",
            )
            .replace("version: 2\n  authentication: {password: s3cret}\n", "");
        let vips = parse(&yaml).unwrap();
        let plan = resolve_all(&vips, "n1", &links(), &addrs());
        assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
        assert!(
            plan.errors[0]
                .2
                .contains("legacy: virtual router 51 on eth0 is already used by \"web\""),
            "{:?}",
            plan.errors
        );
    }

    #[test]
    fn harmful_values_are_refused() {
        for (from, to, expect) in [
            (
                "advertInterval: 100ms",
                "advertInterval: 100ms\n  garp: {masterRefresh: 1ns}",
                "spec.garp.masterRefresh",
            ),
            (
                "advertInterval: 100ms",
                "advertInterval: 100ms\n  garp: {masterDelay: 2h}",
                "spec.garp.masterDelay",
            ),
            (
                "advertInterval: 100ms",
                "advertInterval: 100ms\n  preemptDelay: 1000h",
                "spec.preemptDelay",
            ),
            (
                "advertInterval: 100ms",
                "advertInterval: 100ms\n  maxLearnedInterval: 50ms",
                "spec.maxLearnedInterval",
            ),
            (
                "advertInterval: 100ms",
                "advertInterval: 100ms\n  interface: lo",
                "loopback interface",
            ),
            (
                "advertInterval: 100ms",
                "advertInterval: 100ms\n  unicastPeers: [224.0.0.18]",
                "multicast address: it cannot be a unicast peer",
            ),
            (
                "advertInterval: 100ms",
                "advertInterval: 100ms\n  unicastPeers: [255.255.255.255]",
                "broadcast",
            ),
            ("198.51.100.60/24", "127.0.0.1/8", "loopback"),
            (
                "198.51.100.60/24",
                "198.51.100.255/24",
                "broadcast address of its subnet",
            ),
            ("198.51.100.60/24", "169.254.0.60/16", "link-local"),
            ("2001:db8:1::50/64", "::1/128", "loopback"),
            ("virtualRouterID: 52", "virtualRouterID: 0", "0 is reserved"),
        ] {
            let e = error_of(&GOOD.replace(from, to));
            assert!(e.contains(expect), "{to}: {e}");
        }
        assert!(error_of("").contains("no VirtualIP documents"));
        assert!(error_of("---\n---\n").contains("no VirtualIP documents"));
    }

    #[test]
    fn the_samples_are_valid_standalone_files() {
        for text in [
            include_str!("../../config/web-vip.yaml"),
            include_str!("../../config/web-vip-checks.yaml"),
        ] {
            let vips = parse(text).unwrap();
            assert_eq!(vips.len(), 1);
        }
        let checks = parse(include_str!("../../config/web-vip-checks.yaml")).unwrap();
        assert_eq!(checks[0].health.checks.len(), 2);
    }
}
