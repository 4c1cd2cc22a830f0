//! Which QEMU accelerator boots the guest: KVM where a KVM guest really
//! boots on this host, else TCG. Tried, never guessed: /dev/kvm can exist
//! and still hang a guest (a PVM host) or abort QEMU on `-cpu host`. The
//! answer is kept per host boot, so one probe serves every run.

use std::{
    fs,
    path::Path,
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::root::Root;

/// `--accel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Choice {
    /// KVM if a KVM guest boots here, else TCG.
    #[default]
    Auto,
    /// KVM, or fail saying why not.
    Kvm,
    /// TCG (emulation) without trying KVM.
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// The name QEMU and the guest's `nolock_probe.accel=` use.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// With KVM the guest gets the host's CPU, and with it the PMU whose
    /// cycle overflows are NMIs.
    pub fn qemu_args(self) -> &'static str {
        match self {
            Accel::Kvm => "-accel kvm -cpu host",
            Accel::Tcg => "-accel tcg",
        }
    }
}

/// What booting a KVM guest showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Boots,
    Fails(String),
}

/// A KVM guest reaches root mounting in about a second; TCG in five.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines a kernel prints only once it has booted to mounting its root:
/// the probe guest has no initramfs and no disk, so it stops there.
const BOOTED: [&str; 2] = ["VFS: Unable to mount root fs", "Freeing unused kernel image"];

/// The probe's verdict from the guest's output and how QEMU ended
/// (`None`: still running at the deadline, then killed).
pub fn judge(lines: &[String], exit: Option<i32>) -> Probe {
    if lines.iter().any(|l| BOOTED.iter().any(|b| l.contains(b))) {
        return Probe::Boots;
    }
    match exit {
        None => Probe::Fails(format!(
            "a KVM guest did not boot within {} s{}",
            PROBE_TIMEOUT.as_secs(),
            if lines.is_empty() { " and printed nothing" } else { "" }
        )),
        Some(code) => {
            let said = lines
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map_or("nothing".into(), |l| l.trim().to_string());
            Probe::Fails(format!("QEMU with KVM exited with {code} before the guest booted, saying: {said}"))
        }
    }
}

/// Boots `bzimage` with KVM, one vCPU and no root, and watches for it to
/// get as far as mounting one.
fn probe(root: &Root, bzimage: &Path) -> Result<Probe> {
    let qemu = format!(
        "exec qemu-system-x86_64 {} -smp 1 -m 256M -nodefaults -no-reboot -display none -serial stdio \
         -kernel '{}' -append 'console=ttyS0 panic=-1 loglevel=4'",
        Accel::Kvm.qemu_args(),
        bzimage.display()
    );
    let mut child = root
        .command(&qemu, &[])?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start QEMU")?;
    let rx = super::output_lines(&mut child);
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut lines = Vec::new();
    let exit = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break child.wait()?.code().or(Some(-1)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if judge(&lines, Some(0)) == Probe::Boots {
            break Some(0);
        }
        if Instant::now() > deadline {
            break None;
        }
    };
    // Booted, hung or gone: the probe guest is not needed any more.
    let _ = child.kill();
    let _ = child.wait();
    Ok(judge(&lines, exit))
}

/// The probe's answer for this host boot, from the cache or made now.
fn probe_cached(cache: &Path, root: &Root, bzimage: &Path) -> Result<Probe> {
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let root_key = root.path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let file =
        cache.join("vm").join(format!("kvm-probe-{}-{}", boot_id.trim(), root_key.unwrap_or_default()));
    if let Ok(text) = fs::read_to_string(&file) {
        return Ok(match text.trim().strip_prefix("fails: ") {
            Some(why) => Probe::Fails(why.to_string()),
            None => Probe::Boots,
        });
    }
    let found = crate::step::step("vm: trying KVM (a probe guest)", || probe(root, bzimage))?;
    fs::create_dir_all(file.parent().unwrap_or(cache))?;
    let text = match &found {
        Probe::Boots => "boots".to_string(),
        Probe::Fails(why) => format!("fails: {why}"),
    };
    fs::write(&file, text + "\n")?;
    Ok(found)
}

/// The accelerator for `choice`, asking `probe` only when KVM is wanted;
/// with what to tell the user.
pub fn choose(choice: Choice, probe: impl FnOnce() -> Result<Probe>) -> Result<(Accel, String)> {
    Ok(match choice {
        Choice::Tcg => (Accel::Tcg, "TCG, as --accel tcg asks".into()),
        Choice::Kvm | Choice::Auto => match probe()? {
            Probe::Boots => (Accel::Kvm, "KVM (a probe guest booted with it)".into()),
            Probe::Fails(why) if choice == Choice::Kvm => {
                bail!(
                    "--accel kvm: KVM does not boot a guest on this host ({why}); leave --accel out to fall back to TCG"
                )
            }
            Probe::Fails(why) => (Accel::Tcg, format!("TCG, because {why}")),
        },
    })
}

/// The accelerator for a run of `bzimage`.
pub fn resolve(choice: Choice, cache: &Path, root: &Root, bzimage: &Path) -> Result<Accel> {
    let (accel, why) = choose(choice, || probe_cached(cache, root, bzimage))?;
    eprintln!("xtask: vm: accelerator: {why}");
    Ok(accel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_probe_boots_only_when_the_kernel_got_to_its_root() {
        let booted = lines(&["[    0.9] VFS: Unable to mount root fs on unknown-block(0,0)"]);
        assert_eq!(judge(&booted, Some(0)), Probe::Boots);
        assert_eq!(judge(&booted, None), Probe::Boots);
        let Probe::Fails(hung) = judge(&[], None) else { panic!() };
        assert_eq!(hung, "a KVM guest did not boot within 30 s and printed nothing");
        let aborted = lines(&[
            "qemu-system-x86_64: kvm_init_vcpu: kvm_arch_init_vcpu failed (0): Invalid argument",
            "",
        ]);
        let Probe::Fails(why) = judge(&aborted, Some(1)) else { panic!() };
        assert!(why.starts_with("QEMU with KVM exited with 1 before the guest booted, saying: qemu-system-x86_64: kvm_init_vcpu"), "{why}");
    }

    #[test]
    fn kvm_where_it_boots_else_tcg_and_forced_kvm_says_why_not() {
        let fails = || Ok(Probe::Fails("a KVM guest did not boot within 30 s".into()));
        assert_eq!(choose(Choice::Auto, || Ok(Probe::Boots)).unwrap().0, Accel::Kvm);
        let (accel, why) = choose(Choice::Auto, fails).unwrap();
        assert_eq!((accel, why.as_str()), (Accel::Tcg, "TCG, because a KVM guest did not boot within 30 s"));
        let err = choose(Choice::Kvm, fails).unwrap_err().to_string();
        assert!(
            err.starts_with("--accel kvm: KVM does not boot a guest on this host (a KVM guest did not"),
            "{err}"
        );
        // TCG asked for: KVM is not tried at all.
        assert_eq!(choose(Choice::Tcg, || panic!("probed")).unwrap().0, Accel::Tcg);
    }
}
