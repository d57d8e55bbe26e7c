//! The Kubernetes API stand-in driven by unmodified kube-rs 5: typed and dynamic Api calls,
//! server-side apply (including status list-maps written by several managers, as the agents
//! will), kube-runtime's watcher, reflector and Controller, Lease-based leader election
//! semantics, and recovery from 410 Gone, dropped watches and a paused server.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, reflector, watcher};
use kube_vrrp_e2e::standin::{Api as StandIn, with_client};
use serde_json::json;

fn widget_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("test.kube-vrrp.io", "v1", "Widget");
    ApiResource::from_gvk_with_plural(&gvk, "widgets")
}

fn widgets(client: kube::Client) -> Api<DynamicObject> {
    Api::all_with(client, &widget_resource())
}

fn widget(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "test.kube-vrrp.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})
}

/// Applies widgets named `prefix` + n for n in `range` (size 1) as manager "t".
async fn apply_widgets(w: &Api<DynamicObject>, prefix: &str, range: std::ops::Range<u32>) {
    for i in range {
        let name = format!("{prefix}{i}");
        w.patch(
            &name,
            &PatchParams::apply("t"),
            &Patch::Apply(widget(&name, json!({"size": 1}))),
        )
        .await
        .unwrap();
    }
}

fn code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other}"),
    }
}

#[test]
fn crud_conflicts_and_validation_errors() {
    let api = StandIn::start();
    with_client(&api, |client| async move {
        let w = widgets(client);
        let obj: DynamicObject = serde_json::from_value(widget("a", json!({"size": 2}))).unwrap();
        let created = w.create(&PostParams::default(), &obj).await.unwrap();
        assert_eq!(created.metadata.generation, Some(1));
        // Create again: 409 AlreadyExists.
        assert_eq!(
            code(&w.create(&PostParams::default(), &obj).await.unwrap_err()),
            409
        );
        // Replace with a stale resourceVersion: 409 Conflict.
        let mut fresh = w.get("a").await.unwrap();
        w.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
        fresh.data["spec"]["size"] = json!(4);
        let e = w
            .replace("a", &PostParams::default(), &fresh)
            .await
            .unwrap_err();
        assert_eq!(code(&e), 409);
        // Invalid: 422 with the field and the reason.
        let bad: DynamicObject = serde_json::from_value(widget("b", json!({"size": 99}))).unwrap();
        let e = w.create(&PostParams::default(), &bad).await.unwrap_err();
        assert_eq!(code(&e), 422);
        assert!(e.to_string().contains("spec.size"), "{e}");
        // Missing: 404 NotFound.
        let e = w.get("nope").await.unwrap_err();
        assert_eq!(code(&e), 404);
        // Generation moved with the spec change only.
        let a = w.get("a").await.unwrap();
        assert_eq!(a.metadata.generation, Some(2));
        w.delete("a", &DeleteParams::default()).await.unwrap();
        assert_eq!(code(&w.get("a").await.unwrap_err()), 404);
    });
}

#[test]
fn status_list_map_entries_from_several_managers() {
    let api = StandIn::start();
    with_client(&api, |client| async move {
        let w = widgets(client);
        let pp = PatchParams::apply("controller");
        w.patch("s", &pp, &Patch::Apply(widget("s", json!({"size": 1}))))
            .await
            .unwrap();
        // Each "agent" applies only its own entry of status.nodes (keyed by node).
        for node in ["n1", "n2", "n3"] {
            let status = json!({"apiVersion": "test.kube-vrrp.io/v1", "kind": "Widget",
                "status": {"nodes": [{"node": node, "state": "Backup"}]}});
            w.patch_status(
                "s",
                &PatchParams::apply(&format!("agent-{node}")),
                &Patch::Apply(status),
            )
            .await
            .unwrap();
        }
        let status = json!({"apiVersion": "test.kube-vrrp.io/v1", "kind": "Widget",
            "status": {"nodes": [{"node": "n2", "state": "Master"}]}});
        w.patch_status("s", &PatchParams::apply("agent-n2"), &Patch::Apply(status))
            .await
            .unwrap();
        let s = w.get_status("s").await.unwrap();
        let nodes = s.data["status"]["nodes"].as_array().unwrap().clone();
        let states: Vec<(String, String)> = nodes
            .iter()
            .map(|n| {
                (
                    n["node"].as_str().unwrap().into(),
                    n["state"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                ("n1".into(), "Backup".into()),
                ("n2".into(), "Master".into()),
                ("n3".into(), "Backup".into())
            ]
        );
        // Status writes leave the generation alone; the controller's spec apply is unaffected.
        assert_eq!(s.metadata.generation, Some(1));
        // A spec apply by another manager that changes the controller's field conflicts.
        let e = w
            .patch(
                "s",
                &PatchParams::apply("intruder"),
                &Patch::Apply(widget("s", json!({"size": 2}))),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 409);
        let forced = PatchParams::apply("intruder").force();
        w.patch("s", &forced, &Patch::Apply(widget("s", json!({"size": 2}))))
            .await
            .unwrap();
        assert_eq!(w.get("s").await.unwrap().data["spec"]["size"], 2);
    });
}

#[test]
fn watcher_and_reflector_follow_changes() {
    let api = StandIn::start();
    with_client(&api, |client| async move {
        let w = widgets(client.clone());
        apply_widgets(&w, "r", 0..3).await;
        let writer = reflector::store::Writer::new(widget_resource());
        let reader = writer.as_reader();
        let stream = reflector(writer, watcher(w.clone(), watcher::Config::default()));
        let task = tokio::spawn(stream.for_each(|_| async {}));
        reader.wait_until_ready().await.unwrap();
        assert_eq!(reader.state().len(), 3);
        w.patch(
            "r1",
            &PatchParams::apply("t"),
            &Patch::Apply(widget("r1", json!({"size": 7}))),
        )
        .await
        .unwrap();
        w.delete("r2", &DeleteParams::default()).await.unwrap();
        let ok = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let s = reader.state();
                let r1 = s.iter().find(|o| o.metadata.name.as_deref() == Some("r1"));
                if s.len() == 2 && r1.is_some_and(|o| o.data["spec"]["size"] == 7) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        task.abort();
        assert!(
            ok.is_ok(),
            "reflector state: {:?}",
            reader
                .state()
                .iter()
                .map(|o| o.metadata.name.clone())
                .collect::<Vec<_>>()
        );
    });
}

#[test]
fn controller_reconciles_every_object() {
    let api = StandIn::start();
    with_client(&api, |client| async move {
        let w = widgets(client.clone());
        for i in 0..3 {
            w.patch(
                &format!("c{i}"),
                &PatchParams::apply("t"),
                &Patch::Apply(widget(&format!("c{i}"), json!({"size": i + 1}))),
            )
            .await
            .unwrap();
        }
        struct Ctx {
            api: Api<DynamicObject>,
        }
        async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
            let name = obj.metadata.name.clone().unwrap();
            let owner = format!("size-{}", obj.data["spec"]["size"]);
            let status = json!({"apiVersion": "test.kube-vrrp.io/v1", "kind": "Widget", "status": {"owner": owner}});
            ctx.api
                .patch_status(
                    &name,
                    &PatchParams::apply("reconciler").force(),
                    &Patch::Apply(status),
                )
                .await?;
            Ok(Action::await_change())
        }
        fn error_policy(_: Arc<DynamicObject>, _: &kube::Error, _: Arc<Ctx>) -> Action {
            Action::requeue(Duration::from_millis(200))
        }
        let ar = widget_resource();
        let ctx = Arc::new(Ctx { api: w.clone() });
        let controller = Controller::new_with(w.clone(), watcher::Config::default(), ar)
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {});
        let task = tokio::spawn(controller);
        let check = async {
            loop {
                let mut done = 0;
                for i in 0..3 {
                    let o = w.get(&format!("c{i}")).await.unwrap();
                    if o.data["status"]["owner"] == format!("size-{}", i + 1) {
                        done += 1;
                    }
                }
                if done == 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // A spec change is reconciled too.
            w.patch(
                "c0",
                &PatchParams::apply("t"),
                &Patch::Apply(widget("c0", json!({"size": 9}))),
            )
            .await
            .unwrap();
            loop {
                if w.get("c0").await.unwrap().data["status"]["owner"] == "size-9" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let ok = tokio::time::timeout(Duration::from_secs(10), check).await;
        task.abort();
        assert!(ok.is_ok(), "controller did not reconcile every object");
    });
}

#[test]
fn lease_leader_election_has_one_winner() {
    let api = StandIn::start();
    with_client(&api, |client| async move {
        let leases: Api<Lease> = Api::namespaced(client, "default");
        let lease = |holder: &str| -> Lease {
            serde_json::from_value(
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "kube-vrrp-controller", "namespace": "default"},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}}),
            )
            .unwrap()
        };
        // Two replicas race to create the Lease: exactly one wins.
        let (la, lb, pp) = (
            lease("replica-a"),
            lease("replica-b"),
            PostParams::default(),
        );
        let (a, b) = tokio::join!(leases.create(&pp, &la), leases.create(&pp, &lb));
        assert!(a.is_ok() != b.is_ok(), "exactly one create must win");
        let loser_err = a.as_ref().err().or(b.as_ref().err()).unwrap();
        assert_eq!(code(loser_err), 409);
        // Both read it, then both try to take it over with the version they read: one wins.
        let seen = leases.get("kube-vrrp-controller").await.unwrap();
        let mut ta = seen.clone();
        ta.spec.as_mut().unwrap().holder_identity = Some("replica-a".into());
        let mut tb = seen.clone();
        tb.spec.as_mut().unwrap().holder_identity = Some("replica-b".into());
        let ra = leases
            .replace("kube-vrrp-controller", &PostParams::default(), &ta)
            .await;
        let rb = leases
            .replace("kube-vrrp-controller", &PostParams::default(), &tb)
            .await;
        assert!(ra.is_ok());
        assert_eq!(code(&rb.unwrap_err()), 409);
        let now = leases.get("kube-vrrp-controller").await.unwrap();
        assert_eq!(
            now.spec.unwrap().holder_identity.as_deref(),
            Some("replica-a")
        );
    });
}

#[test]
fn watcher_recovers_from_gone_dropped_watches_and_a_pause() {
    let api = StandIn::start_with(&[("STANDIN_EVENT_WINDOW", "5")]);
    if api.external {
        eprintln!("real cluster: fault injection is stand-in only");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel::<&'static str>();
    // The driver says when each fault is in force: on a loaded machine a control request (a
    // python process) may take longer than any fixed sleep.
    let (ack_tx, mut ack) = tokio::sync::mpsc::unbounded_channel::<()>();
    let api_ref = &api;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // Driver: wait for the client's cues, then inject faults.
            while let Ok(cue) = rx.recv() {
                match cue {
                    "drop" => api_ref.control("/_standin/drop-watches", "{}"),
                    "fail-watches" => {
                        api_ref.control("/_standin/fault", r#"{"mode":"fail-watches","code":503}"#)
                    }
                    "pause" => api_ref.control("/_standin/fault", r#"{"mode":"pause"}"#),
                    "resume" => api_ref.control("/_standin/fault", r#"{"mode":"none"}"#),
                    _ => return,
                }
                let _ = ack_tx.send(());
            }
        });
        with_client(api_ref, move |client| async move {
            let w = widgets(client.clone());
            let writer = reflector::store::Writer::new(widget_resource());
            let reader = writer.as_reader();
            let stream = reflector(writer, watcher(w.clone(), watcher::Config::default()));
            let task = tokio::spawn(stream.for_each(|_| async {}));
            reader.wait_until_ready().await.unwrap();
            let converge = |n: usize| {
                let reader = reader.clone();
                async move {
                    tokio::time::timeout(Duration::from_secs(10), async {
                        while reader.state().len() != n {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    })
                    .await
                    .is_ok()
                }
            };
            // Dropped watches: the watcher re-watches and misses nothing.
            tx.send("drop").unwrap();
            ack.recv().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            apply_widgets(&w, "d", 0..3).await;
            assert!(
                converge(3).await,
                "after dropped watches: {}",
                reader.state().len()
            );
            // Many changes while the watch is down: its resourceVersion falls out of the
            // 5-event window, the re-watch gets 410 Gone, and the watcher relists.
            tx.send("fail-watches").unwrap();
            ack.recv().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send("drop").unwrap();
            ack.recv().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            apply_widgets(&w, "d", 3..15).await;
            tx.send("resume").unwrap();
            ack.recv().await.unwrap();
            assert!(converge(15).await, "after 410: {}", reader.state().len());
            // A paused server: requests hang (the client gives up on its own timeout), and
            // everything resumes afterwards.
            tx.send("pause").unwrap();
            ack.recv().await.unwrap();
            let hung = tokio::time::timeout(Duration::from_secs(1), w.get("d0")).await;
            assert!(hung.is_err(), "a paused server answered");
            tx.send("resume").unwrap();
            ack.recv().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            w.delete("d0", &DeleteParams::default()).await.unwrap();
            assert!(
                converge(14).await,
                "after the pause: {}",
                reader.state().len()
            );
            tx.send("stop").unwrap();
            task.abort();
        });
    });
    let stats = api.lab.exec(
        &api.lab.client.ns,
        &["python3", "-c", "import urllib.request;print(urllib.request.urlopen('http://203.0.113.1:6443/_standin/stats').read().decode())"],
    );
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(
        stats["gone"].as_u64().unwrap() >= 1,
        "the watcher never hit 410 Gone: {stats}"
    );
}

/// Strict as an API server about list-maps: a CRD whose list-map key is neither required nor
/// defaulted is refused (the stand-in does not start), with the API server's words.
#[test]
fn a_list_map_key_without_a_default_or_required_refuses_the_crd() {
    let good = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kube-standin/testdata/widgets.yaml"
    ))
    .unwrap();
    let bad = good.replacen("required: [name]\n                    ", "", 1);
    assert_ne!(good, bad);
    let dir = std::env::temp_dir().join(format!("standin-crd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("widgets.yaml"), bad).unwrap();
    // In a network namespace of its own, as every lab process (it stops before listening).
    let out = std::process::Command::new("unshare")
        .args(["-n", "python3"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/kube-standin/standin.py"
        ))
        .arg("--crds")
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("properties[parts].items.properties[name].default: Required value"),
        "{err}"
    );
}

/// The protobuf body kubectl 1.32 sent for `kubectl create service loadbalancer web
/// --tcp=80:8080` (captured) decodes to the Service it describes, and 20,000 mutations of it
/// are each a Service or a 400/415, never an exception that drops the connection or a value
/// that breaks a later read.
#[test]
fn protobuf_bodies_decode_or_are_refused_never_crash() {
    let script = r#"
import json, random, sys
sys.path.insert(0, sys.argv[1])
import standin
body = open(sys.argv[2], "rb").read()
svc = standin.decode_protobuf(body)
assert svc["kind"] == "Service" and svc["metadata"]["name"] == "web", svc
assert svc["spec"]["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}], svc
random.seed(7)
for _ in range(20000):
    x = bytearray(body)
    for _ in range(random.randint(1, 4)):
        x[random.randrange(4, len(x))] = random.randrange(256)
    try:
        json.dumps(standin.decode_protobuf(bytes(x)))
    except standin.ApiError as e:
        assert e.code in (400, 415), e.code
print("ok")
"#;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/kube-standin");
    let out = std::process::Command::new("python3")
        .args(["-c", script, dir, &format!("{dir}/testdata/service.pb")])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
