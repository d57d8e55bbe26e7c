//! `kube-vrrp`: the command line lives in the library (`kube_vrrp::cli`), so that what the
//! library exports is only what other crates use.

fn main() -> std::process::ExitCode {
    kube_vrrp::cli::main()
}
