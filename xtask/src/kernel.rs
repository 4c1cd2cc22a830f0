//! `cargo xtask kernel`: Linux 7.3 with kernel-patches/ applied, configured
//! from the fragments and built, cached by source, patches and config.
//!
//! Layout under `<cache>/kernel/`:
//! - `debs/`: Debian's linux-source-7.3 package;
//! - `tree-<flavor>/`: a git repository of the pristine source (tag `base`),
//!   reset and re-patched for every build, so kernels that differ in a few
//!   files (fault patches) rebuild incrementally;
//! - `build-<flavor>/`: the `O=` output of that tree;
//! - `images/<flavor>-<key>/`: finished kernels, one per input key.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::{
    cache::Key,
    root::Root,
    step::{cached, human, step},
};

/// A kernel to build: a config flavor and optional fault patches on top of
/// the series.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `kernel-patches/config/<flavor>.config`.
    pub flavor: String,
    /// Patches from `kernel-patches/faults/`, by file stem.
    pub faults: Vec<String>,
    /// A kernel tree to use instead of Debian's linux-source-7.3.
    pub source: Option<PathBuf>,
}

/// A finished kernel.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub bzimage: PathBuf,
    /// Root of `make modules_install` (lib/modules/<release>/...).
    pub modules: PathBuf,
}

impl Image {
    /// A kernel the user built (`cargo xtask vm --kernel`), after checking
    /// that its BTF has the series' kfuncs. The BTF is read from `vmlinux`,
    /// or else from the `vmlinux` of the tree the bzImage was built in
    /// (`arch/x86/boot/bzImage`, `vmlinux` three levels up) or beside it.
    /// Modules, if any, are not taken.
    pub fn user(bzimage: &Path, vmlinux: Option<&Path>) -> Result<Image> {
        if !bzimage.is_file() {
            bail!("--kernel {} is not a file: give the path of a bzImage", bzimage.display());
        }
        // QEMU runs in the toolchain root, where the directory is mounted
        // at the same absolute path.
        let bzimage = &fs::canonicalize(bzimage)?;
        let dir = bzimage.parent().unwrap_or(Path::new("/")).to_path_buf();
        let vmlinux = match vmlinux {
            Some(v) => v.to_path_buf(),
            None => [dir.join("../../../vmlinux"), dir.join("vmlinux")]
                .into_iter()
                .find(|p| p.is_file())
                .with_context(|| {
                    format!(
                        "no vmlinux found for {} to check its BTF for the series' kfuncs: give it with --vmlinux",
                        bzimage.display()
                    )
                })?,
        };
        check_kfuncs(&vmlinux)?;
        Ok(Image { bzimage: bzimage.to_path_buf(), modules: dir.join("no-modules"), dir })
    }
}

/// That `vmlinux`'s `.BTF` names every kfunc of the series, or one
/// sentence that says which are missing and how to get them.
pub fn check_kfuncs(vmlinux: &Path) -> Result<()> {
    use object::{Object, ObjectSection};
    let data = fs::read(vmlinux).with_context(|| format!("cannot read {}", vmlinux.display()))?;
    let elf =
        object::File::parse(&*data).with_context(|| format!("{} is not an ELF file", vmlinux.display()))?;
    let btf = elf.section_by_name(".BTF").and_then(|s| s.data().ok()).with_context(|| {
        format!(
            "{} has no BTF (.BTF section): build the kernel with CONFIG_DEBUG_INFO_BTF",
            vmlinux.display()
        )
    })?;
    let named = |name: &str| {
        btf.windows(name.len() + 2)
            .any(|w| w[0] == 0 && &w[1..=name.len()] == name.as_bytes() && w[name.len() + 1] == 0)
    };
    let missing: Vec<&str> = probe_common::KFUNCS.iter().copied().filter(|k| !named(k)).collect();
    if !missing.is_empty() {
        bail!(
            "the kernel of {} lacks the series' kfuncs ({}): apply kernel-patches/000*.patch and enable \
             kernel-patches/config/debug.config, or let `cargo xtask vm` build one",
            vmlinux.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

pub struct Kernels<'a> {
    pub root: &'a Root,
    pub cache: PathBuf,
    pub workspace: PathBuf,
}

impl Kernels<'_> {
    fn patches_dir(&self) -> PathBuf {
        self.workspace.join("kernel-patches")
    }

    /// The series, in order (not the cover letter).
    pub fn series(&self) -> Result<Vec<PathBuf>> {
        let mut patches: Vec<PathBuf> = fs::read_dir(self.patches_dir())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "patch"))
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("0000-")))
            .collect();
        patches.sort();
        Ok(patches)
    }

    /// A test-only patch on top of the series: a fault (faults/) or a
    /// candidate fix of a finding (fixes/), by file stem.
    fn fault_patch(&self, name: &str) -> Result<PathBuf> {
        ["faults", "fixes"]
            .iter()
            .map(|dir| self.patches_dir().join(dir).join(format!("{name}.patch")))
            .find(|p| p.exists())
            .with_context(|| {
                format!("there is no patch {name} in kernel-patches/faults/ or kernel-patches/fixes/")
            })
    }

    /// The config fragments of a flavor: debug.config, then each part of
    /// the flavor's name (`rt+coverage` is the RT kernel with coverage).
    fn fragments(&self, flavor: &str) -> Result<Vec<PathBuf>> {
        let dir = self.patches_dir().join("config");
        // Every flavor builds on the debug configuration.
        let mut out = vec![dir.join("debug.config")];
        for part in flavor.split('+').filter(|p| *p != "debug") {
            let own = dir.join(format!("{part}.config"));
            if !own.exists() {
                bail!(
                    "there is no kernel config {part}: pick one of kernel-patches/config/*.config \
                     (joined with + to combine them, as in rt+coverage)"
                );
            }
            out.push(own);
        }
        Ok(out)
    }

    /// Make variables a flavor's parts ask for, from
    /// `kernel-patches/config/<part>.make` (one `NAME=value` per line):
    /// what Kconfig cannot say, such as profiling only some objects.
    fn make_vars(&self, flavor: &str) -> Result<(Vec<String>, Vec<PathBuf>)> {
        let dir = self.patches_dir().join("config");
        let (mut vars, mut files) = (Vec::new(), Vec::new());
        for part in flavor.split('+') {
            let file = dir.join(format!("{part}.make"));
            if !file.exists() {
                continue;
            }
            for line in fs::read_to_string(&file)?.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if !line
                    .split_once('=')
                    .is_some_and(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
                {
                    bail!("{}: \"{line}\" is not a make variable (NAME=value)", file.display());
                }
                vars.push(line.to_string());
            }
            files.push(file);
        }
        Ok((vars, files))
    }

    /// Builds the kernel unless an identical one is cached.
    pub fn build(&self, spec: &Spec) -> Result<Image> {
        let user = match &spec.source {
            Some(dir) => {
                Some(dir.canonicalize().with_context(|| format!("no kernel tree at {}", dir.display()))?)
            }
            None => None,
        };
        let deb = SourceRef::Deb(self.debian_source()?);
        let source = match &user {
            Some(dir) => SourceRef::Tree(dir.clone()),
            None => SourceRef::Deb(self.debian_source()?),
        };
        let series = self.series()?;
        let faults = spec.faults.iter().map(|f| self.fault_patch(f)).collect::<Result<Vec<_>>>()?;
        let patches: Vec<PathBuf> = series.iter().chain(&faults).cloned().collect();
        let fragments = self.fragments(&spec.flavor)?;
        let (make_vars, make_files) = self.make_vars(&spec.flavor)?;
        let mut key = Key::new().add("source", source.identity()?);
        for p in patches.iter().chain(&fragments).chain(&make_files) {
            key = key.add_file(p)?;
        }
        let mut label = spec.flavor.clone();
        if user.is_some() {
            label.push_str("+source");
        }
        for f in &spec.faults {
            label.push('+');
            label.push_str(f);
        }
        let dir = self.cache.join("kernel/images").join(format!("{label}-{}", key.finish()));
        let image = Image { bzimage: dir.join("bzImage"), modules: dir.join("modules"), dir: dir.clone() };
        if image.bzimage.exists() {
            cached(&format!("kernel {label}"), &image.bzimage.display().to_string());
            return Ok(image);
        }

        // One tree and one build directory per flavor: fault kernels and
        // a user's tree (--source) share them, so each builds only what it
        // changes.
        let tree = self.cache.join("kernel").join(format!("tree-{}", spec.flavor));
        let build = self.cache.join("kernel").join(format!("build-{}", spec.flavor));
        self.prepare_tree(&deb, &tree)?;
        let start = match &user {
            Some(dir) => {
                step(&format!("kernel {label}: take the files of {}", dir.display()), || {
                    self.overlay(&tree, dir)
                })?;
                "user"
            }
            None => "base",
        };
        step(&format!("kernel {label}: apply {} patches", patches.len()), || {
            self.apply(&tree, start, &series, &faults)
        })?;
        // The config depends on the source, the series and the fragments;
        // a fault patch changes it only if it touches a Kconfig file. Fault
        // kernels of one flavor then share one configure (about 30 s each).
        let mut config_key = Key::new().add("source", source.identity()?);
        for p in series.iter().chain(&fragments) {
            config_key = config_key.add_file(p)?;
        }
        for f in &faults {
            if fs::read_to_string(f)?.lines().any(|l| l.starts_with("+++ ") && l.contains("Kconfig")) {
                config_key = config_key.add_file(f)?;
            }
        }
        let config_key = config_key.finish();
        let stamp = build.join(".config.inputs");
        if build.join(".config").exists()
            && fs::read_to_string(&stamp).ok().as_deref() == Some(config_key.as_str())
        {
            cached(&format!("kernel {label}: configure"), &build.join(".config").display().to_string());
        } else {
            let _ = fs::remove_file(&stamp);
            step(&format!("kernel {label}: configure"), || self.configure(&tree, &build, &fragments))?;
            fs::write(&stamp, &config_key)?;
        }
        step(
            &format!("kernel {label}: build (a full build takes about 4-18 min, an incremental one 1 min)"),
            || self.make(&tree, &build, &label, &make_vars),
        )?;
        step(&format!("kernel {label}: install"), || {
            let tmp = dir.with_extension("tmp");
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp)?;
            self.root.run(
                &format!(
                    "cd '{}' && make -s O='{}' INSTALL_MOD_PATH='{}' INSTALL_MOD_STRIP=1 modules_install >/dev/null",
                    tree.display(),
                    build.display(),
                    tmp.join("modules").display()
                ),
                &[],
            )?;
            // A coverage kernel's gcov notes and the sources they were
            // compiled from: the build directory moves on with the next
            // kernel of the flavor, the counters must be read against these.
            self.root.run(
                &format!(
                    "cd '{b}' && find . -name '*.gcno' | while read -r n; do \
                       mkdir -p \"{g}/$(dirname \"$n\")\" && cp \"$n\" \"{g}/$n\" && \
                       cp '{t}'/\"${{n%.gcno}}.c\" \"{g}/${{n%.gcno}}.c\"; done",
                    b = build.display(),
                    t = tree.display(),
                    g = tmp.join("gcov").display(),
                ),
                &[],
            )?;
            fs::copy(build.join(".config"), tmp.join("config"))?;
            fs::copy(build.join("arch/x86/boot/bzImage"), tmp.join("bzImage"))?;
            let _ = fs::remove_dir_all(&dir);
            fs::rename(&tmp, &dir)?;
            Ok(())
        })?;
        Ok(image)
    }

    /// Downloads Debian's linux-source-7.3 once; returns the package path.
    fn debian_source(&self) -> Result<PathBuf> {
        let debs = self.cache.join("kernel/debs");
        fs::create_dir_all(&debs)?;
        let find = || -> Result<Option<PathBuf>> {
            Ok(fs::read_dir(&debs)?.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("linux-source-7.3_"))
                    && p.extension().is_some_and(|e| e == "deb")
            }))
        };
        if let Some(deb) = find()? {
            return Ok(deb);
        }
        step("kernel: download Debian's linux-source-7.3 (167 MB)", || {
            self.root.run(
                &format!(
                    "cd '{}' && apt-get download -q linux-source-7.3 2>&1 | grep -v unsandboxed",
                    debs.display()
                ),
                &[],
            )
        })?;
        find()?.context(
            "apt-get download linux-source-7.3 left no package behind: is trixie-backports reachable?",
        )
    }

    /// Makes `tree` a git repository of the pristine source, tagged `base`,
    /// unless it already is one of this source.
    fn prepare_tree(&self, source: &SourceRef, tree: &Path) -> Result<()> {
        let stamp = tree.with_extension("source");
        let identity = source.identity()?;
        if fs::read_to_string(&stamp).ok().as_deref() == Some(identity.as_str()) && tree.join(".git").exists()
        {
            return Ok(());
        }
        step("kernel: unpack the source into a git tree (about 1 min)", || {
            if tree.exists() {
                fs::remove_dir_all(tree)?;
            }
            fs::create_dir_all(tree)?;
            let t = tree.display();
            let SourceRef::Deb(deb) = source else { bail!("the pristine tree comes from Debian's source") };
            let unpack = format!(
                "dpkg-deb --fsys-tarfile '{}' | tar -xO ./usr/src/linux-source-7.3.tar.xz | tar -xJ -C '{t}' --strip-components=1",
                deb.display()
            );
            self.root.run(
                &format!(
                    "{unpack} && cd '{t}' && git init -q && git add -f -A && \
                     git -c user.name=nolock-probe -c user.email=nolock-probe@localhost commit -q -m source && git tag base"
                ),
                &[],
            )?;
            fs::write(&stamp, &identity)?;
            Ok(())
        })
    }

    /// Makes the working tree of `tree` the files of the user's git tree
    /// `dir` (tracked and untracked, not ignored: no build output), as
    /// commit `user` on top of `base`. Only files whose content differs
    /// from the tree's are written (rsync by checksum, without the user's
    /// times), so the build directory's objects of the others stay valid.
    fn overlay(&self, tree: &Path, dir: &Path) -> Result<()> {
        // dash has no process substitution: the two file lists go to files
        // beside the tree.
        let user_files = tree.with_extension("user-files");
        let tree_files = tree.with_extension("tree-files");
        self.root.with_mount(dir).run(
            &format!(
                "set -e; export LC_ALL=C; cd '{tree}'; git reset -q --hard base; git clean -q -fd; \
                 ug() {{ git -c safe.directory='*' -c core.quotepath=off -C '{dir}' \"$@\"; }}; \
                 ug ls-files --deleted | sort > '{tree_files}'; \
                 ug ls-files --cached --others --exclude-standard | sort | comm -23 - '{tree_files}' > '{user_files}'; \
                 rsync -rlpc --files-from='{user_files}' '{dir}/' '{tree}/'; \
                 git -c core.quotepath=off ls-files | sort > '{tree_files}'; \
                 comm -23 '{tree_files}' '{user_files}' | tr '\\n' '\\0' | xargs -0 -r rm -f --; \
                 rm -f '{tree_files}' '{user_files}'; \
                 git add -A; git -c user.name=nolock-probe -c user.email=nolock-probe@localhost \
                   commit -q --allow-empty -m 'the user tree'; git tag -f user >/dev/null",
                tree = tree.display(),
                dir = dir.display(),
                tree_files = tree_files.display(),
                user_files = user_files.display(),
            ),
            &[],
        )
    }

    /// Resets the tree to `start` (the pristine source, or a user's tree)
    /// and applies the series, then `faults`. Only the files the previous and the new patches touch change
    /// on disk, so make rebuilds only those. A tree that already carries the
    /// whole series (a developer's tree with it merged) is used as it is.
    fn apply(&self, tree: &Path, start: &str, series: &[PathBuf], faults: &[PathBuf]) -> Result<()> {
        let quote =
            |ps: &[PathBuf]| ps.iter().map(|p| format!("'{}'", p.display())).collect::<Vec<_>>().join(" ");
        let reversed: Vec<PathBuf> = series.iter().rev().cloned().collect();
        let am = "git -c user.name=nolock-probe -c user.email=nolock-probe@localhost am -q";
        self.root
            .run(
                &format!(
                    "cd '{tree}' && git reset -q --hard {start} && git clean -q -fd && \
                     if git apply --check {first} 2>/dev/null; then \
                       {am} {series} || {{ git am --abort 2>/dev/null; exit 1; }}; \
                     else \
                       for p in {reversed}; do git apply -R \"$p\" 2>/dev/null || \
                         {{ git reset -q --hard {start}; echo 'xtask: the series neither applies nor is in this tree' >&2; exit 1; }}; \
                       done; git reset -q --hard {start}; echo 'xtask: the series is already in this tree'; \
                     fi && \
                     for p in {faults}; do {am} \"$p\" || {{ git am --abort 2>/dev/null; exit 1; }}; done",
                    tree = tree.display(),
                    first = series.first().map(|p| format!("'{}'", p.display())).unwrap_or_default(),
                    series = quote(series),
                    reversed = quote(&reversed),
                    faults = quote(faults),
                ),
                &[],
            )
            .context("kernel-patches/ do not apply to this kernel source: it must be Linux 7.3")
    }

    fn configure(&self, tree: &Path, build: &Path, fragments: &[PathBuf]) -> Result<()> {
        fs::create_dir_all(build)?;
        let frags: Vec<String> = fragments.iter().map(|p| format!("'{}'", p.display())).collect();
        self.root.run(
            &format!(
                "cd '{t}' && make -s O='{b}' tinyconfig && \
                 ./scripts/kconfig/merge_config.sh -m -O '{b}' '{b}/.config' {f} >/dev/null && \
                 make -s O='{b}' olddefconfig",
                t = tree.display(),
                b = build.display(),
                f = frags.join(" ")
            ),
            &[],
        )?;
        let config = fs::read_to_string(build.join(".config"))?;
        let mut wrong = Vec::new();
        for frag in fragments {
            wrong.extend(unmet_options(&fs::read_to_string(frag)?, &config));
        }
        if !wrong.is_empty() {
            bail!(
                "the kernel config does not have what the fragments ask for (a dependency is missing): {}",
                wrong.join(", ")
            );
        }
        Ok(())
    }

    /// Runs make, printing a progress line every 30 s; the full output goes
    /// to `<build>/make.log`, whose tail is shown on failure.
    fn make(&self, tree: &Path, build: &Path, label: &str, vars: &[String]) -> Result<()> {
        let log_path = build.join("make.log");
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut child = self
            .root
            .command(
                &format!(
                    "cd '{}' && make O='{}' -j{jobs} {} bzImage modules 2>&1",
                    tree.display(),
                    build.display(),
                    vars.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(" ")
                ),
                &[],
            )?
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start make")?;
        let stdout = child.stdout.take().context("no make output")?;
        let mut log = Vec::new();
        let (mut compiled, start) = (0u64, Instant::now());
        let mut last = Instant::now();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if line.trim_start().starts_with("CC") {
                compiled += 1;
            }
            if last.elapsed().as_secs() >= 30 {
                eprintln!(
                    "xtask: kernel {label}: {compiled} files compiled, {}",
                    human(start.elapsed().as_secs_f64())
                );
                last = Instant::now();
            }
            log.push(line);
        }
        let status = child.wait()?;
        fs::write(&log_path, log.join("\n"))?;
        if !status.success() {
            let tail: Vec<&String> = log.iter().rev().take(30).collect();
            for l in tail.into_iter().rev() {
                eprintln!("  {l}");
            }
            bail!("the kernel build failed; the whole log is {}", log_path.display());
        }
        let warnings: Vec<&String> = log.iter().filter(|l| l.contains("warning:")).collect();
        if !warnings.is_empty() {
            eprintln!(
                "xtask: kernel {label}: the build printed {} warnings (see {})",
                warnings.len(),
                log_path.display()
            );
        }
        Ok(())
    }
}

enum SourceRef {
    Deb(PathBuf),
    Tree(PathBuf),
}

impl SourceRef {
    /// What identifies the source for the cache key.
    fn identity(&self) -> Result<String> {
        Ok(match self {
            SourceRef::Deb(deb) => format!(
                "deb:{}",
                deb.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ),
            SourceRef::Tree(dir) => {
                let head = std::process::Command::new("git")
                    .args(["-c", "safe.directory=*", "-C"])
                    .arg(dir)
                    .args(["describe", "--always", "--dirty"])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
                match head {
                    Some(h) => format!("tree:{}@{h}", dir.display()),
                    None => bail!(
                        "{} is not a git tree, so the tool cannot tell when it changes: use a git checkout",
                        dir.display()
                    ),
                }
            }
        })
    }
}

/// Options a fragment sets that the final config does not have as written.
pub fn unmet_options(fragment: &str, config: &str) -> Vec<String> {
    let value = |key: &str| -> String {
        for line in config.lines() {
            if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
                return v.to_string();
            }
        }
        "n".into()
    };
    let mut out = Vec::new();
    for line in fragment.lines() {
        let line = line.trim();
        let (key, want) = if let Some((k, v)) = line.split_once('=').filter(|_| line.starts_with("CONFIG_")) {
            (k, v.to_string())
        } else if let Some(k) = line.strip_prefix("# ").and_then(|r| r.strip_suffix(" is not set")) {
            (k, "n".to_string())
        } else {
            continue;
        };
        let have = value(key);
        if have != want {
            out.push(format!("{key}={want} (got {have})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_btf_or_file_is_refused_in_one_sentence() {
        // Any ELF file without .BTF: this machine's /bin/true.
        let err = format!("{:#}", check_kfuncs(Path::new("/bin/true")).unwrap_err());
        assert!(
            err.contains("has no BTF (.BTF section): build the kernel with CONFIG_DEBUG_INFO_BTF"),
            "{err}"
        );
        let err = format!("{:#}", Image::user(Path::new("/nonexistent/bzImage"), None).unwrap_err());
        assert_eq!(err, "--kernel /nonexistent/bzImage is not a file: give the path of a bzImage");
        let err = format!("{:#}", Image::user(Path::new("/bin/true"), None).unwrap_err());
        assert!(
            err.starts_with("no vmlinux found for /") && err.ends_with("give it with --vmlinux"),
            "{err}"
        );
    }

    #[test]
    fn unmet_options_are_named() {
        let frag = "# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=250\n";
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_D=250\n";
        assert_eq!(unmet_options(frag, config), ["CONFIG_B=m (got n)", "CONFIG_C=n (got y)"]);
    }

    #[test]
    fn the_shipped_fragments_parse() {
        // At run time, not env!: the unit tests run in the toolchain root,
        // whose shared target directory may hold this test binary built
        // from another checkout with the same sources.
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let dir = Path::new(&manifest).join("../kernel-patches/config");
        let debug = fs::read_to_string(dir.join("debug.config")).unwrap();
        // Against itself as a config, a fragment has nothing unmet.
        let as_config: String = debug
            .lines()
            .map(|l| match l.strip_prefix("# ").and_then(|r| r.strip_suffix(" is not set")) {
                Some(k) => format!("{k}=n\n"),
                None => format!("{l}\n"),
            })
            .collect();
        assert!(unmet_options(&debug, &as_config).is_empty());
        assert!(debug.contains("CONFIG_SLAB_NOLOCK_KFUNCS=y"));
    }
}
