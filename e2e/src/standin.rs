//! The API stand-in under test: started in the lab's `api` namespace (management segment
//! 203.0.113.0/24), reached from the client namespace, or a real cluster when
//! KUBE_VRRP_E2E_KUBECONFIG names one (see e2e/README.md).

use std::process::Output;
use std::time::Duration;

use crate::{Lab, wait_for};

const STANDIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kube-standin/standin.py");
const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kube-standin/testdata");

pub struct Api {
    pub crds: String,
    /// A real cluster from KUBE_VRRP_E2E_KUBECONFIG: no stand-in, no fault injection.
    pub external: bool,
    pub lab: Lab,
    pub kubeconfig: String,
    state: String,
    pub pid: u32,
    api_ns: String,
    /// The rendered chart whose RBAC the stand-in enforces (kube-vrrp's own tests): the
    /// controller and the agents then present their ServiceAccounts' tokens.
    pub rbac: Option<String>,
    /// Refusals a test provokes on purpose (substrings of the 403 message).
    pub expected_denials: Vec<String>,
}

impl Api {
    pub fn start() -> Api {
        Api::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Api {
        Api::start_full(CRDS, env)
    }

    /// With the CRDs of `crds` (a directory) instead of the test CRD.
    pub fn start_full(crds: &str, env: &[(&str, &str)]) -> Api {
        Api::start_lab(0, crds, env)
    }

    /// With `nodes` lab nodes (n1..) on the data segment as well, each also plugged into the
    /// management segment (eth1, 203.0.113.11..) where the stand-in listens.
    pub fn start_lab(nodes: usize, crds: &str, env: &[(&str, &str)]) -> Api {
        let mut lab = Lab::new(nodes);
        if let Ok(kubeconfig) = std::env::var("KUBE_VRRP_E2E_KUBECONFIG") {
            let api_ns = String::new();
            return Api {
                crds: String::new(),
                external: true,
                lab,
                kubeconfig,
                state: String::new(),
                pid: 0,
                api_ns,
                rbac: None,
                expected_denials: Vec::new(),
            };
        }
        let api = lab.add_management();
        let kubeconfig = lab.dir().join("kubeconfig").display().to_string();
        let state = lab.dir().join("state.jsonl").display().to_string();
        let mut api = Api {
            crds: String::new(),
            external: false,
            lab,
            kubeconfig,
            state,
            pid: 0,
            api_ns: api.ns,
            rbac: (crds == KUBE_VRRP_CRDS).then(|| DEPLOY.to_string()),
            expected_denials: Vec::new(),
        };
        api.crds = crds.to_string();
        api.pid = api.spawn(env);
        api
    }

    pub fn spawn(&mut self, env: &[(&str, &str)]) -> u32 {
        let mut args: Vec<String> = vec!["env".into()];
        args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        args.extend(
            [
                "python3",
                STANDIN,
                "--listen",
                "203.0.113.1:6443",
                "--crds",
                &self.crds,
                "--state",
                &self.state,
                "--kubeconfig",
                &self.kubeconfig,
            ]
            .map(String::from),
        );
        if let Some(manifest) = &self.rbac {
            args.extend(["--rbac".to_string(), manifest.clone()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let ns = self.api_ns.clone();
        let pid = self.lab.spawn(&ns, &refs, "standin.log");
        let up = wait_for(Duration::from_secs(10), || {
            std::path::Path::new(&self.kubeconfig).exists()
                && self.kubectl(&["get", "--raw", "/version"]).status.success()
        });
        assert!(
            up.is_some(),
            "stand-in did not start:\n{}",
            self.lab.log("standin.log")
        );
        pid
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut full = vec![
            "kubectl",
            "--kubeconfig",
            &self.kubeconfig,
            "--request-timeout=5s",
        ];
        full.extend_from_slice(args);
        self.lab.exec(&self.lab.client.ns, &full)
    }

    /// Runs kubectl, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {} should have failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn apply(&self, yaml: &str, extra: &[&str]) -> Output {
        let file = self.lab.dir().join(format!("obj-{}.yaml", rand_suffix()));
        std::fs::write(&file, yaml).unwrap();
        let mut args = vec!["apply", "-f", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.kubectl(&args)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn control(&self, path: &str, body: &str) {
        let file = self.lab.dir().join("control.json");
        std::fs::write(&file, body).unwrap();
        // Under RBAC the stand-in speaks TLS (its own certificate; control paths need no token).
        let scheme = if self.rbac.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://203.0.113.1:6443{path}");
        let out = self.lab.exec(
            &self.lab.client.ns,
            &["python3", "-c", &format!(
                "import ssl,urllib.request;urllib.request.urlopen(urllib.request.Request('{url}',data=open('{}','rb').read(),method='POST'),timeout=5,context=ssl._create_unverified_context()).read()",
                file.display()
            )],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn widget(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: test.kube-vrrp.io/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec: {spec}\n"
    )
}

/// Runs `f` with a kube-rs client from the client namespace (the thread enters it; the
/// current-thread runtime keeps all I/O there), or from here against a real cluster.
pub fn with_client<F, Fut, T>(api: &Api, f: F) -> T
where
    F: FnOnce(kube::Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let ns = (!api.external).then(|| format!("/run/netns/{}", api.lab.client.ns));
    let kubeconfig = api.kubeconfig.clone();
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            let file = std::fs::File::open(&ns).unwrap();
            nix::sched::setns(
                std::os::fd::AsFd::as_fd(&file),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            let client = kube::Client::try_from(config).unwrap();
            f(client).await
        })
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The repository's generated CRDs (VirtualIP, VirtualIPNodeConfig).
pub const KUBE_VRRP_CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds");

/// The chart rendered (helm_chart.rs keeps it equal to `helm template`): its ServiceAccounts,
/// Roles and bindings are what the stand-in enforces in kube-vrrp's tests.
pub const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kube-vrrp.yaml");

/// The chart's release namespace in [`DEPLOY`].
pub const RELEASE_NAMESPACE: &str = "kube-vrrp-system";

impl Api {
    /// Registers the lab's nodes as `Node` objects (InternalIP on the data segment, label
    /// `lab.kube-vrrp.io/node=nK`).
    pub fn add_nodes(&self) {
        let names: Vec<String> = self.lab.nodes.iter().map(|n| n.name.clone()).collect();
        self.add_some_nodes(&names.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Registers these lab nodes only (the others stay outside the cluster).
    pub fn add_some_nodes(&self, names: &[&str]) {
        for n in self
            .lab
            .nodes
            .iter()
            .filter(|n| names.contains(&n.name.as_str()))
        {
            let yaml = format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{lab.kube-vrrp.io/node: {name}}}\nstatus:\n  addresses:\n  - {{type: InternalIP, address: \"{v4}\"}}\n  - {{type: InternalIP, address: \"{v6}\"}}\n",
                name = n.name,
                v4 = n.ipv4,
                v6 = n.ipv6
            );
            let out = self.apply(&yaml, &[]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Starts the kube-vrrp binary with `args` in namespace `ns`, with this API's kubeconfig
    /// and RUST_LOG (default info), logging to `log`.
    fn spawn_kube_vrrp(&mut self, ns: &str, account: &str, args: &[&str], log: &str) -> u32 {
        let bin = crate::kube_vrrp_binary().display().to_string();
        let kubeconfig = format!("KUBECONFIG={}", self.kubeconfig_of(account));
        let rust_log = format!(
            "RUST_LOG={}",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())
        );
        // As the chart does (downward API): the release namespace holds the Lease.
        let namespace = format!("POD_NAMESPACE={RELEASE_NAMESPACE}");
        let mut full = vec!["env", kubeconfig.as_str(), rust_log.as_str(), bin.as_str()];
        if self.rbac.is_some() {
            full.insert(1, namespace.as_str());
        }
        full.extend_from_slice(args);
        self.lab.spawn(ns, &full, log)
    }

    /// Starts `kube-vrrp controller` in the client namespace as replica `identity`, with
    /// metrics on 127.0.0.1:`port` and a 5 s lease; logs to `controller-IDENTITY.log`.
    pub fn spawn_controller(&mut self, identity: &str, port: u16) -> u32 {
        let ns = self.lab.client.ns.clone();
        let listen = format!("127.0.0.1:{port}");
        let args = [
            "controller",
            "--identity",
            identity,
            "--lease-duration",
            "5s",
            "--listen",
            &listen,
        ];
        self.spawn_kube_vrrp(
            &ns,
            "controller",
            &args,
            &format!("controller-{identity}.log"),
        )
    }

    /// Starts `kube-vrrp agent` (cluster mode, 1 s heartbeat) on a lab node, /status on
    /// 127.0.0.1:9650; logs to `agent-NODE.log`.
    pub fn spawn_cluster_agent(&mut self, node: &str) -> u32 {
        self.spawn_cluster_agent_with(node, &[])
    }

    /// As [`Api::spawn_cluster_agent`], with more arguments (e.g. `--allow-exec`).
    pub fn spawn_cluster_agent_with(&mut self, node: &str, extra: &[&str]) -> u32 {
        let ns = self.lab.node(node).ns.clone();
        let mut args = vec![
            "agent",
            "--node-name",
            node,
            "--listen",
            crate::AGENT_STATUS,
            "--heartbeat",
            "1s",
        ];
        args.extend_from_slice(extra);
        self.spawn_kube_vrrp(&ns, "agent", &args, &format!("agent-{node}.log"))
    }

    /// Waits until the agents of `nodes` have registered in their configurations' status
    /// (the controller places VirtualIPs only on such nodes); panics with the logs if not.
    pub fn wait_registered(&self, nodes: &[&str]) {
        let registered = wait_for(Duration::from_secs(20), || {
            nodes.iter().all(|n| {
                self.get_json("virtualipnodeconfig", n)
                    .is_some_and(|c| c["status"]["agent"].is_string())
            })
        });
        assert!(
            registered.is_some(),
            "agents did not register:\n{}",
            self.logs()
        );
    }

    /// The kubeconfig the chart's ServiceAccount `kube-vrrp-ROLE` would use: its token's
    /// under RBAC, else the stand-in's (or the real cluster's) own.
    pub fn kubeconfig_of(&self, role: &str) -> String {
        match &self.rbac {
            Some(_) => self
                .lab
                .dir()
                .join(format!("kubeconfig-{RELEASE_NAMESPACE}-kube-vrrp-{role}"))
                .display()
                .to_string(),
            None => self.kubeconfig.clone(),
        }
    }

    /// What the stand-in's RBAC saw: `denied` (the 403 messages), `used` and `unused`
    /// grants ("ClusterRole kube-vrrp-agent: patch virtualips/status.kube-vrrp.io"). None
    /// without RBAC.
    pub fn rbac_report(&self) -> Option<serde_json::Value> {
        self.rbac.as_ref()?;
        Some(serde_json::from_str(&self.ok(&["get", "--raw", "/_standin/rbac"])).unwrap())
    }

    /// One object as JSON, or None when it does not exist.
    pub fn get_json(&self, kind: &str, name: &str) -> Option<serde_json::Value> {
        let out = self.kubectl(&["get", kind, name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Waits until `f` holds for the VirtualIP `name` (polling kubectl); returns the object,
    /// or panics with the last one seen, `what` and the logs.
    pub fn wait_vip(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut last = None;
        let took = wait_for(timeout, || {
            last = self.get_json("virtualip", name);
            last.as_ref().is_some_and(&mut f)
        });
        match (took, last) {
            (Some(_), Some(v)) => v,
            (_, last) => panic!(
                "VirtualIP {name}: {what} not reached in {timeout:?}; last seen:\n{}\n{}",
                serde_json::to_string_pretty(&last).unwrap(),
                self.logs()
            ),
        }
    }

    /// The logs of the controller(s) and agents, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(dir) = std::fs::read_dir(self.lab.dir()) {
            let mut names: Vec<String> = dir
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".log"))
                .collect();
            names.sort();
            for n in names {
                let text = self.lab.log(&n);
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("==== {n} (last 40 lines)\n"));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl Drop for Api {
    /// Under RBAC, a request the chart does not allow fails the test that made it, even when
    /// the test would not notice otherwise (an Event never written, a retried patch).
    fn drop(&mut self) {
        if self.rbac.is_none() || std::thread::panicking() {
            return;
        }
        let out = self.kubectl(&["get", "--raw", "/_standin/rbac"]);
        let Ok(report) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return;
        };
        let denied: Vec<_> = report["denied"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| {
                let d = d.as_str().unwrap_or_default();
                !self.expected_denials.iter().any(|e| d.contains(e.as_str()))
            })
            .collect();
        assert!(
            denied.is_empty(),
            "the chart's RBAC refused {} request(s) (charts/kube-vrrp/templates/rbac.yaml):\n{}",
            denied.len(),
            denied
                .iter()
                .map(|d| d.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
