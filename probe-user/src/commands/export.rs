//! `nolock-probe export`: a result in a dashboard format.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use probe_result::Document;

use crate::render::{
    export::{self, Format},
    kcidb,
};

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: Format,
    /// Write `<OUTPUT>.<kind>.json` files instead of printing (kind:
    /// smaller-is-better and bigger-is-better, bmf, kcidb).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Results written by `nolock-probe run` or `bench`; more than one only
    /// with `--format kcidb`, which merges them into one submission.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
}

pub fn export(a: &ExportArgs) -> Result<()> {
    let docs = a.results.iter().map(|p| Document::read(p)).collect::<Result<Vec<_>>>()?;
    let exported = match (a.format, docs.as_slice()) {
        (Format::Kcidb, _) => vec![("kcidb", kcidb::submission(&docs)?)],
        (_, [doc]) => export::export(doc, a.format)?,
        _ => bail!(
            "{} results given, but only --format kcidb merges results (into one submission): export the others one \
             at a time",
            docs.len()
        ),
    };
    match &a.output {
        Some(prefix) => export::write(exported, prefix),
        None => {
            let mut out = String::new();
            for (_, value) in exported {
                out += &(serde_json::to_string_pretty(&value)? + "\n");
            }
            super::print(&out)
        }
    }
}
