//! The standalone agent's configuration source: a file of `VirtualIP` YAML documents,
//! validated as a whole (a bad file never half-configures the agent) by the shared reader
//! ([`crate::yaml`]), read at start and on SIGHUP.

use std::path::Path;

use crate::model::spec::ValidatedVirtualIp;
pub(crate) use crate::yaml::{ConfigError, parse};

/// Reads and validates a configuration file.
/// How long reading and validating a file may take before it is refused (a bounded text
/// takes far less).
pub(crate) const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) fn load(path: &Path) -> Result<Vec<ValidatedVirtualIp>, super::AgentError> {
    use std::io::Read as _;
    let p = path.display().to_string();
    let read_error = |source| super::AgentError::Read {
        path: p.clone(),
        source,
    };
    // At most one byte past the bound: a larger file is refused without being read whole.
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(crate::yaml::bounds::MAX_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    parse(&text).map_err(|source| super::AgentError::Config { path: p, source })
}
