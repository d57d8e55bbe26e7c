//! Publish: each node's part of the plan in its `VirtualIPNodeConfig` objects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tracing::info;

use super::{PARALLEL_WRITES, owner_reference};
use crate::api::{LABEL_NODE, VirtualIPNodeConfig, VirtualIPNodeConfigSpec};
use crate::controller::Context;
use crate::controller::plan;
use crate::k8s::is_not_found;

/// Whether a configuration object already holds a node's part as planned.
pub(super) fn config_up_to_date(
    current: &VirtualIPNodeConfig,
    node: &str,
    part: &[crate::api::NodeVirtualIP],
) -> bool {
    current.spec.virtual_ips == part
        && current.labels().get(LABEL_NODE) == Some(&crate::api::node_label_value(node))
        && current.spec.node.as_deref() == Some(node)
}

impl Context {
    /// Publish: each node's entries in objects of bounded size (the first named after the
    /// node), each replaced whole when it differs, and the objects no longer wanted deleted.
    /// A merge patch replaces the list as a whole and needs no resourceVersion: the agents'
    /// status writes to the same objects never make it conflict.
    pub(in crate::controller) async fn publish(
        &self,
        planned: BTreeMap<String, Vec<crate::api::NodeVirtualIP>>,
        configs: &[Arc<VirtualIPNodeConfig>],
        nodes: &[Arc<Node>],
    ) -> kube::Result<()> {
        let config_api: Api<VirtualIPNodeConfig> = Api::all(self.client.clone());
        let current: HashMap<String, &Arc<VirtualIPNodeConfig>> =
            configs.iter().map(|c| (c.name_any(), c)).collect();
        let node_uid: HashMap<String, String> = nodes
            .iter()
            .map(|n| (n.name_any(), n.uid().unwrap_or_default()))
            .collect();
        let mut wanted: HashSet<String> = HashSet::new();
        let mut changed = Vec::new();
        for (node, entries) in planned {
            for (i, part) in plan::shard(entries).into_iter().enumerate() {
                let name = plan::shard_name(&node, i);
                wanted.insert(name.clone());
                let existing = current.get(&name);
                if !existing.is_some_and(|c| config_up_to_date(c, &node, &part)) {
                    changed.push((node.clone(), name, part, existing.is_some()));
                }
            }
        }
        let writes = futures::stream::iter(changed)
            .map(|(node, name, entries, exists)| {
                let config_api = config_api.clone();
                let owner = node_uid
                    .get(&node)
                    .map(|uid| vec![owner_reference("v1", "Node", &node, uid, false)]);
                async move {
                    let labels = BTreeMap::from([(
                        LABEL_NODE.to_string(),
                        crate::api::node_label_value(&node),
                    )]);
                    let result = if exists {
                        let patch = serde_json::json!({
                            "metadata": {"labels": labels},
                            "spec": {"node": node, "virtualIPs": entries},
                        });
                        config_api
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                    } else {
                        let mut obj = VirtualIPNodeConfig::new(
                            &name,
                            VirtualIPNodeConfigSpec {
                                node: Some(node.clone()),
                                virtual_ips: entries.clone(),
                            },
                        );
                        obj.metadata.labels = Some(labels);
                        obj.metadata.owner_references = owner;
                        config_api.create(&PostParams::default(), &obj).await
                    };
                    (name, entries.len(), result)
                }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        for (name, count, result) in writes {
            result?;
            info!(object = %name, virtual_ips = count, "configuration published");
            self.count_write();
        }
        for c in configs {
            if !wanted.contains(&c.name_any()) {
                match config_api.delete(&c.name_any(), &Default::default()).await {
                    Ok(_) => {
                        info!(object = %c.name_any(), "configuration deleted (node gone, or fewer shards)")
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_rewritten_when_entries_label_or_node_differ() {
        let mut c = VirtualIPNodeConfig::new(
            "n1",
            VirtualIPNodeConfigSpec {
                node: Some("n1".into()),
                virtual_ips: Vec::new(),
            },
        );
        assert!(!config_up_to_date(&c, "n1", &[]), "no label yet");
        c.metadata.labels = Some(BTreeMap::from([(
            LABEL_NODE.to_string(),
            crate::api::node_label_value("n1"),
        )]));
        assert!(config_up_to_date(&c, "n1", &[]));
        assert!(!config_up_to_date(&c, "n2", &[]));
        c.spec.node = None;
        assert!(!config_up_to_date(&c, "n1", &[]));
    }
}
