//! `kube-vrrp manifest static-pod --config FILE`: the agent as a static pod for a highly
//! available kube-apiserver address (kubeadm `--control-plane-endpoint`). Standalone mode: no
//! API access (the API is what it makes reachable), the configuration from a hostPath, the host
//! network, NET_ADMIN and NET_RAW only.

use std::path::Path;

use crate::model::spec::ValidatedVirtualIp;
use crate::model::tracking::{CheckKind, Tls};

/// Everything the chart installs, rendered with its defaults (deploy/kube-vrrp.yaml, generated
/// from the chart and checked in CI), for `kubectl apply` without Helm.
const DEPLOY: &str = include_str!("../deploy/kube-vrrp.yaml");

/// `kube-vrrp manifest daemonset --image IMAGE`.
pub fn daemonset(image: &str) -> String {
    DEPLOY.replace("REGISTRY/kube-vrrp:0.1.0", &pinned(image))
}

/// An image reference with a tag: one given without a tag or digest gets this release's
/// version (a runtime would otherwise pull `:latest`, whatever that is on the day).
pub fn pinned(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:{}", env!("CARGO_PKG_VERSION"))
    }
}

/// The check a control-plane VirtualIP should carry, as YAML to paste under `spec:`.
pub const READYZ_CHECK: &str = "  healthChecks:
    # The local API server's /readyz. Weight -50, not 0: a node whose API server is not ready
    # yields to one whose is, but a lone node (the first, during kubeadm init) still takes the
    # address, or kubeadm could never reach its own endpoint.
    - name: kube-apiserver
      interval: 2s
      timeout: 1s
      fall: 3
      rise: 1
      weight: -50
      http: {scheme: HTTPS, port: 6443, path: /readyz, insecureSkipVerify: true}
";

/// Whether a VirtualIP checks the local API server's /readyz with a weight that lets a lone
/// node hold the address.
pub fn readyz_problem(v: &ValidatedVirtualIp) -> Option<String> {
    let check = v.tracking.checks.iter().find(|c| match &c.kind {
        CheckKind::Http(h) => {
            h.addr.port() == 6443 && h.path.starts_with("/readyz") && h.tls.is_some()
        }
        _ => false,
    });
    match check {
        None => Some(format!(
            "{}: no HTTPS check of the local API server's /readyz: add\n{READYZ_CHECK}",
            v.name
        )),
        Some(c) if c.weight == 0 => Some(format!(
            "{}: check {} has weight 0: the first node would never take the address during kubeadm init (its API server is not ready before the endpoint answers); use a negative weight such as -50",
            v.name, c.name
        )),
        Some(c) if matches!(&c.kind, CheckKind::Http(h) if matches!(h.tls, Some(Tls::CaFile(_)))) => {
            Some(format!(
                "{}: check {} reads a CA file: before kubeadm writes /etc/kubernetes/pki it does not exist and the check cannot run; insecureSkipVerify is enough for the local /readyz",
                v.name, c.name
            ))
        }
        _ => None,
    }
}

/// The static pod's manifest for the configuration at `config` (an absolute path on the node).
pub fn static_pod(config: &Path, image: &str) -> String {
    let config = config.display();
    let image = pinned(image);
    format!(
        r#"# kube-vrrp as a static pod: a highly available address for the Kubernetes API
# (kubeadm --control-plane-endpoint). Put this file in /etc/kubernetes/manifests on every
# control-plane node, and the configuration at {config} on each of them (this very path:
# the hostPath below; the same VirtualIP on each node, its priorities list the nodes).
# Standalone mode: it needs no API access; it runs before the API exists.
apiVersion: v1
kind: Pod
metadata:
  name: kube-vrrp
  namespace: kube-system
  labels:
    app.kubernetes.io/name: kube-vrrp
    app.kubernetes.io/component: control-plane-vip
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  terminationGracePeriodSeconds: 30
  containers:
    - name: agent
      image: {image}
      args:
        - agent
        - --standalone
        - --config=/etc/kube-vrrp/config.yaml
        - --listen=127.0.0.1:9650
        # /metrics, /healthz and /readyz on the node's address, as the chart's agents.
        - --metrics-listen=$(HOST_IP):9652
      env:
        - name: NODE_NAME
          valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
        - name: HOST_IP
          valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}
      ports:
        - {{name: metrics, containerPort: 9652, hostPort: 9652, protocol: TCP}}
      # Probes go to the loopback listener (kubelet shares the host network): alive while the
      # event loop and the VRRP engine answer within 2 s. No readiness probe: a static pod
      # serves no Service, and during bootstrap no node is "ready" before the address is.
      livenessProbe:
        httpGet: {{host: 127.0.0.1, path: /healthz, port: 9650}}
        initialDelaySeconds: 10
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 6
      securityContext:
        # uid 0 for NET_ADMIN and NET_RAW to be effective; nothing else of root.
        runAsUser: 0
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
          add: [NET_ADMIN, NET_RAW]
      volumeMounts:
        - {{name: config, mountPath: /etc/kube-vrrp/config.yaml, readOnly: true}}
      resources:
        requests: {{cpu: 10m, memory: 16Mi}}
        limits: {{memory: 64Mi}}
  volumes:
    - name: config
      hostPath: {{path: {config}, type: File}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_without_a_tag_gets_this_release_s_version() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(pinned("kube-vrrp"), format!("kube-vrrp:{v}"));
        assert_eq!(
            pinned("registry.example:5000/ops/kube-vrrp"),
            format!("registry.example:5000/ops/kube-vrrp:{v}")
        );
        for kept in [
            "registry.example:5000/ops/kube-vrrp:1.2",
            "kube-vrrp@sha256:0123",
        ] {
            assert_eq!(pinned(kept), kept);
        }
        let pod = static_pod(
            Path::new("/etc/kube-vrrp/c.yaml"),
            "registry.example/kube-vrrp",
        );
        assert!(pod.contains(&format!("image: registry.example/kube-vrrp:{v}\n")));
        // Watched and measured as the chart's agents are.
        assert!(
            pod.contains(
                "livenessProbe:\n        httpGet: {host: 127.0.0.1, path: /healthz, port: 9650}"
            ),
            "{pod}"
        );
        assert!(pod.contains("--metrics-listen=$(HOST_IP):9652"), "{pod}");
        assert!(
            daemonset("registry.example/kube-vrrp")
                .contains(&format!("image: registry.example/kube-vrrp:{v}"))
        );
    }

    #[test]
    fn the_sample_control_plane_vip_passes_and_weight_zero_is_refused() {
        let v =
            crate::agent::source::parse(include_str!("../config/control-plane-vip.yaml")).unwrap();
        assert_eq!(readyz_problem(&v[0]), None);
        let zero =
            include_str!("../config/control-plane-vip.yaml").replace("weight: -50", "weight: 0");
        let v = crate::agent::source::parse(&zero).unwrap();
        assert!(readyz_problem(&v[0]).unwrap().contains("weight 0"));
        let pod = static_pod(
            Path::new("/etc/kube-vrrp/control-plane.yaml"),
            "registry.example/kube-vrrp:0.1.0",
        );
        let p: serde_json::Value = yaml_serde::from_str(&pod).unwrap();
        assert_eq!(p["spec"]["hostNetwork"], true);
        assert_eq!(
            p["spec"]["volumes"][0]["hostPath"]["path"],
            "/etc/kube-vrrp/control-plane.yaml"
        );
        assert_eq!(
            p["spec"]["containers"][0]["securityContext"]["capabilities"]["add"],
            serde_json::json!(["NET_ADMIN", "NET_RAW"])
        );
        assert!(p["spec"]["serviceAccountName"].is_null());
        assert!(pod.contains("configuration at /etc/kube-vrrp/control-plane.yaml on each"));
        assert!(!pod.contains("beside"));
    }
}
