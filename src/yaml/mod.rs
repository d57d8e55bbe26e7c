//! `VirtualIP` YAML documents → validated [`ValidatedVirtualIp`]s, with errors that name the document,
//! the object and the field (and a hint for a misspelt field or a number out of range). Shared
//! by `kube-vrrp check` and the standalone agent's file source: one reader, one set of
//! messages. No file I/O: callers read the text.

use std::fmt;

use serde::Deserialize;

use crate::api::{API_VERSION, KIND, VirtualIpDocument};
use crate::model::spec::{ValidatedVirtualIp, VridRule, validate_all};

pub(crate) mod bounds;
mod hints;
pub(crate) use hints::{explain, suggest};

/// What is wrong, where: document number (1-based), object name when known, field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) struct ConfigError {
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
pub(crate) struct Document {
    /// 1-based.
    pub index: usize,
    pub name: Option<String>,
    /// `kind`, when the document has one.
    pub kind: Option<String>,
    /// The object, or every problem found in it (never empty).
    pub result: Result<ValidatedVirtualIp, Vec<ConfigError>>,
}

/// Every document of a text, each validated alone (`rule`: standalone files need a VRID,
/// cluster objects may leave it to the controller). Empty documents are skipped.
pub(crate) fn documents(text: &str, rule: VridRule) -> Vec<Document> {
    let mut out = Vec::new();
    // Size and depth first: a parser's time grows with the square of the nesting.
    if let Err(reason) = bounds::check(text) {
        out.push(Document {
            index: 1,
            name: None,
            kind: None,
            result: Err(vec![ConfigError {
                document: 1,
                name: None,
                field: String::new(),
                reason,
            }]),
        });
        return out;
    }
    for (i, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = match yaml_serde::Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                out.push(Document {
                    index: document,
                    name: None,
                    kind: None,
                    result: Err(vec![ConfigError {
                        document,
                        name: None,
                        field: String::new(),
                        reason: format!("not YAML: {e}"),
                    }]),
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
        let result = match kind.as_deref() {
            // Another kind is not read as a VirtualIP: one sentence, not every field wrong.
            Some(k) if k != KIND => Err(vec![ConfigError {
                document,
                name: name.clone(),
                field: "kind".into(),
                reason: other_kind(k),
            }]),
            _ => document_of(value, document, name.clone(), rule),
        };
        out.push(Document {
            index: document,
            name,
            kind,
            result,
        });
    }
    out
}

/// Why a document of another kind is not run here.
pub(crate) fn other_kind(kind: &str) -> String {
    match kind {
        "VirtualIPPool" | "Secret" => format!(
            "{kind} is valid only in a cluster (kube-vrrp check --cluster, then kubectl apply): a standalone agent reads VirtualIP documents only"
        ),
        _ => format!("{kind}: a standalone agent reads VirtualIP documents only"),
    }
}

fn document_of(
    value: yaml_serde::Value,
    document: usize,
    name: Option<String>,
    rule: VridRule,
) -> Result<ValidatedVirtualIp, Vec<ConfigError>> {
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
        let reason = explain(&path, &e.into_inner().to_string());
        vec![err(&path, reason)]
    })?;
    let mut errs: Vec<ConfigError> = unknown
        .iter()
        .map(|path| {
            let field = path.rsplit('.').next().unwrap_or(path);
            let hint = match suggest(path) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "check the spelling".to_string(),
            };
            err(path, format!("unknown field `{field}`: {hint}"))
        })
        .collect();
    if doc.api_version != API_VERSION {
        errs.push(err(
            "apiVersion",
            format!("must be {API_VERSION}, not {:?}", doc.api_version),
        ));
    }
    if doc.kind != KIND {
        errs.push(err("kind", format!("must be {KIND}, not {:?}", doc.kind)));
    }
    if doc.metadata.name.is_empty() {
        errs.push(err("metadata.name", "must not be empty".into()));
    }
    match validate_all(doc.metadata.name.clone(), doc.spec, rule) {
        Ok(v) if errs.is_empty() => Ok(v),
        Ok(_) => Err(errs),
        Err(more) => {
            errs.extend(more.into_iter().map(|(f, r)| err(f, r)));
            Err(errs)
        }
    }
}

/// What the VirtualIPs before one in a file hold: their names, and each interface and
/// VRID's (name, IPv4?, IPv6?). Indexed, so a file of many documents is checked in linear
/// time.
#[derive(Default)]
pub(crate) struct Seen {
    names: std::collections::HashSet<String>,
    vrids: std::collections::HashMap<(String, u8), Vec<Holder>>,
    /// Every address seen, and whose.
    addresses: std::collections::HashMap<std::net::IpAddr, String>,
    /// In a cluster, a VirtualIP without an interface runs on its addresses' segment: VRIDs
    /// are unique per segment there.
    cluster: bool,
}

/// A VirtualIP holding an interface's VRID: its name, and whether it has IPv4 and IPv6.
type Holder = (String, bool, bool);

fn families(v: &ValidatedVirtualIp) -> (bool, bool) {
    let v4 = v
        .addresses
        .iter()
        .any(|a| a.family() == crate::vrrp::Family::V4);
    let v6 = v
        .addresses
        .iter()
        .any(|a| a.family() == crate::vrrp::Family::V6);
    (v4, v6)
}

impl Seen {
    /// For a cluster's VirtualIPs (VRIDs per segment where no interface is named).
    pub(crate) fn cluster() -> Seen {
        Seen {
            cluster: true,
            ..Seen::default()
        }
    }

    /// Where `v`'s VRID must be unique: its interface; in a cluster without one, each
    /// segment (family, network, prefix) its addresses are on.
    fn places(&self, v: &ValidatedVirtualIp) -> Vec<String> {
        match (&v.spec.interface, self.cluster) {
            (None, true) => {
                let mut s: Vec<String> = v
                    .addresses
                    .iter()
                    .map(|a| crate::model::address::segment(a).to_string())
                    .collect();
                s.sort();
                s.dedup();
                s
            }
            (i, _) => vec![format!("{i:?}")],
        }
    }

    /// What `v` may not share with the ones seen: its name, its VRID on the same interface
    /// (a cluster's: segment) and family, and in a cluster an address.
    pub(crate) fn cross_check(&self, v: &ValidatedVirtualIp) -> Result<(), (&'static str, String)> {
        if self.names.contains(&v.name) {
            return Err(("metadata.name", format!("{:?} is defined twice", v.name)));
        }
        if let Some((a, other)) = v
            .addresses
            .iter()
            .filter(|_| self.cluster)
            .find_map(|a| self.addresses.get(&a.address).map(|o| (a.address, o)))
        {
            return Err((
                "spec.addresses",
                format!("{a} is also an address of {other:?}: two masters would answer for it"),
            ));
        }
        let Some(vrid) = v.vrid else { return Ok(()) };
        let (v4, v6) = families(v);
        let where_ = if v.spec.interface.is_none() && self.cluster {
            "on the same subnet"
        } else {
            "on the same interface"
        };
        for place in self.places(v) {
            if let Some((other, _, _)) = self
                .vrids
                .get(&(place, vrid))
                .into_iter()
                .flatten()
                .find(|(_, o4, o6)| (v4 && *o4) || (v6 && *o6))
            {
                return Err((
                    "spec.virtualRouterID",
                    format!("{vrid} is already used by {other:?} {where_}"),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn add(&mut self, v: &ValidatedVirtualIp) {
        self.names.insert(v.name.clone());
        for a in &v.addresses {
            self.addresses
                .entry(a.address)
                .or_insert_with(|| v.name.clone());
        }
        if let Some(vrid) = v.vrid {
            let (v4, v6) = families(v);
            for place in self.places(v) {
                self.vrids
                    .entry((place, vrid))
                    .or_default()
                    .push((v.name.clone(), v4, v6));
            }
        }
    }
}

/// Parses and validates every document of a file. Any error rejects the whole file.
pub(crate) fn parse(text: &str) -> Result<Vec<ValidatedVirtualIp>, ConfigError> {
    let mut out: Vec<ValidatedVirtualIp> = Vec::new();
    let mut seen = Seen::default();
    for d in documents(text, VridRule::Required) {
        let v = d.result.map_err(|mut e| e.swap_remove(0))?;
        seen.cross_check(&v)
            .map_err(|(field, reason)| ConfigError {
                document: d.index,
                name: d.name.clone(),
                field: field.into(),
                reason,
            })?;
        seen.add(&v);
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

#[cfg(test)]
mod tests;
