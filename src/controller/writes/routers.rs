//! The pools' routers: VirtualIPs owned by their VirtualIPPool, applied and deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use tracing::info;

use super::{PARALLEL_WRITES, owner_reference};
use crate::api::{LABEL_POOL, VirtualIP};
use crate::controller::{Context, MANAGER, lb};
use crate::k8s::is_not_found;

impl Context {
    /// The pools' routers as VirtualIPs (server-side apply: a field the plan drops is
    /// removed), and the ones no longer needed deleted (their finalizer holds them until every
    /// node has let go). Returns every VirtualIP as it is after the writes.
    pub(in crate::controller) async fn write_routers(
        &self,
        lb: &lb::LbPlan,
        stored: &[Arc<VirtualIP>],
    ) -> kube::Result<Vec<Arc<VirtualIP>>> {
        let api: Api<VirtualIP> = Api::all(self.client.clone());
        let pool_uid: HashMap<String, String> = self
            .pools
            .state()
            .iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect();
        let mut out: BTreeMap<String, Arc<VirtualIP>> =
            stored.iter().map(|v| (v.name_any(), v.clone())).collect();
        let todo: Vec<(&String, &lb::Router)> = lb
            .routers
            .iter()
            .filter(|(name, r)| {
                out.get(*name)
                    .is_none_or(|v| v.spec != r.spec || v.labels().get(LABEL_POOL) != Some(&r.pool))
            })
            .collect();
        let pp = PatchParams::apply(MANAGER).force();
        let written = futures::stream::iter(todo)
            .map(|(name, r)| {
                let api = api.clone();
                let pp = pp.clone();
                let uid = pool_uid.get(&r.pool).cloned().unwrap_or_default();
                async move {
                    let owner = owner_reference(
                        crate::api::API_VERSION,
                        "VirtualIPPool",
                        &r.pool,
                        &uid,
                        true,
                    );
                    let patch = serde_json::json!({
                        "apiVersion": crate::api::API_VERSION,
                        "kind": crate::api::KIND,
                        "metadata": {
                            "name": name,
                            "labels": {LABEL_POOL: r.pool},
                            "ownerReferences": [owner],
                        },
                        "spec": r.spec,
                    });
                    (name, api.patch(name, &pp, &Patch::Apply(&patch)).await)
                }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        for (name, r) in written {
            let v = r?;
            info!(virtual_ip = %name, addresses = v.spec.addresses.len() + v.spec.excluded_addresses.len(), "pool router written");
            self.count_write();
            out.insert(name.clone(), Arc::new(v));
        }
        for v in stored {
            let Some(pool) = v.labels().get(LABEL_POOL) else {
                continue;
            };
            let name = v.name_any();
            if lb.frozen.contains(pool)
                || lb.routers.contains_key(&name)
                || v.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            match api.delete(&name, &Default::default()).await {
                Ok(either) => {
                    info!(virtual_ip = %name, "pool router no longer needed: deleted");
                    self.count_write();
                    match either.left() {
                        Some(obj) => out.insert(name, Arc::new(obj)),
                        None => out.remove(&name),
                    };
                }
                Err(e) if is_not_found(&e) => {
                    out.remove(&name);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out.into_values().collect())
    }
}
