//! `nolock-probe compare BASE NEW`: per metric, the change and its spread,
//! and the gate (`judge::gate`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use probe_result::Document;

use crate::judge::gate;

/// The lines of the nolock machinery the base run reached and the new one
/// did not, with their source, when both ran on a coverage kernel.
fn coverage_lost(base: &Document, new: &Document) -> String {
    let (Document::Run(b), Document::Run(n)) = (base, new) else { return String::new() };
    let (Some(b), Some(n)) = (&b.coverage, &n.coverage) else { return String::new() };
    let lost = n.lost_since(b);
    if lost.is_empty() {
        return "coverage: every line the base reached, the new run reached too\n".into();
    }
    let mut s = format!(
        "coverage went down: {} lines the base reached, the new run did not:\n",
        lost.iter().map(|(_, l)| l.len()).sum::<usize>()
    );
    for (function, lines) in lost {
        for l in lines {
            s.push_str(&format!("  {function}:{} {}\n", l.line, l.text.trim()));
        }
    }
    s
}

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
    let (base, new) = (Document::read(&a.base)?, Document::read(&a.new)?);
    let rows = gate::compare(&base, &new, &thresholds);
    let regressed = gate::describe_regressions(&rows);
    let last = if regressed.is_empty() { "no gated metric regressed\n" } else { &regressed };
    super::print(&format!("{}{}{last}", gate::render(&rows), coverage_lost(&base, &new)))?;
    Ok(regressed.is_empty())
}
