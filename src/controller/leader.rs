//! Leader election on a `coordination.k8s.io/v1` Lease (kube-rs 5 has no helper): two
//! controller replicas, one active. The holder renews every `renew` period; another replica
//! takes over once it has seen the lease's record unchanged for `leaseDurationSeconds` on its
//! own clock (client-go's rule: another replica's clock, in `renewTime`, is never compared with
//! ours, so a replica whose clock runs ahead cannot take a lease that is being renewed), with an
//! optimistic-concurrency replace, so exactly one of several contenders wins. The holder steps
//! down on its own when it has not renewed within the lease duration (it cannot tell whether
//! another has taken over).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::{info, warn};

pub(crate) struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// When the lease was last written by us.
    renewed: Option<Instant>,
    /// When we last saw the lease's record change.
    observed: Observed,
}

/// What identifies one writing of a lease: its holder, its times as written and its
/// transitions. Any renewal changes it.
type Record = (String, Option<String>, Option<String>, i32);

/// When the lease's record last changed, on our own clock.
#[derive(Debug, Default)]
struct Observed {
    last: Option<(Record, Instant)>,
}

impl Observed {
    /// Whether the lease is free to take at `now`: no holder, or its record unchanged for
    /// longer than `duration` since we first saw it.
    fn expired(&mut self, record: Record, duration: Duration, now: Instant) -> bool {
        if record.0.is_empty() {
            return true;
        }
        match &self.last {
            Some((r, at)) if *r == record => now.duration_since(*at) > duration,
            _ => {
                self.last = Some((record, now));
                false
            }
        }
    }
}

impl Elector {
    pub(crate) fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration,
            renewed: None,
            observed: Observed::default(),
        }
    }

    /// Whether we may act now: the last renewal is younger than the lease duration.
    pub(crate) fn is_leader(&self) -> bool {
        self.renewed.is_some_and(|t| t.elapsed() < self.duration)
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Acquires or renews the lease; returns whether we lead.
    pub(crate) async fn tick(&mut self) -> bool {
        let started = Instant::now();
        match self.try_tick().await {
            Ok(true) => {
                if self.renewed.is_none_or(|t| t.elapsed() >= self.duration) {
                    info!(lease = %self.name, identity = %self.identity, "leading");
                }
                self.renewed = Some(started);
            }
            Ok(false) => {
                if self.renewed.take().is_some() {
                    warn!(lease = %self.name, "lost the lease to another replica");
                }
            }
            Err(e) => {
                warn!(lease = %self.name, error = %crate::logging::kube_error(&e), "lease not renewed")
            }
        }
        self.is_leader()
    }

    async fn try_tick(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let pp = PostParams::default();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&pp, &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        let secs = u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15);
        let record: Record = (
            holder.clone(),
            spec.renew_time.as_ref().map(|t| t.0.to_string()),
            spec.acquire_time.as_ref().map(|t| t.0.to_string()),
            spec.lease_transitions.unwrap_or(0),
        );
        let expired = self
            .observed
            .expired(record, Duration::from_secs(secs), Instant::now());
        if !ours && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours {
            spec.acquire_time.clone()
        } else {
            None
        };
        lease.spec = Some(self.spec(now, acquired, transitions));
        // Carries the resourceVersion read above: a concurrent writer makes this a 409.
        match self.api.replace(&self.name, &pp, &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (on shutdown), so the other replica takes over at once.
    pub(crate) async fn release(&mut self) {
        if self.renewed.take().is_none() {
            return;
        }
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        if let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            if let Err(e) = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                warn!(error = %crate::logging::kube_error(&e), "lease not released");
            } else {
                info!(lease = %self.name, "lease released");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renew: &str) -> Record {
        (
            holder.into(),
            Some(renew.into()),
            Some("2026-01-01T00:00:00Z".into()),
            1,
        )
    }

    #[test]
    fn expiry_is_measured_on_our_clock_from_when_we_saw_the_record_change() {
        let d = Duration::from_secs(15);
        let t0 = Instant::now();
        let mut o = Observed::default();
        // The holder's clock is hours behind ours (or ahead): its renewTime says nothing to us.
        assert!(!o.expired(record("a", "2020-01-01T00:00:00Z"), d, t0));
        assert!(!o.expired(
            record("a", "2020-01-01T00:00:00Z"),
            d,
            t0 + Duration::from_secs(10)
        ));
        // Renewed (the record changed): the wait starts again.
        assert!(!o.expired(
            record("a", "2020-01-01T00:00:12Z"),
            d,
            t0 + Duration::from_secs(12)
        ));
        assert!(!o.expired(
            record("a", "2020-01-01T00:00:12Z"),
            d,
            t0 + Duration::from_secs(26)
        ));
        // Unchanged for longer than the duration on our clock: free.
        assert!(o.expired(
            record("a", "2020-01-01T00:00:12Z"),
            d,
            t0 + Duration::from_secs(28)
        ));
        // A renewal stamped far in the future by a clock ahead: still only our clock counts.
        let mut o = Observed::default();
        assert!(!o.expired(record("b", "2030-01-01T00:00:00Z"), d, t0));
        assert!(o.expired(
            record("b", "2030-01-01T00:00:00Z"),
            d,
            t0 + Duration::from_secs(16)
        ));
        // No holder: free at once.
        assert!(Observed::default().expired(record("", "2020-01-01T00:00:00Z"), d, t0));
    }
}
