//! `nolock-probe compare BASE NEW`: per metric, the change and its spread,
//! and the gate (`judge::gate`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use probe_result::Document;

use crate::judge::gate;

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    pub base: PathBuf,
    pub new: PathBuf,
    /// Regression thresholds [default: the repository's results/thresholds.toml].
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
}

/// Prints the comparison; false (exit 1) when a gated metric regressed.
pub fn compare(a: &CompareArgs) -> Result<bool> {
    let thresholds = match &a.thresholds {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        None => gate::DEFAULT_THRESHOLDS.to_string(),
    };
    let thresholds = gate::parse_thresholds(&thresholds)?;
    let rows = gate::compare(&Document::read(&a.base)?, &Document::read(&a.new)?, &thresholds);
    let regressed = gate::describe_regressions(&rows);
    let last = if regressed.is_empty() { "no gated metric regressed\n" } else { &regressed };
    super::print(&format!("{}{last}", gate::render(&rows)))?;
    Ok(regressed.is_empty())
}
