//! The VRRP protocol core: packet codec, instance state machine, timers and a simulated wire.
//! Pure: no sockets, no async runtime, no clock. The I/O shell feeds it inputs and carries out
//! the actions it returns.

pub(crate) mod config;
pub(crate) mod driver;
pub mod instance;
pub(crate) mod packet;
pub(crate) mod priority;
pub mod sim;

pub use config::{InstanceConfig, InstanceConfigError, VirtualAddress};
pub use instance::{Action, Counters, Input, Instance, Reason, State, TimerKind, Transition};
pub use packet::{
    Addresses, Advertisement, Authentication, DecodeError, EncodeError, Family, Version,
};
