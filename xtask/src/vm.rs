//! `cargo xtask vm`: boot the patched kernel in QEMU (TCG) with an
//! initramfs that runs nolock-probe, bring the JSON back and watch the
//! console for kernel trouble. Four serial ports, each a stream of its
//! own: the console (ttyS0), the result (ttyS1), the run's progress
//! lines (ttyS2, `run --stream`), from which a result is still made when
//! the guest dies before nolock-probe writes one, and a coverage kernel's
//! gcov counters (ttyS3).

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use probe_common::console;
use probe_result::{ConsoleReport, Document, kernel::Finding, progress::FirstFailure};

use crate::{coverage::gcov, kernel::Image, root::Root};

pub mod accel;

/// Printed by the guest's init with nolock-probe's exit status.
const EXIT_MARKER: &str = "NOLOCK-PROBE-EXIT ";
const START_MARKER: &str = "NOLOCK-PROBE-START";
const KUNIT_START: &str = "NOLOCK-PROBE-KUNIT-START";
const KUNIT_END: &str = "NOLOCK-PROBE-KUNIT-END";
/// The guest's port for `run --stream`; its host side is a file.
const GUEST_STREAM: &str = "/dev/ttyS2";

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs tmpfs /tmp
echo NOLOCK-PROBE-START
eval "set -- $(cat /nolock-probe.args)"
# Both timers below count from the first attached program, not from boot:
# loading (the verifier) takes longer with each program and on a busy host.
# An attached program is a bpf_link among the loader's open files.
after_attach() {
    until ls -l /proc/"$(pidof nolock-probe)"/fd 2>/dev/null | grep -q bpf_link; do sleep 1; done
    sleep "$1"
}
# cargo xtask vm --interrupt-after SECS: Ctrl-C, as a user would. The tool
# runs in the foreground: a background job would ignore SIGINT.
if [ -f /interrupt-after ]; then
    (after_attach "$(cat /interrupt-after)"; kill -INT "$(pidof nolock-probe)") &
fi
# cargo xtask vm --crash-after SECS: the kernel dies mid-run (sysrq-c
# panics it), and the result must still come from the streamed progress.
if [ -f /crash-after ]; then
    (after_attach "$(cat /crash-after)"; echo c > /proc/sysrq-trigger) &
fi
/nolock-probe "$@"
rc=$?
# The JSON goes out on the second serial port, the console stays readable.
if [ -f /tmp/result.json ]; then cat /tmp/result.json > /dev/ttyS1; fi
# A coverage kernel's gcov counters go out on the fourth port, base64 (the
# tty would mangle raw bytes), once nolock-probe has unloaded.
if [ -d /sys/kernel/debug/gcov ]; then
    for f in $(find /sys/kernel/debug/gcov -name '*.gcda'); do
        echo "GCDA ${f#/sys/kernel/debug/gcov}"; base64 "$f"; echo END
    done > /dev/ttyS3
fi
echo "NOLOCK-PROBE-EXIT $rc"
# The in-tree slub_kunit test, for comparison (cargo xtask vm --slub-kunit).
# KUnit reports at KERN_INFO, below the console's level: print its log.
if [ -f /slub-kunit ]; then
    echo NOLOCK-PROBE-KUNIT-START
    for m in kunit slub_kunit; do insmod "$(find /lib/modules -name "$m.ko" | head -n 1)"; done
    dmesg | sed -n '/KTAP version/,$p'
    echo NOLOCK-PROBE-KUNIT-END
fi
sleep 1
reboot -f
"#;

/// How the guest runs nolock-probe.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    pub smp: u32,
    /// Also load the in-tree slub_kunit module after nolock-probe.
    pub slub_kunit: bool,
    /// Send nolock-probe SIGINT this many seconds after it starts.
    pub interrupt_after: Option<u64>,
    /// Crash the guest kernel (sysrq-c) this many seconds after
    /// nolock-probe starts.
    pub crash_after: Option<u64>,
    /// KVM where it boots a guest, else TCG (or one of them, forced).
    pub accel: accel::Choice,
}

impl Guest {
    pub const DEFAULT: Guest = Guest {
        smp: 2,
        slub_kunit: false,
        interrupt_after: None,
        crash_after: None,
        accel: accel::Choice::Auto,
    };
}

pub struct VmRun<'a> {
    pub root: &'a Root,
    pub cache: &'a Path,
    pub kernel: &'a Image,
    pub loader: &'a Path,
    /// nolock-probe's arguments; `--output` is added for `run` and `bench`.
    pub args: Vec<String>,
    pub guest: Guest,
    /// What `guest.accel` resolved to.
    pub accel: accel::Accel,
    /// Where the JSON goes; the console log goes next to it.
    pub json_out: PathBuf,
    /// Let the run go on for this long before it counts as hung.
    pub timeout: Duration,
    /// Console lines containing one of these are not findings.
    pub allow: Vec<String>,
}

#[derive(Debug)]
pub struct Outcome {
    /// nolock-probe's exit status in the guest, if it got that far.
    pub exit: Option<i32>,
    /// Each finding in the console.
    pub findings: Vec<Finding>,
    /// The guest's uptime at the first finding (its printk timestamp).
    pub first_finding_uptime_s: Option<f64>,
    /// The first failure nolock-probe put in the kernel log.
    pub logged_failure: Option<FirstFailure>,
    /// The JSON, when nolock-probe wrote one.
    pub json: Option<PathBuf>,
    pub console_log: PathBuf,
    /// The last console lines, for error messages.
    pub tail: Vec<String>,
    /// slub_kunit's KTAP output, when it ran.
    pub kunit: Vec<String>,
    /// The accelerator the guest ran with.
    pub accel: accel::Accel,
}

impl Outcome {
    pub fn describe_failure(&self) -> Option<String> {
        if !self.findings.is_empty() {
            let lines: Vec<String> =
                self.findings.iter().map(|f| format!("  [{}] {}", f.category, f.line)).collect();
            return Some(format!("the guest kernel reported trouble:\n{}", lines.join("\n")));
        }
        match self.exit {
            None => Some("the guest stopped before nolock-probe finished".into()),
            Some(0) => None,
            Some(1) => Some("nolock-probe's verdict in the guest is FAIL (exit 1)".into()),
            Some(n) => Some(format!("nolock-probe failed in the guest (exit {n})")),
        }
    }
}

/// A scenario file named on nolock-probe's command line (`--scenario
/// PATH`, a value with a `/` or ending in `.toml`) is on the host: it goes
/// into the initramfs under /scenarios with its own name, so the result
/// files the run under the same name, and the argument is changed to match.
/// Returns the host file and where it goes in the initramfs.
pub fn guest_scenario(args: &mut [String]) -> Option<(PathBuf, String)> {
    let i = args.iter().position(|a| a == "--scenario")? + 1;
    let value = args.get(i)?;
    if !value.contains('/') && !value.ends_with(".toml") {
        return None;
    }
    let host = PathBuf::from(value);
    let guest = format!("/scenarios/{}", host.file_name()?.to_string_lossy());
    args[i] = guest.clone();
    Some((host, guest))
}

/// QEMU's stdout and stderr, line by line, from reader threads; the
/// channel closes when both end.
pub fn output_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Shell-quotes one argument for the guest's `eval "set -- ..."`.
pub fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// The guest's kernel command line; the TSC frequency is the host's (TCG
/// passes the host TSC through) because TCG has no PIT to calibrate it.
fn cmdline(accel: accel::Accel) -> String {
    let khz = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map(|mhz| (mhz * 1000.0) as u64);
    let mut c = String::from(
        "console=ttyS0,115200 rdinit=/init panic=-1 oops=panic softlockup_all_cpu_backtrace=1 log_buf_len=16M tsc=reliable quiet loglevel=4",
    );
    if let Some(khz) = khz {
        c.push_str(&format!(" tsc_early_khz={khz}"));
    }
    // For the result's `run.machine.accelerator`.
    c.push_str(&format!(" nolock_probe.accel={}", accel.name()));
    c
}

/// Adds the console's findings to the guest's result; any finding fails
/// the verdict. When the guest wrote none, the result is made from what
/// it streamed (`Document::stopped`: a run cut short, or the stub before
/// any progress came) and how it ended.
pub fn with_console(report: Option<Document>, stream: &str, outcome: &Outcome) -> Document {
    let console =
        ConsoleReport { log: outcome.console_log.display().to_string(), findings: outcome.findings.clone() };
    match report {
        Some(mut doc) => {
            doc.add_console(console);
            doc
        }
        None => {
            let first = outcome.findings.first().map(|f| (f.clone(), outcome.first_finding_uptime_s));
            Document::stopped(stream, first, outcome.exit, console, outcome.logged_failure.clone())
        }
    }
}

/// `[   12.345678] text` -> 12.345678: when the kernel printed the line.
pub fn printk_time(line: &str) -> Option<f64> {
    let t = line.trim_start().strip_prefix('[')?;
    t[..t.find(']')?].trim().parse().ok()
}

/// nolock-probe's arguments as the guest runs them: `run` and `bench`
/// write their result where init sends it to the result port, and `run`
/// streams its progress to the stream port, unless told otherwise.
pub fn guest_args(mut args: Vec<String>) -> Vec<String> {
    let given = |args: &[String], names: &[&str]| args.iter().any(|a| names.contains(&a.as_str()));
    let command = args.first().cloned().unwrap_or_default();
    if matches!(command.as_str(), "run" | "bench") && !given(&args, &["--output", "-o"]) {
        args.extend(["--output".into(), "/tmp/result.json".into()]);
    }
    if command == "run" && !given(&args, &["--stream"]) {
        args.extend(["--stream".into(), GUEST_STREAM.into()]);
    }
    args
}

/// Console lines that are not findings although a pattern matches them:
/// one substring per line in xtask/console-allowlist.txt.
pub fn allow_list() -> Vec<String> {
    include_str!("../console-allowlist.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

impl VmRun<'_> {
    fn allowed(&self, line: &str) -> bool {
        self.allow.iter().any(|a| line.contains(a.as_str()))
    }

    pub fn run(&self) -> Result<Outcome> {
        let work = self.cache.join("vm").join(format!("run-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        let stage = work.join("stage");
        for d in ["bin", "proc", "sys", "dev", "tmp", "lib"] {
            fs::create_dir_all(stage.join(d))?;
        }
        fs::copy(self.root.path.join("usr/bin/busybox"), stage.join("bin/busybox"))
            .context("busybox-static is missing from the toolchain root")?;
        fs::copy(self.loader, stage.join("nolock-probe"))?;
        let init = stage.join("init");
        fs::write(&init, INIT)?;
        let mut args: Vec<String> = self.args.clone();
        if let Some((host, guest)) = guest_scenario(&mut args) {
            let into = stage.join(guest.trim_start_matches('/'));
            fs::create_dir_all(into.parent().unwrap_or(&stage))?;
            fs::copy(&host, &into)
                .with_context(|| format!("cannot read scenario file {}", host.display()))?;
        }
        let args = guest_args(args);
        fs::write(
            stage.join("nolock-probe.args"),
            args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        )?;
        if self.kernel.modules.join("lib/modules").exists() {
            copy_tree(&self.kernel.modules.join("lib/modules"), &stage.join("lib/modules"))?;
        }
        if self.guest.slub_kunit {
            fs::write(stage.join("slub-kunit"), "")?;
        }
        if let Some(secs) = self.guest.interrupt_after {
            fs::write(stage.join("interrupt-after"), secs.to_string())?;
        }
        if let Some(secs) = self.guest.crash_after {
            fs::write(stage.join("crash-after"), secs.to_string())?;
        }
        set_executable(&init)?;
        set_executable(&stage.join("bin/busybox"))?;
        set_executable(&stage.join("nolock-probe"))?;
        let cpio = work.join("initramfs.cpio");
        self.root.run(
            &format!("cd '{}' && find . | cpio -o -H newc --quiet > '{}'", stage.display(), cpio.display()),
            &[],
        )?;

        let serial_json = work.join("ttyS1.out");
        let serial_stream = work.join("ttyS2.out");
        let serial_gcov = work.join("ttyS3.out");
        let console_log = self.json_out.with_extension("console.log");
        if let Some(dir) = self.json_out.parent() {
            fs::create_dir_all(dir)?;
        }
        let qemu = format!(
            "exec qemu-system-x86_64 {accel} -smp {smp} -m 1G -nodefaults -no-reboot -display none \
             -serial stdio -serial 'file:{json}' -serial 'file:{stream}' -serial 'file:{gcov}' -kernel '{kernel}' -initrd '{cpio}' \
             -append '{cmdline}'",
            smp = self.guest.smp,
            json = serial_json.display(),
            stream = serial_stream.display(),
            gcov = serial_gcov.display(),
            kernel = self.kernel.bzimage.display(),
            cpio = cpio.display(),
            cmdline = cmdline(self.accel),
            accel = self.accel.qemu_args(),
        );
        let mut child = self
            .root
            .command(&qemu, &[])?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start QEMU")?;
        let rx = output_lines(&mut child);

        let mut log = fs::File::create(&console_log)?;
        let start = Instant::now();
        let mut outcome = Outcome {
            exit: None,
            findings: Vec::new(),
            first_finding_uptime_s: None,
            logged_failure: None,
            json: None,
            console_log: console_log.clone(),
            tail: Vec::new(),
            kunit: Vec::new(),
            accel: self.accel,
        };
        let mut started = false;
        let mut in_kunit = false;
        // After the first finding, keep reading a little for its trace.
        let mut stop_at: Option<Instant> = None;
        loop {
            if let Some(t) = stop_at {
                if Instant::now() >= t {
                    break;
                }
            }
            if start.elapsed() > self.timeout {
                outcome.findings.push(Finding {
                    category: "timeout".into(),
                    line: format!("the guest did not finish within {}s", self.timeout.as_secs()),
                });
                break;
            }
            let line = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => l.replace('\r', ""),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            writeln!(log, "{line}")?;
            outcome.tail.push(line.clone());
            if outcome.tail.len() > 60 {
                outcome.tail.remove(0);
            }
            if line.contains(START_MARKER) {
                started = true;
                continue;
            }
            if line.contains(KUNIT_START) {
                in_kunit = true;
                continue;
            }
            if line.contains(KUNIT_END) {
                in_kunit = false;
                continue;
            }
            if in_kunit {
                outcome.kunit.push(console::strip_timestamp(&line).to_string());
            }
            if outcome.logged_failure.is_none() {
                outcome.logged_failure = FirstFailure::from_log_line(&line);
            }
            if let Some(rc) = line.strip_prefix(EXIT_MARKER) {
                outcome.exit = rc.trim().parse().ok();
                continue;
            }
            if let Some(category) = console::classify(&line).filter(|_| !self.allowed(&line)) {
                eprintln!("guest: {line}");
                if outcome.findings.is_empty() {
                    outcome.first_finding_uptime_s = printk_time(&line);
                }
                outcome.findings.push(Finding {
                    category: category.to_string(),
                    line: console::strip_timestamp(&line).to_string(),
                });
                stop_at.get_or_insert(Instant::now() + Duration::from_secs(3));
                continue;
            }
            if started {
                eprintln!("guest: {line}");
            }
        }
        let _ = child.kill();
        let _ = child.wait();

        let read = |p: &Path| {
            fs::read(p).map(|raw| String::from_utf8_lossy(&raw).replace('\r', "")).unwrap_or_default()
        };
        let text = read(&serial_json);
        let stream = read(&serial_stream);
        let report = if text.trim().is_empty() {
            None
        } else {
            Some(Document::from_json(&text).with_context(|| {
                format!("the result that came back from the guest is damaged (see {})", serial_json.display())
            })?)
        };
        // The guest's report, or when it never wrote one what it streamed,
        // with the whole console's findings; any finding fails the verdict.
        // A run that stopped with neither (a usage error) leaves nothing.
        if !stream.trim().is_empty() {
            fs::write(self.json_out.with_extension("progress.jsonl"), &stream)?;
        }
        if report.is_some() || !outcome.findings.is_empty() || !stream.trim().is_empty() {
            let mut report = with_console(report, &stream, &outcome);
            let counters = read(&serial_gcov);
            // Coverage that cannot be read fails the run, after its result
            // (without coverage) is written.
            let mut coverage = Ok(());
            if let (Document::Run(run), false) = (&mut report, counters.trim().is_empty()) {
                coverage = gcov::parse_dump(&counters)
                    .and_then(|dump| gcov::read(self.root, self.kernel, &dump, &work.join("gcov")))
                    .map(|c| run.coverage = Some(c));
            }
            fs::write(&self.json_out, report.to_json_pretty()?)?;
            outcome.json = Some(self.json_out.clone());
            coverage.with_context(|| {
                format!(
                    "the result {} has no coverage: the kernel's counters could not be read",
                    self.json_out.display()
                )
            })?;
        }
        let _ = fs::remove_dir_all(&work);
        Ok(outcome)
    }
}

fn set_executable(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type()?;
        if ty.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ty.is_file() {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_go_into_the_guest() {
        let mut args: Vec<String> =
            ["run", "--scenario", "./my/rate.toml", "--duration", "5"].map(String::from).into();
        assert_eq!(
            guest_scenario(&mut args),
            Some((PathBuf::from("./my/rate.toml"), "/scenarios/rate.toml".into()))
        );
        assert_eq!(args[2], "/scenarios/rate.toml");
        let mut named: Vec<String> = ["run", "--scenario", "all"].map(String::from).into();
        assert_eq!(guest_scenario(&mut named), None);
        assert_eq!(named[2], "all");
    }

    #[test]
    fn arguments_survive_the_guest_shell() {
        assert_eq!(quote("run"), "'run'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    fn outcome(findings: Vec<Finding>) -> Outcome {
        Outcome {
            exit: None,
            findings,
            first_finding_uptime_s: None,
            logged_failure: None,
            json: None,
            console_log: PathBuf::from("c.log"),
            tail: vec![],
            kunit: vec![],
            accel: accel::Accel::Tcg,
        }
    }

    #[test]
    fn console_findings_fail_the_report_or_make_a_stub() {
        let o = outcome(vec![Finding {
            category: "lockdep".into(),
            line: "WARNING: inconsistent lock state".into(),
        }]);
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let guest = Document::read(&PathBuf::from(dir).join("../results/vm-debug-20s.json")).unwrap();
        assert!(guest.verdict().pass);
        let r = with_console(Some(guest.clone()), "", &o);
        assert!(!r.verdict().pass);
        assert_eq!(r.verdict().reasons, ["console: [lockdep] WARNING: inconsistent lock state"]);
        let Document::Run(run) = &r else { panic!("not a run") };
        assert_eq!(run.console.as_ref().unwrap().findings[0].category, "lockdep");
        let r = with_console(Some(guest), "", &outcome(vec![]));
        assert!(r.verdict().pass);
        let stub = with_console(None, "", &o);
        assert!(matches!(stub, Document::Incomplete(_)));
        assert_eq!(stub.verdict().reasons.len(), 2);
    }

    /// A guest that panicked after streaming progress leaves a run cut
    /// short, placed in the run by the panic's printk timestamp.
    #[test]
    fn a_crash_after_progress_is_cut_short() {
        let line = "[   41.503211] Kernel panic - not syncing: sysrq triggered crash";
        let mut o = outcome(vec![Finding {
            category: console::classify(line).unwrap().into(),
            line: console::strip_timestamp(line).into(),
        }]);
        o.first_finding_uptime_s = printk_time(line);
        assert_eq!(o.first_finding_uptime_s, Some(41.503211));
        let progress = probe_result::Progress {
            schema_version: probe_result::SCHEMA_VERSION,
            scenario: "default".into(),
            repeat: 1,
            elapsed_s: 11.0,
            duration_s: 60,
            uptime_s: Some(40.5),
            triggers: [(
                probe_common::Trigger::Syscall,
                probe_common::TriggerCounters { calls: 7, ..Default::default() },
            )]
            .into(),
            in_flight: Some(0),
            first_failure: None,
        };
        let stream = serde_json::to_string(&progress).unwrap() + "\n";
        let doc = with_console(None, &stream, &o);
        let Document::CutShort(c) = &doc else { panic!("not cut short: {doc:?}") };
        assert_eq!(c.crash.run_s.map(|s| (s * 10.0).round()), Some(120.0));
        assert_eq!(
            doc.verdict().reasons[..2],
            [
                "cut short at 12.0 s of 60 s (guest uptime 41.5 s): [panic] Kernel panic - not syncing: sysrq \
                 triggered crash",
                "before it: no invariant had failed after 11 s",
            ]
        );
    }

    #[test]
    fn the_guest_streams_runs_and_keeps_what_it_is_told() {
        let args = |a: &[&str]| guest_args(a.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            args(&["run", "--duration", "5"]),
            ["run", "--duration", "5", "--output", "/tmp/result.json", "--stream", "/dev/ttyS2"]
        );
        assert_eq!(args(&["run", "--stream", "-", "-o", "x"]), ["run", "--stream", "-", "-o", "x"]);
        assert_eq!(args(&["bench"]), ["bench", "--output", "/tmp/result.json"]);
        assert_eq!(args(&["list"]), ["list"]);
        assert_eq!(printk_time("no stamp"), None);
    }

    #[test]
    fn the_allow_list_parses() {
        assert!(allow_list().iter().all(|l| !l.starts_with('#')));
    }

    #[test]
    fn failures_are_described() {
        let mut o = Outcome { exit: Some(0), ..outcome(vec![]) };
        assert_eq!(o.describe_failure(), None);
        o.exit = None;
        assert!(o.describe_failure().unwrap().contains("stopped before"));
        o.findings
            .push(Finding { category: "lockdep".into(), line: "WARNING: inconsistent lock state".into() });
        assert!(o.describe_failure().unwrap().contains("[lockdep] WARNING: inconsistent lock state"));
    }
}
