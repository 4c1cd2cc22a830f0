//! `cargo xtask test`: every test this project has, from the host-side
//! unit tests to the end-to-end run in the VM.

use std::{
    fs,
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};
use clap::Args;

use probe_common::{Path, Trigger};
use probe_result::{Document, RunReport};

use crate::{Ctx, e2e, kcidb, step::step, vm};

#[derive(Args)]
pub struct TestArgs {
    /// Only the tests that need no VM (unit tests, checkpatch, refusal).
    #[arg(long)]
    pub no_vm: bool,
    /// Skip the tests on the PREEMPT_RT kernel (a second full kernel build
    /// the first time, about 7 minutes here).
    #[arg(long)]
    pub no_rt: bool,
}

#[derive(Args)]
pub struct SoakArgs {
    /// How long each soak runs, in minutes.
    #[arg(long, default_value_t = 10)]
    pub minutes: u64,
    /// Only the debug kernel.
    #[arg(long)]
    pub no_rt: bool,
    /// Skip the KASAN kernel (a third full kernel build the first time).
    #[arg(long)]
    pub no_kasan: bool,
    /// Only the KASAN checks, not the soaks.
    #[arg(long, conflicts_with = "no_kasan")]
    pub kasan_only: bool,
}

/// `cargo xtask soak`: the `all` scenario for `minutes` on the debug and
/// the PREEMPT_RT kernel, each a passing verdict with a clean console
/// that reached every trigger as the short test demands. What a
/// 10-second run cannot show: no false alarm of any verdict over
/// millions of objects. Each result is kept in results/.
pub fn soak(ctx: &Ctx, args: &SoakArgs) -> Result<ExitCode> {
    ctx.ensure_root()?;
    let flavors: &[&str] = match (args.kasan_only, args.no_rt) {
        (true, _) => &[],
        (false, true) => &["debug"],
        (false, false) => &["debug", "rt"],
    };
    let mut failed = 0;
    let mut outcomes = Vec::new();
    // The short KASAN runs first: they fail fast where the soaks take long.
    if !args.no_kasan {
        let name = "kasan: sheaves in use and a clean run on the KASAN kernel".to_string();
        outcomes.push((name.clone(), step(&name, || kasan_clean(ctx))));
        let name = "kasan: the double-queue fault shows as a KASAN report".to_string();
        outcomes.push((name.clone(), step(&name, || kasan_double_free(ctx))));
    }
    for flavor in flavors {
        let name = format!("soak: scenario all for {} min on the {flavor} kernel", args.minutes);
        outcomes.push((name.clone(), step(&name, || soak_run(ctx, flavor, args.minutes))));
    }
    for (name, r) in &outcomes {
        match r {
            Ok(json) => eprintln!("PASS  {name}: {}", json.display()),
            Err(e) => {
                failed += 1;
                eprintln!("FAIL  {name}: {e:#}");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The default scenario on generic KASAN: it passes, and the per-CPU rcu
/// sheaves stay in use (KASAN must not turn the sheaf path off, or the
/// tool would only see fallbacks there), as the tool's path counters and
/// the kernel's own SLUB_STATS agree.
fn kasan_clean(ctx: &Ctx) -> Result<PathBuf> {
    // KASAN makes every call several times dearer, and fentry_deferred_work
    // feeds its own irq_work (its objects fall back, which queues the work
    // again): uncapped, that loop held both CPUs in irq_work for 45 s and
    // the 10-s run's first progress line came at 55 s (39,845 locked_kprobe,
    // 18,929 perf_event and 35,884 fentry_deferred_work calls). Capped at
    // 500 calls a second per trigger and CPU it still fills and queues
    // sheaves.
    let (json, report) = passing_run_report(
        ctx,
        "kasan",
        "kasan",
        &["run", "--duration", "10", "--rate", "500", "--observe", "full"],
    )?;
    let kept = ctx.workspace.join("results/vm-kasan-10s.json");
    fs::copy(&json, &kept).with_context(|| format!("cannot keep the result as {}", kept.display()))?;
    let t = &report.totals;
    if t.sheaf == 0 || t.sheaf_call_rcu + t.sheaf_call_rcu_deferred == 0 {
        bail!(
            "no object went through a per-CPU rcu sheaf on KASAN ({} sheaf, {} fallback, {} full sheaves): {}",
            t.sheaf,
            t.fallback,
            t.sheaf_call_rcu + t.sheaf_call_rcu_deferred,
            kept.display()
        );
    }
    if report.slub_stats.available && report.slub_stats.others_free_rcu_sheaf < 0 {
        bail!("SLUB_STATS disagree on KASAN: {}", report.slub_stats.explanation);
    }
    Ok(kept)
}

/// A double free on KASAN: the kernel's own report names it, and the
/// console verdict names that report.
fn kasan_double_free(ctx: &Ctx) -> Result<PathBuf> {
    let outcome = guest_run(
        ctx,
        "kasan",
        &["double-queue"],
        "kasan-double-queue",
        &["run", "--duration", "8", "--rate", "500"],
    )?;
    let json = outcome.json.clone().context("the KASAN double-free run left no JSON")?;
    let doc = Document::read(&json)?;
    let named = doc.verdict().reasons.iter().any(|r| r.contains("[kasan] BUG: KASAN: "));
    if !named {
        bail!("no KASAN report named by the verdict ({}): {:?}", json.display(), doc.verdict().reasons);
    }
    Ok(json)
}

fn soak_run(ctx: &Ctx, flavor: &str, minutes: u64) -> Result<PathBuf> {
    let secs = (minutes * 60).to_string();
    let (json, report) = passing_run_report(
        ctx,
        flavor,
        &format!("soak-{flavor}"),
        &["run", "--scenario", "all", "--duration", &secs],
    )?;
    let mut problems = e2e::all_problems(&report, 7, flavor == "rt");
    problems.extend(e2e::reentry_problems(&report));
    let kept = ctx.workspace.join(format!("results/soak-{flavor}-all.json"));
    fs::copy(&json, &kept).with_context(|| format!("cannot keep the soak's result as {}", kept.display()))?;
    if !problems.is_empty() {
        bail!("the soak ({}) does not show what it must:\n  {}", kept.display(), problems.join("\n  "));
    }
    Ok(kept)
}

/// Runs every test; each failure is reported, the others still run.
pub fn run(ctx: &Ctx, args: &TestArgs) -> Result<ExitCode> {
    ctx.ensure_root()?;
    let mut results: Vec<(&str, Result<()>)> = Vec::new();
    results.push(("unit tests", step("test: unit tests", || unit(ctx))));
    results.push(("checkpatch", step("test: checkpatch --strict", || checkpatch(ctx))));
    results.push((
        "the coverage list names functions of the kernel",
        step("test: kernel-patches/config/coverage.functions against the debug kernel", || {
            coverage_list(ctx)
        }),
    ));
    results.push((
        "refuses an unpatched kernel",
        step("test: refusal on the host's unpatched kernel", || refusal(ctx)),
    ));
    results.push((
        "output into a closed pipe",
        step("test: list, report and export into `| head`", || closed_pipes(ctx)),
    ));
    results.push((
        "KCIDB submissions pass kcidb-io",
        step("test: export --format kcidb against kcidb-io's validator", || kcidb_submission(ctx)),
    ));
    if !args.no_vm {
        results.push(("end-to-end in the VM", step("test: end-to-end run in the VM", || end_to_end(ctx))));
        results.push((
            "all triggers on the debug kernel",
            step("test: scenario all on the debug kernel", || all_scenario(ctx, "debug")),
        ));
        if !args.no_rt {
            results.push((
                "all triggers on the RT kernel",
                step("test: scenario all on the RT kernel", || all_scenario(ctx, "rt")),
            ));
            results.push((
                "lock_contention on RT still hits its lockdep report",
                step("test: the lock_contention finding on the RT kernel", || rt_lock_contention(ctx)),
            ));
        }
        results.push((
            "no premature frees under expedited grace periods",
            step("test: scenario expedited on the debug kernel", || expedited_scenario(ctx)),
        ));
        results.push((
            "--rate keeps calls per CPU under the limit",
            step("test: a rate-limited run on the debug kernel", || rate_limit(ctx)),
        ));
        results.push((
            "Ctrl-C stops a run that still drains and reports",
            step("test: an interrupted run on the debug kernel", || interrupted_run(ctx)),
        ));
        results.push((
            "a kernel crash mid-run still leaves a result, cut short",
            step("test: a run whose debug kernel crashes (sysrq-c)", || crashed_run(ctx)),
        ));
        results.push((
            "bench times every pair loop, interleaved",
            step("test: nolock-probe bench on the debug kernel", || bench_run(ctx)),
        ));
        results.push((
            "bursts held in a map",
            step("test: scenario bursts on the debug kernel", || bursts_scenario(ctx)),
        ));
        results.push((
            "compare flags the deferred work run one tick late",
            step("test: compare against the delay-deferred-work fault kernel", || stage_regression(ctx)),
        ));
        results.push((
            "--source builds a developer's tree incrementally and runs it",
            step("test: cargo xtask vm --source on a git tree with the series as commits", || {
                source_tree(ctx)
            }),
        ));
        for fault in &e2e::FAULTS {
            let name =
                format!("test: fault kernel {} fails with its whole reason: {}", fault.name, fault.class);
            results.push((fault.name, step(&name, || fault_run(ctx, fault))));
        }
    }
    eprintln!();
    let mut failed = 0;
    for (name, r) in &results {
        match r {
            Ok(()) => eprintln!("PASS  {name}"),
            Err(e) => {
                failed += 1;
                eprintln!("FAIL  {name}: {e:#}");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The workspace's unit tests, on the root's Rust (aya needs 1.98). The
/// BPF object is built first: a test holds the program catalogues to it.
fn unit(ctx: &Ctx) -> Result<()> {
    let object = crate::build::build_ebpf(&ctx.root, &ctx.cache)?;
    ctx.root.run(
        "cargo test -q --workspace --exclude probe-ebpf 2>&1",
        &[("NOLOCK_PROBE_BPF_OBJECT_FILE", object.display().to_string())],
    )
}

/// The coverage list against the debug kernel's source and symbol table.
fn coverage_list(ctx: &Ctx) -> Result<()> {
    ctx.kernel("debug", &[], None)?;
    let kernel = ctx.cache.join("kernel");
    let n = crate::coverage::check_list(
        &ctx.workspace,
        &kernel.join("tree-debug"),
        &kernel.join("build-debug/System.map"),
    )?;
    eprintln!("xtask: the {n} functions of the coverage list are in the debug kernel");
    Ok(())
}

/// Every patch of the series passes `checkpatch.pl --strict` with no error,
/// warning or check.
pub fn checkpatch(ctx: &Ctx) -> Result<()> {
    // checkpatch.pl comes with the kernel tree, which the kernel build
    // prepares (and which is cached, so this is quick after the first time).
    ctx.kernel("debug", &[], None)?;
    let tree = ctx.cache.join("kernel/tree-debug");
    for patch in ctx.kernels().series()? {
        let out = ctx
            .root
            .command(
                &format!(
                    "cd '{}' && ./scripts/checkpatch.pl --strict --no-signoff --terse '{}'",
                    tree.display(),
                    patch.display()
                ),
                &[],
            )?
            .output()
            .context("cannot run checkpatch.pl")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success()
            || text
                .lines()
                .any(|l| l.contains(": WARNING:") || l.contains(": ERROR:") || l.contains(": CHECK:"))
        {
            bail!("checkpatch.pl --strict complains about {}:\n{text}", patch.display());
        }
    }
    Ok(())
}

/// The static nolock-probe, run on this machine's kernel (which has no
/// series), must refuse with its one sentence and exit status 2.
fn refusal(ctx: &Ctx) -> Result<()> {
    let loader = &ctx.build()?.loader;
    let btf = fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default();
    if btf.windows(18).any(|w| w == b"bpf_kmalloc_nolock") {
        eprintln!("xtask: skipped: this machine's kernel has the series, so there is nothing to refuse");
        return Ok(());
    }
    let out =
        Command::new(loader).args(["run", "--duration", "1"]).output().context("cannot run nolock-probe")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = "nolock-probe: the running kernel lacks the nolock-probe kfuncs";
    if out.status.code() != Some(2)
        || !stderr.starts_with(want)
        || stderr.trim_end().lines().count() != 1
        || !stderr.contains("apply kernel-patches/")
    {
        bail!(
            "expected exit 2 and one sentence starting with `{want}` that names kernel-patches/, got {:?}: {stderr}",
            out.status.code()
        );
    }
    Ok(())
}

/// `list`, `report` and `export` writing into a pipe whose reader has gone
/// (`| head` that has read what it wanted), on this machine: exit 0, as
/// they would have, and no panic. The reader is gone before the first
/// write, so every run meets the closed pipe.
fn closed_pipes(ctx: &Ctx) -> Result<()> {
    let loader = &ctx.build()?.loader;
    let result = ctx.workspace.join("results/vm-debug-20s.json").display().to_string();
    let commands: [&[&str]; 3] =
        [&["list"], &["report", &result], &["export", "--format", "bencher", &result]];
    for args in commands {
        let mut child = Command::new(loader)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("cannot run nolock-probe")?;
        drop(child.stdout.take());
        let out = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(0) || !stderr.is_empty() {
            bail!(
                "`nolock-probe {}` into a closed pipe exited with {:?}, not 0, saying: {stderr}",
                args.join(" "),
                out.status.code()
            );
        }
    }
    Ok(())
}

/// Two committed results (debug and RT) merged into one KCIDB submission
/// pass kcidb-io, KernelCI's own validator; the same submission with the
/// tool's name as its origin (what the export wrote before) does not.
fn kcidb_submission(ctx: &Ctx) -> Result<()> {
    let dir = ctx.cache.join("test-results");
    fs::create_dir_all(&dir)?;
    let prefix = dir.join("kcidb-matrix");
    let committed = |name: &str| ctx.workspace.join("results").join(name).display().to_string();
    tool(
        ctx,
        &[
            "export",
            "--format",
            "kcidb",
            "--output",
            &prefix.display().to_string(),
            &committed("vm-debug-all-10s.json"),
            &committed("vm-rt-all-10s.json"),
        ],
        0,
    )?;
    let submission = prefix.with_extension("kcidb.json");
    eprintln!("xtask: kcidb-io: {}", kcidb::validate(&ctx.cache, &submission)?);
    let mut bad: serde_json::Value = serde_json::from_str(&fs::read_to_string(&submission)?)?;
    bad["tests"][0]["origin"] = "nolock-probe".into();
    let bad_path = dir.join("kcidb-bad-origin.json");
    fs::write(&bad_path, bad.to_string())?;
    match kcidb::validate(&ctx.cache, &bad_path) {
        Ok(v) => bail!("kcidb-io took a submission with origin `nolock-probe`: {v}"),
        Err(e) if e.to_string().contains("does not match") => Ok(()),
        Err(e) => bail!("kcidb-io rejected the bad origin, but not for its pattern: {e:#}"),
    }
}

/// Boots kernel `flavor` (with `faults`) in the 2-vCPU guest and runs
/// `nolock-probe args` there; its JSON, if any, goes to
/// `<cache>/test-results/<name>.json`.
fn guest_run(ctx: &Ctx, flavor: &str, faults: &[&str], name: &str, args: &[&str]) -> Result<vm::Outcome> {
    guest_run_with(ctx, flavor, faults, name, args, vm::Guest::DEFAULT)
}

fn guest_run_with(
    ctx: &Ctx,
    flavor: &str,
    faults: &[&str],
    name: &str,
    args: &[&str],
    guest: vm::Guest,
) -> Result<vm::Outcome> {
    let faults: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
    let image = ctx.kernel(flavor, &faults, None)?;
    let out = ctx.cache.join(format!("test-results/{name}.json"));
    let _ = fs::remove_file(&out);
    ctx.vm(&image, args.iter().map(|a| a.to_string()).collect(), out, guest)
}

/// A guest run that must pass with a clean console: its JSON's path and
/// the document.
fn passing_run(ctx: &Ctx, flavor: &str, name: &str, args: &[&str]) -> Result<(PathBuf, Document)> {
    passing_outcome(guest_run(ctx, flavor, &[], name, args)?)
}

fn passing_outcome(outcome: vm::Outcome) -> Result<(PathBuf, Document)> {
    if let Some(why) = outcome.describe_failure() {
        bail!("{why} (console: {})", outcome.console_log.display());
    }
    let json = outcome.json.context("the guest sent no JSON back")?;
    let doc = Document::read(&json)?;
    Ok((json, doc))
}

/// A passing guest run of `nolock-probe run`: its JSON's path and result.
fn passing_run_report(ctx: &Ctx, flavor: &str, name: &str, args: &[&str]) -> Result<(PathBuf, RunReport)> {
    let (json, doc) = passing_run(ctx, flavor, name, args)?;
    match doc {
        Document::Run(r) => Ok((json, *r)),
        _ => bail!("{} is not a run's result", json.display()),
    }
}

/// The `all` scenario on kernel `flavor`: every trigger fired in its
/// intended context or is listed as unsupported with its reason.
fn all_scenario(ctx: &Ctx, flavor: &str) -> Result<()> {
    let (json, report) = passing_run_report(
        ctx,
        flavor,
        &format!("all-{flavor}"),
        &["run", "--scenario", "all", "--duration", "10"],
    )?;
    if report.plan.triggers != Trigger::ALL {
        bail!("the all scenario planned {:?}, not every trigger", report.plan.triggers);
    }
    let mut problems = e2e::all_problems(&report, 7, flavor == "rt");
    problems.extend(e2e::reentry_problems(&report));
    if !problems.is_empty() {
        bail!(
            "the all scenario on {flavor} ({}) does not show what it must:\n  {}",
            json.display(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// A finding of this tool, kept as a test: on PREEMPT_RT, kmalloc_nolock()
/// from the contention_begin tracepoint (inside rtlock_slowlock_locked(),
/// an rt_mutex wait_lock held) trylocks a slab lock, and rt_spin_trylock()
/// takes another wait_lock: lockdep reports recursive locking. Scenarios
/// leave the trigger out on RT (readiness::trigger_hazard); named, it must
/// still show the report. When a kernel fixes it, this test fails, and
/// the hazard can go.
fn rt_lock_contention(ctx: &Ctx) -> Result<()> {
    let outcome = guest_run(
        ctx,
        "rt",
        &[],
        "rt-lock-contention",
        &["run", "--trigger", "lock_contention", "--duration", "10"],
    )?;
    let recursive =
        outcome.findings.iter().any(|f| f.category == "lockdep" && f.line.contains("recursive locking"));
    let console = fs::read_to_string(&outcome.console_log).unwrap_or_default();
    let path = ["trigger_lock_contention", "bpf_kmalloc_nolock", "rt_spin_trylock", "rt_mutex_slowtrylock"];
    let missing: Vec<&str> = path.iter().copied().filter(|f| !console.contains(f)).collect();
    if !recursive || !missing.is_empty() {
        bail!(
            "no lockdep recursive-locking report through {} (missing: {missing:?}; {}); if the kernel \
             fixed it, drop the hazard in readiness::trigger_hazard (console: {})",
            path.join(" -> "),
            outcome.describe_failure().unwrap_or_else(|| "the run passed".into()),
            outcome.console_log.display()
        );
    }
    Ok(())
}

/// The `expedited` scenario: rcu sheaves and kvfree_rcu() batches that
/// end on expedited grace periods are not premature. A check against the
/// single-word cookie of get_state_synchronize_rcu() called about one
/// object in a hundred premature here
/// (results/vm-debug-expedited-single-word-cookie.json).
fn expedited_scenario(ctx: &Ctx) -> Result<()> {
    let (json, report) = passing_run_report(
        ctx,
        "debug",
        "expedited",
        &["run", "--scenario", "expedited", "--duration", "10"],
    )?;
    let requested = report.expedited_gps.as_ref().map_or(0, |e| e.requested);
    let reclaimed = report.totals.reclaimed;
    if requested < 100 || reclaimed == 0 {
        bail!(
            "the expedited run ({}) asked for {requested} expedited grace periods and saw {reclaimed} \
             objects reclaimed; it must have both",
            json.display()
        );
    }
    Ok(())
}

/// The `bursts` scenario: objects held across hits as kptrs in a map are
/// freed in bursts that fill rcu sheaves, and the drain frees what
/// unfinished bursts still hold.
fn bursts_scenario(ctx: &Ctx) -> Result<()> {
    let (json, report) =
        passing_run_report(ctx, "debug", "bursts", &["run", "--scenario", "bursts", "--duration", "8"])?;
    let burst = u64::from(report.plan.burst);
    if burst < 2 {
        bail!("the bursts scenario ran with burst {burst}, not a real burst");
    }
    let problems = e2e::burst_problems(&report, burst);
    if !problems.is_empty() {
        bail!("the bursts run ({}) does not show what it must:\n  {}", json.display(), problems.join("\n  "));
    }
    Ok(())
}

/// `--rate`, from a scenario file the guest gets from the host: no
/// trigger calls more often than asked on any CPU, and one hit far more
/// often calls about that often.
fn rate_limit(ctx: &Ctx) -> Result<()> {
    let file = ctx.cache.join("test-results/rate-limited.toml");
    fs::create_dir_all(file.parent().unwrap_or(&ctx.cache))?;
    fs::write(
        &file,
        "description = \"two triggers, 100 calls a second each on each CPU\"\n\
         triggers = [\"syscall\", \"hrtimer\"]\nrate = 100\nduration = 5\n",
    )?;
    let (json, report) =
        passing_run_report(ctx, "debug", "rate", &["run", "--scenario", &file.display().to_string()])?;
    if report.plan.scenario != "rate-limited" {
        bail!(
            "the run from scenario file {} is filed as {}, not rate-limited",
            file.display(),
            report.plan.scenario
        );
    }
    let problems = e2e::rate_problems(&report, 100, Trigger::Syscall);
    if !problems.is_empty() {
        bail!(
            "the rate-limited run ({}) does not keep its rate:\n  {}",
            json.display(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Ctrl-C (SIGINT) ten seconds after a 60-second run attached its first
/// program (a signal while the programs attach is kept for the stress):
/// the run stops, and still detaches, drains and writes a report that
/// accounts for every object.
fn interrupted_run(ctx: &Ctx) -> Result<()> {
    let guest = vm::Guest { interrupt_after: Some(10), ..vm::Guest::DEFAULT };
    let outcome = guest_run_with(ctx, "debug", &[], "interrupted", &["run", "--duration", "60"], guest)?;
    let (json, doc) = passing_outcome(outcome)?;
    let Document::Run(report) = doc else { bail!("{} is not a run's result", json.display()) };
    let problems = e2e::interrupted_problems(&report, 60.0);
    if !problems.is_empty() {
        bail!(
            "the interrupted run ({}) does not show what it must:\n  {}",
            json.display(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// The kernel panics (sysrq-c) ten seconds after a 60-second run attached
/// its first program, seconds into the stress: `cargo xtask vm` still
/// writes a result, cut short, from the progress streamed until then, that
/// follows the schema and fails naming the crash and what the tool had
/// seen.
fn crashed_run(ctx: &Ctx) -> Result<()> {
    let guest = vm::Guest { crash_after: Some(10), ..vm::Guest::DEFAULT };
    let outcome = guest_run_with(ctx, "debug", &[], "crashed", &["run", "--duration", "60"], guest)?;
    let json = outcome.json.context("the crashed run left no result")?;
    let doc = Document::read(&json)?;
    let Document::CutShort(c) = &doc else {
        bail!(
            "{} is not a run cut short (did the stress start within 10 s of the first attach? console: {}): {:?}",
            json.display(),
            outcome.console_log.display(),
            doc.verdict().reasons
        )
    };
    let problems = e2e::cut_short_problems(c);
    if !problems.is_empty() {
        bail!(
            "the crashed run ({}) does not show what it must:\n  {}",
            json.display(),
            problems.join("\n  ")
        );
    }
    tool(ctx, &["validate", &json.display().to_string()], 0)?;
    Ok(())
}

/// `nolock-probe bench`, in a guest booted as `cargo xtask vm --kernel`
/// boots a user's kernel: the debug kernel's bzImage by its path, its BTF
/// checked in the debug tree's vmlinux (shared with the fault kernels,
/// which all have the series). Every pair loop measured on both vCPUs,
/// bare and with the path observers, and the document follows its schema
/// and exports.
fn bench_run(ctx: &Ctx) -> Result<()> {
    let built = ctx.kernel("debug", &[], None)?;
    let vmlinux = ctx.cache.join("kernel/build-debug/vmlinux");
    let image = crate::kernel::Image::user(&built.bzimage, Some(&vmlinux))?;
    let json = ctx.cache.join("test-results/bench.json");
    let _ = fs::remove_file(&json);
    let args = ["bench", "--samples", "2", "--warmup", "1", "--observers"].map(String::from).to_vec();
    let (json, doc) = passing_outcome(ctx.vm(&image, args, json, vm::Guest::DEFAULT)?)?;
    let Document::Bench(report) = doc else { bail!("{} is not a bench's result", json.display()) };
    let problems = e2e::bench_problems(&report, 2, 2);
    if !problems.is_empty() {
        bail!("the bench ({}) does not show what it must:\n  {}", json.display(), problems.join("\n  "));
    }
    tool(ctx, &["validate", &json.display().to_string()], 0)?;
    // A Bencher export (not a result, so read as plain JSON): the rate is
    // there, under the name dashboards file it by.
    let bmf: serde_json::Value = serde_json::from_str(&tool(
        ctx,
        &["export", "--format", "bencher", &json.display().to_string()],
        0,
    )?)?;
    let rate = bmf.pointer("/nolock-probe~1bench~1kfree_rcu_nolock.ops_per_s/throughput/value");
    if rate.and_then(serde_json::Value::as_f64).is_none_or(|r| r <= 0.0) {
        bail!("the bench's Bencher export has no kfree_rcu_nolock throughput: {bmf}");
    }
    Ok(())
}

/// `--source TREE` as a developer uses it: a git tree of Linux 7.3 with
/// the series applied as commits, and one of their own on top (a
/// localversion file, so the booted kernel shows it is this tree's). It is
/// built in the debug flavor's cached tree and build directory, so only
/// what differs is rebuilt, and a short run on it passes.
fn source_tree(ctx: &Ctx) -> Result<()> {
    // The pristine tree the debug kernel is built from, and the series.
    ctx.kernel("debug", &[], None)?;
    let pristine = ctx.cache.join("kernel/tree-debug");
    let series = ctx.kernels().series()?;
    let mut key = crate::cache::Key::new();
    for p in &series {
        key = key.add_file(p)?;
    }
    let user = ctx.cache.join(format!("test-source/linux-{}", key.finish()));
    if !user.join(".git").exists() {
        step("test: a developer's tree: the series as commits on Linux 7.3", || {
            let _ = fs::remove_dir_all(ctx.cache.join("test-source"));
            let am = "git -c user.name=dev -c user.email=dev@localhost am -q";
            let partial = user.with_extension("partial");
            ctx.root.run(
                &format!(
                    "git clone -q --branch base '{pristine}' '{partial}' && cd '{partial}' && \
                     git checkout -q -b dev && {am} {patches} && echo -source-test > localversion-test && \
                     git add -f localversion-test && \
                     git -c user.name=dev -c user.email=dev@localhost commit -q -m 'localversion: test'",
                    pristine = pristine.display(),
                    partial = partial.display(),
                    patches =
                        series.iter().map(|p| format!("'{}'", p.display())).collect::<Vec<_>>().join(" "),
                ),
                &[],
            )?;
            fs::rename(&partial, &user)?;
            Ok(())
        })?;
    }
    let image = ctx.kernel("debug", &[], Some(user.clone()))?;
    let json = ctx.cache.join("test-results/source-tree.json");
    let _ = fs::remove_file(&json);
    let args = ["run", "--duration", "5"].map(String::from).to_vec();
    let (json, doc) = passing_outcome(ctx.vm(&image, args, json, vm::Guest::DEFAULT)?)?;
    let Document::Run(report) = doc else { bail!("{} is not a run's result", json.display()) };
    if !report.kernel.release.contains("-source-test") {
        bail!(
            "the guest ran kernel {}, not the one built from {} (its release has -source-test)",
            report.kernel.release,
            user.display()
        );
    }
    Ok(())
}

/// A short run on a kernel with `fault` applied must fail with `reason`.
fn fault_run(ctx: &Ctx, fault: &e2e::Fault) -> Result<()> {
    let outcome = guest_run(
        ctx,
        "debug",
        &[fault.name],
        &format!("fault-{}", fault.name),
        &[&["run", "--duration", "8"], fault.run_args].concat(),
    )?;
    let json = outcome.json.as_ref().context("the fault run left no JSON")?;
    let doc = Document::read(json)?;
    let problems = fault.problems(&doc);
    if !problems.is_empty() {
        bail!("the fault run ({}) does not show the fault:\n  {}", json.display(), problems.join("\n  "));
    }
    // A verdict the tool reached itself exits 1; a console report or a
    // crash is the VM's to tell.
    let tool_failed = matches!(&doc, Document::Run(r) if r.checks.iter().any(|c| !c.pass));
    if tool_failed && outcome.exit != Some(1) {
        bail!("nolock-probe exited with {:?} on the fault kernel, not 1", outcome.exit);
    }
    // The regression gate fires against the healthy run of the same length.
    let healthy = ctx.cache.join("test-results/e2e.json");
    if fault.name == "premature-free" && healthy.exists() {
        tool(ctx, &["compare", &healthy.display().to_string(), &json.display().to_string()], 1)?;
    }
    Ok(())
}

/// The stage gate on a real shift: the same runs (with the repeats the
/// README recommends) on the debug kernel and on one whose deferred irq_work
/// runs at the next tick. The run on the slow kernel passes (nothing is
/// freed early or lost), and `compare` fails naming the fallback's queued
/// stage (from about 40 us to about 2 ms). fentry_barn_get_empty_sheaf
/// falls back on every call, so every repeat has fallbacks to time.
fn stage_regression(ctx: &Ctx) -> Result<()> {
    let args = [
        "run",
        "--trigger",
        "fentry_barn_get_empty_sheaf,perf_event,locked_kprobe,fentry_deferred_work",
        "--repeat",
        "3",
        "--duration",
        "8",
    ];
    let (base, _) = passing_run(ctx, "debug", "stage-base", &args)?;
    let (slow, _) = passing_outcome(guest_run(ctx, "debug", &["delay-deferred-work"], "stage-slow", &args)?)?;
    let out = tool(ctx, &["compare", &base.display().to_string(), &slow.display().to_string()], 1)?;
    let line = "regressed: path fallback, stage queued (p50): ";
    if !out.lines().any(|l| l.starts_with(line)) {
        bail!("compare did not flag the fallback's queued stage (no line starting `{line}`):\n{out}");
    }
    Ok(())
}

/// A short VM run on the debug kernel: every trigger on both vCPUs, the
/// paths add up, the locked-slab kprobe falls back, the console is clean.
fn end_to_end(ctx: &Ctx) -> Result<()> {
    // In full mode: the independent path observers check the cheap mode's
    // count, which every other run of the suite uses.
    let outcome = guest_run(ctx, "debug", &[], "e2e", &["run", "--duration", "10", "--observe", "full"])?;
    let accel = outcome.accel;
    let (json, doc) = passing_outcome(outcome)?;
    let Document::Run(report) = doc else { bail!("{} is not a run's result", json.display()) };
    let mut problems = e2e::foundation_problems(&report, 2);
    problems.extend(e2e::machine_problems(&report, accel.name()));
    problems.extend(e2e::verification_problems(&report, &[Path::SheafImmediate, Path::SheafDeferred]));
    problems.extend(e2e::observe_agreement_problems(&report));
    if !problems.is_empty() {
        bail!("the run's JSON ({}) does not show what it must:\n  {}", json.display(), problems.join("\n  "));
    }
    // The dashboard side, on this real result: it follows the schema and
    // every export format is produced.
    tool(ctx, &["validate", &json.display().to_string()], 0)?;
    let prefix = json.with_extension("");
    for (format, kinds) in [
        ("github-action-benchmark", &["smaller-is-better", "bigger-is-better"][..]),
        ("bencher", &["bmf"][..]),
        ("kcidb", &["kcidb"][..]),
    ] {
        tool(
            ctx,
            &[
                "export",
                "--format",
                format,
                "--output",
                &prefix.display().to_string(),
                &json.display().to_string(),
            ],
            0,
        )?;
        for kind in kinds {
            let file = prefix.with_extension(format!("{kind}.json"));
            let text = fs::read_to_string(&file)
                .with_context(|| format!("export --format {format} wrote no {}", file.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
        }
    }
    kcidb::validate(&ctx.cache, &prefix.with_extension("kcidb.json"))?;
    // Two committed repeated runs of one scenario pass the gate (the fault
    // run below shows that it can fail).
    let committed = |name: &str| ctx.workspace.join("results").join(name).display().to_string();
    tool(ctx, &["compare", &committed("baseline.json"), &committed("vm-debug-repeat3.json")], 0)?;
    Ok(())
}

/// Runs the static nolock-probe on this machine (export, compare, validate
/// need no kernel support) and checks its exit status; returns stdout.
fn tool(ctx: &Ctx, args: &[&str], want: i32) -> Result<String> {
    let out = Command::new(&ctx.build()?.loader).args(args).output().context("cannot run nolock-probe")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() != Some(want) {
        bail!(
            "`nolock-probe {}` exited with {:?}, not {want}:\n{stdout}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}
