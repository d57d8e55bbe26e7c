//! `kube-vrrp check`: validate VirtualIP files (keepalived `-t`) and exit 0 or 1. The checking
//! itself is [`crate::check`].

use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) fn run(
    files: &[PathBuf],
    cluster: bool,
    allow_exec: Vec<PathBuf>,
    check_files: PathBuf,
) -> ExitCode {
    let agents = crate::check::chart_policy(allow_exec, Some(check_files));
    let o = crate::check::run_with(files, cluster, &agents);
    print!("{}", o.text);
    if o.errors == 0 {
        println!("{} VirtualIP(s) valid", o.objects);
        if o.pools > 0 {
            println!("{} VirtualIPPool(s) valid", o.pools);
        }
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s)", o.errors);
        ExitCode::from(1)
    }
}
