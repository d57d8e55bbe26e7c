//! Secrets: the Secret keys the objects name, and the validation that resolves them (the
//! password and the CA bundles) before resolution. No client here: the shell reads the keys
//! [`secret_refs`] lists and hands their values in.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::{AuthenticationSpec, SecretKeyRef, VirtualIP};
use crate::model::spec::ValidatedVirtualIp;

/// A Secret key's value, or why it cannot be used.
pub(crate) type SecretValue = Result<String, String>;

/// The Secret keys the objects refer to.
pub(crate) fn secret_refs(vips: &[std::sync::Arc<VirtualIP>]) -> Vec<SecretKeyRef> {
    let mut refs: Vec<SecretKeyRef> = vips
        .iter()
        .filter_map(|v| v.spec.authentication.as_ref()?.password_secret_ref.clone())
        .chain(vips.iter().flat_map(|v| {
            v.spec
                .health_checks
                .iter()
                .filter_map(|c| c.http.as_ref()?.ca_secret_ref.clone())
        }))
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// What the cluster rejects before resolution: checks the schema cannot express, and the
/// Secrets. The validated object's spec carries the password itself and a CA certificate as
/// PEM: it is what the nodes run, validated once, here.
pub(super) fn validate(
    vip: &VirtualIP,
    secrets: &BTreeMap<SecretKeyRef, SecretValue>,
) -> Result<ValidatedVirtualIp, String> {
    let mut probe = vip.spec.clone();
    for (i, c) in probe.health_checks.iter_mut().enumerate() {
        if let Some(h) = c.http.as_mut()
            && let Some(r) = h.ca_secret_ref.take()
        {
            let field = format!("spec.healthChecks[{i}].http.caSecretRef");
            match secrets.get(&r) {
                Some(Ok(pem)) => h.ca_bundle = Some(pem.clone()),
                Some(Err(e)) => return Err(format!("{field}: {e}")),
                None => {
                    return Err(format!(
                        "{field}: Secret {}/{} not read yet",
                        r.namespace, r.name
                    ));
                }
            }
        }
    }
    if let Some(auth) = &vip.spec.authentication {
        let password = if let Some(r) = &auth.password_secret_ref {
            match secrets.get(r) {
                Some(Ok(p)) if !p.is_empty() && p.len() <= 8 => Some(p.clone()),
                Some(Ok(_)) => {
                    return Err(format!(
                        "spec.authentication.passwordSecretRef: key {:?} of Secret {}/{} must hold 1 to 8 characters",
                        r.key, r.namespace, r.name
                    ));
                }
                Some(Err(e)) => return Err(format!("spec.authentication.passwordSecretRef: {e}")),
                None => {
                    return Err(format!(
                        "spec.authentication.passwordSecretRef: Secret {}/{} not read yet",
                        r.namespace, r.name
                    ));
                }
            }
        } else {
            auth.password.clone()
        };
        probe.authentication = Some(AuthenticationSpec {
            password,
            password_secret_ref: None,
        });
    }
    crate::model::spec::validate(
        vip.name_any(),
        probe,
        crate::model::spec::VridRule::Allocated,
    )
    .map_err(|(field, reason)| format!("{field}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn vip(yaml: &str) -> VirtualIP {
        VirtualIP::new("v", yaml_serde::from_str(yaml).unwrap())
    }

    fn key(name: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            namespace: "ns".into(),
            key: "k".into(),
        }
    }

    const WITH_SECRET: &str = "addresses: [198.51.100.50/24]\nversion: 2\nauthentication: {passwordSecretRef: {name: s, namespace: ns, key: k}}";

    #[test]
    fn each_key_is_listed_once() {
        let v = Arc::new(vip(WITH_SECRET));
        assert_eq!(secret_refs(&[v.clone(), v]), vec![key("s")]);
    }

    #[test]
    fn the_password_comes_from_the_secret_and_must_fit_8_characters() {
        let v = vip(WITH_SECRET);
        let with = |value: SecretValue| BTreeMap::from([(key("s"), value)]);
        let valid = validate(&v, &with(Ok("s3cret".into()))).unwrap();
        let auth = valid.spec.authentication.unwrap();
        assert_eq!(auth.password.as_deref(), Some("s3cret"));
        assert_eq!(
            auth.password_secret_ref, None,
            "the nodes get the value, not the name"
        );
        let e = validate(&v, &with(Ok("nine-char".into()))).unwrap_err();
        assert!(e.contains("must hold 1 to 8 characters"), "{e}");
        let e = validate(&v, &with(Err("Secret ns/s not found".into()))).unwrap_err();
        assert_eq!(
            e,
            "spec.authentication.passwordSecretRef: Secret ns/s not found"
        );
        let e = validate(&v, &BTreeMap::new()).unwrap_err();
        assert!(e.ends_with("Secret ns/s not read yet"), "{e}");
    }

    #[test]
    fn a_schema_rule_is_reported_with_its_field() {
        let v = vip(
            "addresses: [198.51.100.50/24]\nversion: 2\nauthentication: {password: seventeen-chars!!}",
        );
        let e = validate(&v, &BTreeMap::new()).unwrap_err();
        assert!(e.starts_with("spec.authentication"), "{e}");
    }
}
