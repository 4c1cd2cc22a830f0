//! `nolock-probe export`: a result in a dashboard format.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use probe_result::Document;

use crate::render::export::{self, Format};

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: Format,
    /// Write `<OUTPUT>.<kind>.json` files instead of printing (kind:
    /// smaller-is-better and bigger-is-better, bmf, kcidb).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// A result written by `nolock-probe run` or `bench`.
    pub result: PathBuf,
}

pub fn export(a: &ExportArgs) -> Result<()> {
    let doc = Document::read(&a.result)?;
    match &a.output {
        Some(prefix) => export::write(&doc, a.format, prefix),
        None => {
            let mut out = String::new();
            for (_, value) in export::export(&doc, a.format)? {
                out += &(serde_json::to_string_pretty(&value)? + "\n");
            }
            super::print(&out)
        }
    }
}
