//! The standalone agent's configuration source: a file of `VirtualIP` YAML documents,
//! validated as a whole (a bad file never half-configures the agent) by the shared reader
//! ([`crate::yaml`]), read at start and on SIGHUP.

use std::path::Path;

use crate::model::spec::ValidatedVirtualIp;
pub use crate::yaml::{ConfigError, parse};

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Vec<ValidatedVirtualIp>, super::AgentError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| super::AgentError::Read {
        path: p.clone(),
        source,
    })?;
    parse(&text).map_err(|source| super::AgentError::Config { path: p, source })
}
