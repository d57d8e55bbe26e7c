//! `kube-vrrp crd`: the CustomResourceDefinitions (YAML), or with `--reference` the field
//! reference (Markdown), both generated from the Rust types in `src/api`.

use std::process::ExitCode;

pub(crate) fn run(reference: bool) -> ExitCode {
    if reference {
        print!("{}", crate::api::reference());
    } else {
        print!("{}", crate::api::crd_yaml());
    }
    ExitCode::SUCCESS
}
