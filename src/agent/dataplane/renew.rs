//! Address lifetimes: every address we bind lives [`ADDRESS_LIFETIME`] unless renewed, and
//! this task renews, every [`RENEW_EVERY`] (less often, with longer lifetimes, beyond
//! [`RENEWALS_PER_SECOND`] addresses), what a live instance holds and the kernel shows as
//! ours. A dead agent renews nothing, so its addresses go by themselves; an address no
//! running instance holds is never renewed. Off the VRRP path: the engine never waits on it.

use std::sync::Arc;

use futures::StreamExt;
use tracing::warn;

use super::Ctx;
use super::kernel::Kernel;
use crate::model::host::renewal;
use crate::net::netlink::{Address, RENEW_EVERY};
use crate::vrrp::VirtualAddress;

/// Renewals in flight at once.
const PARALLEL: usize = 64;

/// Renews until aborted.
pub(crate) async fn run<K: Kernel>(ctx: Arc<Ctx<K>>) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut last: Option<tokio::time::Instant> = None;
    let mut current = crate::net::netlink::ADDRESS_LIFETIME;
    loop {
        tick.tick().await;
        let wanted = ctx.ledger.lock().expect("ledger").renewable();
        if wanted.is_empty() {
            continue;
        }
        // Many addresses: renewed less often, each with a longer lifetime (set before the
        // renewal, so the addresses bound meanwhile get it too).
        // A changed lifetime is given to every address at once: one bound with a shorter
        // one must not expire before the next, rarer renewal.
        let (every, lifetime) = renewal(wanted.len());
        let changed = lifetime != current;
        if changed {
            crate::net::netlink::set_address_lifetime(lifetime);
            current = lifetime;
        }
        let now = tokio::time::Instant::now();
        // A tick's jitter must not skip a renewal: due at 90% of the period.
        if !changed && last.is_some_and(|l| now - l < every.mul_f32(0.9)) {
            continue;
        }
        last = Some(now);
        let present = match ctx.kernel.addresses(None).await {
            Ok(p) => p,
            Err(e) => {
                ctx.count_netlink_errors(1);
                if !failing {
                    warn!(error = %e, "cannot list addresses to renew their lifetimes");
                }
                failing = true;
                continue;
            }
        };
        let failed = renew_all(&ctx.kernel, ours_present(wanted, &present)).await;
        ctx.count_netlink_errors(failed);
        if failed > 0 && !failing {
            warn!(failed, "cannot renew the lifetime of virtual addresses");
        }
        failing = failed > 0;
    }
}

/// Those of `wanted` the kernel shows with our mark: never renew someone else's address (the
/// kernel's replace would rewrite it as ours), nor one that is gone (it would add it back
/// behind the data plane's back: the watch puts back what was removed).
pub(crate) fn ours_present(
    wanted: Vec<(u32, VirtualAddress)>,
    present: &[Address],
) -> Vec<(u32, VirtualAddress)> {
    let ours: std::collections::HashSet<(u32, std::net::IpAddr)> = present
        .iter()
        .filter(|a| a.is_ours())
        .map(|a| (a.index, a.address))
        .collect();
    wanted
        .into_iter()
        .filter(|(link, a)| ours.contains(&(*link, a.address)))
        .collect()
}

/// Renews addresses concurrently; returns how many failed.
pub(crate) async fn renew_all<K: Kernel>(
    kernel: &K,
    addresses: Vec<(u32, VirtualAddress)>,
) -> usize {
    futures::stream::iter(addresses)
        .map(|(link, a)| async move { kernel.renew_address(link, a).await.is_err() })
        .buffer_unordered(PARALLEL)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::netlink::ADDRESS_PROTO;

    fn addr(index: u32, s: &str, proto: Option<u8>) -> Address {
        Address {
            index,
            address: s.parse().unwrap(),
            prefix_len: 24,
            proto,
        }
    }

    fn va(s: &str) -> VirtualAddress {
        VirtualAddress {
            address: s.parse().unwrap(),
            prefix_len: 24,
        }
    }

    #[test]
    fn only_what_is_there_and_ours_is_renewed() {
        let present = [
            addr(2, "198.51.100.50", Some(ADDRESS_PROTO)),
            // Someone replaced ours with theirs: never rewritten.
            addr(2, "198.51.100.51", None),
            // Ours, on another interface than the ledger says.
            addr(3, "198.51.100.52", Some(ADDRESS_PROTO)),
        ];
        let wanted = vec![
            (2, va("198.51.100.50")),
            (2, va("198.51.100.51")),
            (2, va("198.51.100.52")),
            (2, va("198.51.100.53")), // gone
        ];
        assert_eq!(
            ours_present(wanted, &present),
            vec![(2, va("198.51.100.50"))]
        );
    }
}
