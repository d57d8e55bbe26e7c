//! `kube-vrrp manifest`: print the manifests to install kube-vrrp without Helm (`daemonset`)
//! or to run the agent as a static pod for a control-plane address (`static-pod`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ManifestKind {
    /// Everything the Helm chart installs with its defaults (CRDs, namespace kube-vrrp-system,
    /// RBAC, the controller Deployment, the agent DaemonSet), for kubectl apply without Helm.
    Daemonset {
        /// The image your nodes pull (see README: Quick start on a cluster); without a tag, this
        /// release's version.
        #[arg(long)]
        image: String,
    },
    /// A static pod running the agent standalone for a highly available kube-apiserver
    /// address (kubeadm --control-plane-endpoint): put it in /etc/kubernetes/manifests.
    StaticPod {
        /// The VirtualIP file, read here and mounted from this same path on every
        /// control-plane node (made absolute); it is validated, and checked for an HTTPS
        /// /readyz check that lets the first node take the address.
        #[arg(long)]
        config: PathBuf,
        /// The image your nodes pull (see README: Quick start on a cluster).
        #[arg(long, default_value = "kube-vrrp:0.1.0")]
        image: String,
    },
}

pub(crate) fn run(kind: ManifestKind) -> ExitCode {
    match kind {
        ManifestKind::Daemonset { image } => {
            print!("{}", crate::manifest::daemonset(&image));
            ExitCode::SUCCESS
        }
        ManifestKind::StaticPod { config, image } => static_pod(config, &image),
    }
}

/// The static pod, after the file it runs has been validated (and looked at for a check that
/// lets the first node take the address).
fn static_pod(config: PathBuf, image: &str) -> ExitCode {
    let config = std::path::absolute(&config).unwrap_or(config);
    match crate::agent::source::load(&config) {
        Ok(vips) => {
            for v in &vips {
                if let Some(p) = crate::manifest::readyz_problem(v) {
                    eprintln!("kube-vrrp: warning: {p}");
                }
            }
            print!("{}", crate::manifest::static_pod(&config, image));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kube-vrrp: {e}");
            ExitCode::from(1)
        }
    }
}
