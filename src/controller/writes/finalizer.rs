//! Our finalizer on VirtualIPs: JSON patches guarded by a `test` of the list the cache holds.

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{ByName, PARALLEL_WRITES};
use crate::api::VirtualIP;
use crate::controller::Context;
use crate::controller::plan::FINALIZER;
use crate::k8s::is_not_found;

/// The JSON patch that adds our finalizer, guarded by a `test` of the list the cache holds
/// (as kube-runtime's finalizer does): if another controller changed the list meanwhile, the
/// API server rejects the patch and the next pass retries with the list as it is.
pub(super) fn add_finalizer_patch(current: Option<&Vec<String>>) -> serde_json::Value {
    let add = match current {
        Some(f) if !f.is_empty() => {
            serde_json::json!({"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER})
        }
        _ => serde_json::json!({"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}),
    };
    serde_json::json!([
        {"op": "test", "path": "/metadata/finalizers", "value": current},
        add,
    ])
}

/// The JSON patch that removes our finalizer where the cache holds it, guarded by a `test`
/// that it is still there: we fail instead of deleting another controller's finalizer.
pub(super) fn remove_finalizer_patch(current: &[String]) -> Option<serde_json::Value> {
    let i = current.iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{i}");
    Some(serde_json::json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
}

/// One JSON patch applied as kube takes it.
fn json_patch(ops: serde_json::Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(ops).expect("a JSON patch"))
}

impl Context {
    /// Applies one finalizer patch; a VirtualIP already gone needs none.
    async fn patch_finalizers(&self, vip: &VirtualIP, ops: serde_json::Value) -> kube::Result<()> {
        let api: Api<VirtualIP> = Api::all(self.client.clone());
        match api
            .patch(&vip.name_any(), &PatchParams::default(), &json_patch(ops))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        self.count_write();
        Ok(())
    }

    /// Our finalizer on each named VirtualIP.
    pub(in crate::controller) async fn add_finalizers(
        &self,
        names: &[String],
        find: &ByName<'_>,
    ) -> kube::Result<()> {
        let added = futures::stream::iter(names)
            .map(|name| async move {
                let vip = find[name.as_str()];
                let ops = add_finalizer_patch(vip.metadata.finalizers.as_ref());
                self.patch_finalizers(vip, ops).await
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        added.into_iter().collect::<kube::Result<Vec<()>>>()?;
        Ok(())
    }

    /// Our finalizer off a deleted VirtualIP, which lets it go.
    pub(in crate::controller) async fn remove_finalizer(
        &self,
        vip: &VirtualIP,
    ) -> kube::Result<()> {
        match remove_finalizer_patch(vip.finalizers()) {
            Some(ops) => self.patch_finalizers(vip, ops).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adding_the_finalizer_tests_the_list_first() {
        assert_eq!(
            add_finalizer_patch(None),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["kube-vrrp.io/release"]},
            ])
        );
        let other = vec!["other.io/keep".to_string()];
        assert_eq!(
            add_finalizer_patch(Some(&other)),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["other.io/keep"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "kube-vrrp.io/release"},
            ])
        );
        // Every patch parses as kube sends it.
        let _ = json_patch(add_finalizer_patch(Some(&other)));
    }

    #[test]
    fn removing_the_finalizer_tests_it_is_still_where_it_was() {
        let list = vec!["other.io/keep".to_string(), FINALIZER.to_string()];
        assert_eq!(
            remove_finalizer_patch(&list),
            Some(json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": "kube-vrrp.io/release"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ]))
        );
        assert_eq!(remove_finalizer_patch(&list[..1]), None);
    }
}
