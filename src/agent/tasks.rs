//! The agent's tasks and the channels between them (documentation only: no code lives here).
//! Every message type named below is in [`super::messages`].
//!
//! ```text
//!  SIGTERM/SIGINT/SIGHUP ─┐
//!  netlink events (links, ├─ AgentEvent ─────────────────────────────┐
//!   addresses) ──────────┤                                          ▼
//!  resync tick (2 s) ─────┤                          ┌───────── run loop (agent/mod.rs) ─────────┐
//!  cluster config watch ──┤                          │ sources → resolve → instances::diff →     │
//!  /status, /metrics ─────┘                          │ steps; status entries, cluster report     │
//!  setup tasks (instances::prepare: sockets,         └──┬──────────────┬──────────────┬──────────┘
//!   macvlan, DAD) ── AgentEvent::Prepared ──▶ run loop  │ EngineCmd    │ DataplaneCmd │ watch
//!                                                       │ (start/stop/ │ (kernel      ▼
//!  health checks (agent/supervisor.rs) ── EngineCmd ────┤  update/link)│  events)   cluster status
//!   ::VipTracker; AgentEvent::Changed ──▶ run loop      ▼              │            writer (API)
//!  ┌────────────── engine thread (own runtime, SCHED_FIFO) ──────────┐ │
//!  │ receiver task per (ifindex, family) ── FromReceiver ──▶ engine  │ │
//!  │ engine: Instance::handle per input; timer wheel; handover holds │ │
//!  │   adverts ──▶ raw socket (sent here, never queued)              │ │
//!  └──┬──────────────────────┬─────────────────────────┬────────────┘ │
//!     │ AgentEvent::Changed, │ DataplaneCmd            │ NotifyMsg    │
//!     │ ::Retired            ▼ (bind/unbind/announce)  ▼              │
//!     ▼                ┌──── data plane ◀─────────────────────────────┘
//!  run loop            │ one worker per instance, ledger, standby links; netlink
//!                      │  EngineCmd::Tracker (address conflict), ::Restored ──▶ engine
//!                      └── AnnounceCmd ──▶ announcer (GARP / unsolicited NA bursts, refresh)
//!                                          notify task (NotifyMsg ─▶ notify scripts)
//! ```
//!
//! Around it all, another process: the warden (`warden.rs`), the agent's parent, holds the
//! node lock and forwards signals; the engine hands it the agent's will (a watch channel,
//! then a pipe: `will.rs`), which it carries out if the agent dies without releasing.
//!
//! Timing rule: only the engine thread sends advertisements and runs protocol timers; every
//! other arrow may be slow (netlink batches, bursts, the API, logging) without delaying them.
