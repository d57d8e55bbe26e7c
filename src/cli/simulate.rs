//! `kube-vrrp simulate`: VRRP scenarios on virtual time, every transition as a JSON line.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::vrrp::sim::Scenario;

/// The scenario `simulate` runs when given none: three routers elect, lose their master, fail
/// back, hand over gracefully and survive a partition.
const DEFAULT_SCENARIO: &str = include_str!("../../e2e/scenarios/failover.json");

pub(crate) fn run(paths: &[PathBuf]) -> ExitCode {
    let mut texts = Vec::new();
    if paths.is_empty() {
        texts.push((
            "embedded failover scenario".to_string(),
            DEFAULT_SCENARIO.to_string(),
        ));
    }
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(t) => texts.push((p.display().to_string(), t)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let mut failed = 0;
    for (origin, text) in &texts {
        let report = match Scenario::from_json(text).and_then(|s| s.run()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {origin}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for t in &report.transitions {
            println!(
                "{}",
                serde_json::json!({"scenario": report.name, "transition": t})
            );
        }
        for o in &report.observations {
            println!(
                "{}",
                serde_json::json!({"scenario": report.name, "check": o})
            );
        }
        println!(
            "{}",
            serde_json::json!({"scenario": report.name, "passed": report.passed,
                "checks": report.observations.len(), "transitions": report.transitions.len()})
        );
        if !report.passed {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("{failed} scenario(s) did not behave as expected");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
