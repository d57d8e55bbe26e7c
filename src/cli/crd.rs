//! `kube-vrrp crd`: the CustomResourceDefinitions (YAML), or with `--reference` the field
//! reference (Markdown), both generated from the Rust types in `src/api`.

use std::process::ExitCode;

pub(crate) fn run(reference: bool) -> ExitCode {
    if reference {
        print!("{}", kube_vrrp::api::reference());
    } else {
        print!("{}", kube_vrrp::api::crd_yaml());
    }
    ExitCode::SUCCESS
}
