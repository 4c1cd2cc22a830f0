//! `nolock-probe report`: a saved result in the terminal, and optionally
//! as an SVG picture.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use probe_result::Document;

use crate::render::{svg, terminal};

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    pub result: PathBuf,
    /// Also draw the latency distributions per path and the in-flight gauge
    /// over time into this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

pub fn report(a: &ReportArgs) -> Result<()> {
    let doc = Document::read(&a.result)?;
    super::print(&terminal::document(&doc))?;
    if let Some(path) = &a.svg {
        let Document::Run(r) = &doc else {
            bail!("--svg draws a run's paths and gauge; {} is not a run's result", a.result.display());
        };
        std::fs::write(path, svg::render(r)?).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("nolock-probe: wrote {}", path.display());
    }
    Ok(())
}
