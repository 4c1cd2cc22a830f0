//! KernelCI's own validator of KCIDB submissions, kcidb-io (from PyPI, in
//! a venv in the cache keyed by its version): what KCIDB would refuse,
//! refused here first.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::step;

/// The kcidb-io release the submissions are held to.
const KCIDB_IO: &str = "141";

/// Validates exactly against the schema version the submission names, and
/// a copy marked 5.0 against 5.0: the export uses no field newer than
/// that, so KCIDB instances still on 5.0 take it too.
const CHECK: &str = r#"
import copy, json, sys
import kcidb_io
data = json.load(open(sys.argv[1]))
v = data["version"]
schema = getattr(kcidb_io.schema, "V%d_%d" % (v["major"], v["minor"]))
schema.validate_exactly(data)
old = copy.deepcopy(data)
old["version"]["minor"] = 0
kcidb_io.schema.V5_0.validate_exactly(old)
n = {k: len(data.get(k, [])) for k in ("checkouts", "builds", "tests")}
print("valid KCIDB v%d.%d and v5.0: %d checkouts, %d builds, %d tests" % (
    v["major"], v["minor"], n["checkouts"], n["builds"], n["tests"]))
"#;

/// The venv's python, set up once per kcidb-io version.
fn python(cache: &Path) -> Result<PathBuf> {
    let venv = cache.join(format!("kcidb-io-{KCIDB_IO}"));
    let python = venv.join("bin/python3");
    if python.exists() {
        step::cached("kcidb-io", &venv.display().to_string());
        return Ok(python);
    }
    step::step(&format!("kcidb-io {KCIDB_IO} into a venv"), || {
        let partial = venv.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&partial)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            bail!(
                "cannot make a Python venv to validate KCIDB submissions: install python3 with venv (Debian: apt install python3-venv)"
            );
        }
        let pip = Command::new(partial.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", &format!("kcidb-io=={KCIDB_IO}")])
            .status()
            .context("cannot run the venv's pip")?;
        if !pip.success() {
            bail!("pip could not install kcidb-io=={KCIDB_IO} from PyPI (is the package index reachable?)");
        }
        std::fs::rename(&partial, &venv)
            .with_context(|| format!("cannot move the venv to {}", venv.display()))?;
        Ok(())
    })?;
    Ok(python)
}

/// kcidb-io's verdict on `submission`, or its complaint as the error.
pub fn validate(cache: &Path, submission: &Path) -> Result<String> {
    let out = Command::new(python(cache)?)
        .args(["-c", CHECK])
        .arg(submission)
        .output()
        .context("cannot run kcidb-io's validator")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // jsonschema's ValidationError says what; its "On instance" line
        // says where.
        let what = err.lines().rev().find(|l| l.contains("Error:")).unwrap_or("no reason given");
        let at = err.lines().find(|l| l.starts_with("On instance")).unwrap_or("");
        bail!("kcidb-io rejects {}: {what} {at}", submission.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
