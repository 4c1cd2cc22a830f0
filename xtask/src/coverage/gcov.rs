//! A coverage kernel's gcov counters, brought back from the guest (its
//! fourth serial port, base64) and read with the toolchain root's gcov
//! against the notes the kernel was compiled with, into per-function line
//! and branch coverage of kernel-patches/config/coverage.functions.

use std::{fs, path::Path};

use anyhow::{Context, Result, bail};
use base64::Engine;
use probe_result::coverage::Coverage;

use crate::{kernel::Image, root::Root};

/// The guest's dump: `GCDA <path>`, base64 lines, `END`, per file.
pub fn parse_dump(text: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(path) = line.strip_prefix("GCDA ") else { continue };
        let body: String = lines.by_ref().take_while(|l| *l != "END").collect();
        let data = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .with_context(|| format!("the guest's coverage counters of {path} are damaged"))?;
        out.push((path.to_string(), data));
    }
    Ok(out)
}

/// The listed functions' coverage from the guest's counters, read in
/// `work` (a scratch directory) against the notes of `kernel`.
pub fn read(root: &Root, kernel: &Image, dump: &[(String, Vec<u8>)], work: &Path) -> Result<Coverage> {
    let notes = kernel.dir.join("gcov");
    if !notes.is_dir() {
        bail!(
            "the guest sent coverage counters but {} has no gcov notes: boot a kernel built by \
             `cargo xtask kernel --kernel-config coverage`",
            kernel.dir.display()
        );
    }
    let list = super::function_list(root.workspace())?;
    let _ = fs::remove_dir_all(work);
    crate::vm::copy_tree(&notes, work)?;
    let mut placed = Vec::new();
    for (guest, data) in dump {
        // The guest names the counters by the build directory's path;
        // the notes here have the same path below that directory.
        let rel = note_for(work, guest).with_context(|| {
            format!("the guest sent counters for {guest}, which the kernel's gcov notes do not have")
        })?;
        fs::write(work.join(&rel), data)?;
        placed.push(rel);
    }
    if placed.is_empty() {
        bail!("the coverage kernel sent no gcov counters");
    }
    let version = root.output("gcov --version | head -n 1", &[])?.trim().to_string();
    let mut documents = Vec::new();
    for rel in &placed {
        let (dir, file) = (rel.parent().unwrap_or(Path::new(".")), rel.file_name().unwrap_or_default());
        let json = root.output(
            &format!(
                "cd '{}' && gcov --json-format --stdout --branch-probabilities '{}'",
                work.join(dir).display(),
                file.to_string_lossy()
            ),
            &[],
        )?;
        // One document per line, one per object.
        for line in json.lines().filter(|l| l.starts_with('{')) {
            documents.push(serde_json::from_str(line).context("gcov wrote JSON this tool cannot read")?);
        }
    }
    let source = |file: &str| {
        fs::read_to_string(work.join(file)).ok().map(|t| t.lines().map(String::from).collect::<Vec<_>>())
    };
    Coverage::from_gcov(
        &version,
        &documents,
        &list,
        "from the stress's start (the loader zeroes the counters) to the loader's exit: \
         the run, its drain and the BPF programs' unload",
        &source,
    )
}

/// The relative path of the note file's counterpart (`mm/slub.gcda`) for
/// the guest's path of the counters (`/<build dir>/mm/slub.gcda`): the
/// longest tail of it whose `.gcno` is in `work`.
fn note_for(work: &Path, guest: &str) -> Option<std::path::PathBuf> {
    let parts: Vec<&str> = guest.trim_start_matches('/').split('/').collect();
    (0..parts.len()).map(|i| parts[i..].join("/")).find_map(|tail| {
        let rel = std::path::PathBuf::from(&tail);
        work.join(rel.with_extension("gcno")).is_file().then_some(rel)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_dump_decodes() {
        let text = "noise\nGCDA /root/build/mm/slub.gcda\naGVs\nbG8=\nEND\nGCDA /b/mm/x.gcda\nEND\n";
        let dump = parse_dump(text).unwrap();
        assert_eq!(dump.len(), 2);
        assert_eq!(dump[0], ("/root/build/mm/slub.gcda".to_string(), b"hello".to_vec()));
        assert!(dump[1].1.is_empty());
        let err = parse_dump("GCDA /x.gcda\n!!!\nEND\n").unwrap_err().to_string();
        assert_eq!(err, "the guest's coverage counters of /x.gcda are damaged");
    }

    #[test]
    fn counters_find_their_notes_by_path_tail() {
        let work = std::env::temp_dir().join(format!("xtask-cov-{}", std::process::id()));
        fs::create_dir_all(work.join("mm")).unwrap();
        fs::write(work.join("mm/slub.gcno"), "").unwrap();
        let rel = note_for(&work, "/root/.cache/x/build-coverage/mm/slub.gcda");
        assert_eq!(rel, Some("mm/slub.gcda".into()));
        assert_eq!(note_for(&work, "/b/mm/other.gcda"), None);
        fs::remove_dir_all(&work).unwrap();
    }
}
