//! The toolchain root: a Debian sid chroot with Rust >= 1.98 and matching
//! rust-src, LLVM 22, clang, a static bpf-linker, the kernel's build
//! dependencies, QEMU and busybox. Everything that needs those tools runs
//! inside it through [`Root::run`].

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{
    cache::Key,
    step::{cached, step},
};

const PACKAGES_SCRIPT: &str = include_str!("../scripts/root-packages.sh");
const BPF_LINKER_SCRIPT: &str = include_str!("../scripts/bpf-linker.sh");
const BPF_LINKER_VERSION: &str = "0.13.0";
const SUITE: &str = "sid";

#[derive(Clone)]
pub struct Root {
    /// The chroot itself.
    pub path: PathBuf,
    /// The cache directory, bind-mounted at the same path inside.
    cache: PathBuf,
    /// The checkout, bind-mounted at the same path inside.
    workspace: PathBuf,
    /// More directories bind-mounted at their own paths (a user's kernel
    /// tree for `--source`).
    extra: Vec<PathBuf>,
}

pub fn require_host_root(what: &str) -> Result<()> {
    // SAFETY: geteuid() has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "{what} must run as root (it uses debootstrap, chroot and mounts): from a user's shell, put \
             `sudo -E env \"PATH=$PATH\"` in front"
        );
    }
    Ok(())
}

/// The Debian mirror the machine's own apt configuration names.
pub fn debian_mirror() -> Result<String> {
    let mut texts = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if matches!(p.extension().and_then(|e| e.to_str()), Some("list" | "sources")) {
                if let Ok(t) = fs::read_to_string(&p) {
                    texts.push(t);
                }
            }
        }
    }
    texts.iter().find_map(|t| mirror_in(t)).context(
        "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d: add one for apt first",
    )
}

/// The first `debian` archive URI (not the security archive) in one apt
/// sources file, in either the one-line or the deb822 format.
pub fn mirror_in(text: &str) -> Option<String> {
    let is_archive = |uri: &str| uri.trim_end_matches('/').ends_with("/debian") && uri.starts_with("http");
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("deb ") {
            let uri = rest.split_whitespace().find(|w| !w.starts_with('['))?;
            if is_archive(uri) {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
        if let Some(uris) = line.strip_prefix("URIs:") {
            if let Some(uri) = uris.split_whitespace().find(|u| is_archive(u)) {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

impl Root {
    /// The root for these scripts, under `cache`.
    pub fn locate(cache: &Path, workspace: &Path) -> Self {
        let key = Key::new()
            .add("suite", SUITE)
            .add("packages", PACKAGES_SCRIPT)
            .add("bpf-linker", BPF_LINKER_SCRIPT)
            .add("bpf-linker-version", BPF_LINKER_VERSION)
            .finish();
        Root {
            path: cache.join(format!("toolchain-{key}")).join("root"),
            cache: cache.to_path_buf(),
            workspace: workspace.to_path_buf(),
            extra: Vec::new(),
        }
    }

    /// The same root with `dir` visible inside too, at its own path.
    pub fn with_mount(&self, dir: &Path) -> Root {
        let mut root = self.clone();
        root.extra.push(dir.to_path_buf());
        root
    }

    fn stamp(&self, name: &str) -> PathBuf {
        self.path.with_file_name(format!("{name}.done"))
    }

    pub fn is_ready(&self) -> bool {
        self.stamp("bpf-linker").exists()
    }

    /// Creates what is missing; each step is skipped when its stamp exists.
    pub fn setup(&self) -> Result<()> {
        if self.is_ready() {
            cached("toolchain root", &self.path.display().to_string());
            return Ok(());
        }
        require_host_root("cargo xtask setup")?;
        fs::create_dir_all(self.path.parent().unwrap_or(Path::new("/")))?;
        if !self.stamp("debootstrap").exists() {
            step("toolchain root: debootstrap Debian sid (about 1 min)", || {
                ensure_debootstrap()?;
                let mirror = debian_mirror()?;
                if self.path.exists() {
                    // A half-made root from an interrupted run: start over.
                    fs::remove_dir_all(&self.path)
                        .with_context(|| format!("cannot remove {}", self.path.display()))?;
                }
                run(
                    Command::new("debootstrap")
                        .args(["--variant=minbase", SUITE])
                        .arg(&self.path)
                        .arg(&mirror),
                    "debootstrap",
                )?;
                // The root must trust what the host trusts (a proxy's CA) and
                // resolve names like the host.
                let ca = self.path.join("usr/local/share/ca-certificates");
                fs::create_dir_all(&ca)?;
                if let Ok(dir) = fs::read_dir("/usr/local/share/ca-certificates") {
                    for e in dir.flatten() {
                        fs::copy(e.path(), ca.join(e.file_name()))?;
                    }
                }
                fs::copy("/etc/resolv.conf", self.path.join("etc/resolv.conf"))
                    .context("cannot copy /etc/resolv.conf")?;
                fs::write(self.stamp("debootstrap"), "")?;
                Ok(())
            })?;
        }
        if !self.stamp("packages").exists() {
            step("toolchain root: Rust 1.98, LLVM 22, kernel and VM packages (about 3 min)", || {
                let mirror = debian_mirror()?;
                fs::write(self.path.join("tmp/root-packages.sh"), PACKAGES_SCRIPT)?;
                self.run_logged(&format!("sh /tmp/root-packages.sh '{mirror}'"), "packages")?;
                fs::write(self.stamp("packages"), "")?;
                Ok(())
            })?;
        }
        step("toolchain root: static bpf-linker (about 1-5 min)", || {
            fs::write(self.path.join("tmp/bpf-linker.sh"), BPF_LINKER_SCRIPT)?;
            self.run_logged(&format!("sh /tmp/bpf-linker.sh {BPF_LINKER_VERSION}"), "bpf-linker")?;
            fs::write(self.stamp("bpf-linker"), "")?;
            Ok(())
        })
    }

    /// Runs `script` with sh inside the root, in the current directory, with
    /// the cache and the checkout mounted at their own paths. The mounts live
    /// in a private mount namespace and vanish when the command ends.
    /// Like [`Root::run`], with the output in `<toolchain>/<name>.log`
    /// instead of the terminal; its tail is shown if the step fails.
    fn run_logged(&self, script: &str, name: &str) -> Result<()> {
        let log_path = self.path.with_file_name(format!("{name}.log"));
        let log = fs::File::create(&log_path)?;
        let status = self
            .command(script, &[])?
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("cannot start unshare")?;
        if !status.success() {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            for l in text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev() {
                eprintln!("  {l}");
            }
            bail!(
                "`{script}` failed in the toolchain root ({status}); the whole log is {}",
                log_path.display()
            );
        }
        Ok(())
    }

    pub fn run(&self, script: &str, env: &[(&str, String)]) -> Result<()> {
        let status = self.command(script, env)?.status().context("cannot start unshare")?;
        if !status.success() {
            bail!("`{}` failed in the toolchain root ({status})", script.lines().next().unwrap_or(script));
        }
        Ok(())
    }

    /// The checkout the root was located for.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Like [`Root::run`], returning what the script printed.
    pub fn output(&self, script: &str, env: &[(&str, String)]) -> Result<String> {
        let out = self
            .command(script, env)?
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("cannot start unshare")?;
        if !out.status.success() {
            bail!(
                "`{}` failed in the toolchain root ({})",
                script.lines().next().unwrap_or(script),
                out.status
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Like [`Root::run`], returning the command so the caller can redirect
    /// its output.
    pub fn command(&self, script: &str, env: &[(&str, String)]) -> Result<Command> {
        let cwd = std::env::current_dir()?;
        let mut inner = String::from("cd \"$NP_CWD\" && ");
        inner.push_str(script);
        // $1 the root, $2 the script, then the directories to mount.
        let mounts = "set -e; r=\"$1\"; s=\"$2\"; shift 2; mount -t proc proc \"$r/proc\"; \
             mount --rbind /sys \"$r/sys\"; mount --rbind /dev \"$r/dev\"; \
             for d in \"$@\"; do mkdir -p \"$r$d\"; mount --bind \"$d\" \"$r$d\"; done; \
             exec chroot \"$r\" /bin/sh -c \"$s\"";
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", mounts, "sh"])
            .arg(&self.path)
            .arg(inner)
            .arg(&self.cache)
            .arg(&self.workspace)
            .args(&self.extra)
            .env_clear()
            .env("NP_CWD", cwd)
            .env("HOME", "/root")
            .env("PATH", "/opt/bpf-linker/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("CARGO_HOME", self.cache.join("cargo-home"))
            .env("CARGO_TARGET_DIR", self.cache.join("target"))
            // Freshness by content, not mtime: every checkout (a clean
            // clone, a developer's tree) shares the cached target
            // directory, and a file edited before another checkout's build
            // would otherwise look older than that build's artifacts.
            .env("CARGO_UNSTABLE_CHECKSUM_FRESHNESS", "true")
            // The BPF build needs -Z flags on the release compiler. Every
            // cargo in the root gets the same value: proc-macro2's build
            // script watches it, and a change would rebuild every proc
            // macro the loader shares with the BPF crate.
            .env("RUSTC_BOOTSTRAP", "1")
            .env("LANG", "C.UTF-8")
            .env("TERM", std::env::var("TERM").unwrap_or_else(|_| "dumb".into()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(cmd)
    }
}

fn ensure_debootstrap() -> Result<()> {
    if Command::new("debootstrap").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("xtask: debootstrap is missing, installing it with apt-get");
    run(Command::new("apt-get").args(["install", "-y", "-q", "debootstrap"]), "apt-get install debootstrap")
        .context("debootstrap is missing and apt-get could not install it: install the debootstrap package")
}

pub fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_read_from_both_apt_formats() {
        // A placeholder host (RFC 2606 .invalid), not a real mirror.
        let archive = ["http:", "", "mirror.invalid", "debian"].join("/");
        let deb822 = format!("Types: deb\n# a comment\nURIs: {archive}\nSuites: bookworm\n");
        assert_eq!(mirror_in(&deb822), Some(archive.clone()));
        let oneline = format!("deb [arch=amd64] {archive}/ bookworm main\n");
        assert_eq!(mirror_in(&oneline), Some(archive.clone()));
        let security = format!("URIs: {archive}-security\n");
        assert_eq!(mirror_in(&security), None);
    }
}
