//! Build and test tasks for nolock-probe: `cargo xtask <command>`.

mod build;
mod cache;
mod coverage;
mod e2e;
mod kcidb;
mod kernel;
mod matrix;
mod root;
mod scaling;
mod step;
mod test;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::{kernel::Kernels, root::Root, step::step};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test nolock-probe")]
struct Cli {
    /// Cache directory for the toolchain root, kernels and cargo (default
    /// $NOLOCK_PROBE_CACHE, else ~/.cache/nolock-probe).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create or reuse the toolchain root.
    Setup,
    /// Build the patched Linux 7.3 kernel (cached).
    Kernel(KernelArgs),
    /// Build the BPF object.
    BuildEbpf,
    /// Build the BPF object and the static nolock-probe.
    Build,
    /// Boot the patched kernel in QEMU and run nolock-probe there.
    Vm(VmArgs),
    /// Run the tests: unit, checkpatch, the refusal on an unpatched kernel
    /// and the end-to-end run in the VM.
    Test(test::TestArgs),
    /// The second tier: long `all` soaks on the debug and the PREEMPT_RT
    /// kernel that must stay free of false alarms; their JSON goes to
    /// results/soak-<flavor>-all.json.
    Soak(test::SoakArgs),
    /// The second tier: one scenario on each kernel flavor, a combined
    /// report and one KCIDB submission over all of them (results/matrix/).
    Matrix(matrix::MatrixArgs),
    /// The second tier: bench and run at 1, 2 and 4 vCPUs, and the per-CPU
    /// rates against 1 vCPU (results/scaling/).
    Scaling(scaling::ScalingArgs),
    /// The second tier: scenarios on the coverage kernels (gcov on the
    /// nolock machinery, debug and PREEMPT_RT), the lines and branches each
    /// reached, and the lines none did (results/coverage/).
    Coverage(coverage::CoverageArgs),
    /// Run checkpatch.pl --strict on kernel-patches/.
    Checkpatch,
}

#[derive(Args, Clone)]
struct KernelArgs {
    /// Config flavor: kernel-patches/config/<NAME>.config.
    #[arg(long = "kernel-config", default_value = "debug")]
    flavor: String,
    /// A Linux 7.3 git tree to build instead of Debian's linux-source-7.3.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Also apply kernel-patches/faults/<NAME>.patch (test kernels that
    /// break kfree_rcu_nolock() on purpose) or kernel-patches/fixes/<NAME>.patch
    /// (candidate fixes of what the tool found).
    #[arg(long = "fault")]
    faults: Vec<String>,
}

#[derive(Args)]
struct VmArgs {
    #[command(flatten)]
    kernel: KernelArgs,
    /// Boot this bzImage, one you built, instead of building one; its BTF
    /// must have the series' kfuncs.
    #[arg(long = "kernel", conflicts_with_all = ["flavor", "source", "faults"])]
    bzimage: Option<PathBuf>,
    /// The vmlinux of --kernel, whose BTF is checked [default: the tree's
    /// vmlinux three levels above the bzImage, or one beside it].
    #[arg(long, requires = "bzimage")]
    vmlinux: Option<PathBuf>,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 2)]
    smp: u32,
    /// Where the JSON goes (default results/vm-<config>-<time>.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// After nolock-probe, load the in-tree slub_kunit test in the guest and
    /// save its KTAP output next to the JSON.
    #[arg(long)]
    slub_kunit: bool,
    /// Press Ctrl-C (SIGINT) this many seconds after nolock-probe attached
    /// its first program: it must still detach, drain and report.
    #[arg(long)]
    interrupt_after: Option<u64>,
    /// Crash the guest kernel (`echo c > /proc/sysrq-trigger`) this many
    /// seconds after nolock-probe attached its first program: the result is
    /// then made from the progress the run streamed, cut short.
    #[arg(long)]
    crash_after: Option<u64>,
    /// The QEMU accelerator: auto uses KVM where a probe guest boots with
    /// it (the answer is kept per host boot), else TCG.
    #[arg(long, value_enum, default_value_t)]
    accel: vm::accel::Choice,
    /// nolock-probe's arguments (default: run --duration 20).
    #[arg(last = true)]
    args: Vec<String>,
}

/// Everything the commands share.
pub struct Ctx {
    pub cache: PathBuf,
    pub workspace: PathBuf,
    pub root: Root,
    /// Built once per xtask run: tests that need the loader share it.
    built: std::cell::OnceCell<build::Artifacts>,
}

impl Ctx {
    fn new(cache_flag: Option<&Path>) -> Result<Self> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask is not in a workspace")?
            .to_path_buf();
        let cache = cache::dir(cache_flag)?;
        let root = Root::locate(&cache, &workspace);
        Ok(Ctx { cache, workspace, root, built: std::cell::OnceCell::new() })
    }

    pub fn ensure_root(&self) -> Result<()> {
        self.root.setup()
    }

    pub fn kernels(&self) -> Kernels<'_> {
        Kernels { root: &self.root, cache: self.cache.clone(), workspace: self.workspace.clone() }
    }

    pub fn kernel(&self, flavor: &str, faults: &[String], source: Option<PathBuf>) -> Result<kernel::Image> {
        self.ensure_root()?;
        self.kernels().build(&kernel::Spec { flavor: flavor.into(), faults: faults.to_vec(), source })
    }

    /// An output directory of a second-tier command: relative paths are
    /// the workspace's; made if missing.
    pub fn out_dir(&self, dir: &std::path::Path) -> Result<PathBuf> {
        let out = if dir.is_absolute() { dir.to_path_buf() } else { self.workspace.join(dir) };
        std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
        Ok(out)
    }

    pub fn build(&self) -> Result<&build::Artifacts> {
        if let Some(a) = self.built.get() {
            return Ok(a);
        }
        self.ensure_root()?;
        let artifacts = build::build_all(&self.root, &self.cache)?;
        Ok(self.built.get_or_init(|| artifacts))
    }

    /// Builds what is missing and runs nolock-probe with `args` in the VM.
    pub fn vm(
        &self,
        image: &kernel::Image,
        args: Vec<String>,
        out: PathBuf,
        guest: vm::Guest,
    ) -> Result<vm::Outcome> {
        let artifacts = self.build()?;
        let root = self.root.with_mount(&image.dir);
        let accel = vm::accel::resolve(guest.accel, &self.cache, &root, &image.bzimage)?;
        let duration = duration_of(&args);
        // TCG boots in seconds; the drain and a slow guest need some slack.
        let timeout = Duration::from_secs(duration + 240);
        step(&format!("vm: boot and run `nolock-probe {}`", args.join(" ")), || {
            vm::VmRun {
                // A kernel of the user's lives outside the cache.
                root: &root,
                cache: &self.cache,
                kernel: image,
                loader: &artifacts.loader,
                args: args.clone(),
                guest,
                accel,
                json_out: out.clone(),
                timeout,
                allow: vm::allow_list(),
            }
            .run()
        })
    }
}

/// How long nolock-probe with `args` measures, in seconds: `run`'s
/// `--duration` (default 20), or for `bench` the warm-up of each loop, then
/// per round one sample of each after its settling time, twice with
/// `--observers` (defaults: 5 loops, 1 s, 5 rounds, 1 s and 500 ms).
fn duration_of(args: &[String]) -> u64 {
    let value = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    let arg = |name: &str, default: u64| value(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    if args.first().map(String::as_str) == Some("bench") {
        let loops =
            value("--free").map_or(probe_common::BenchFree::COUNT as u64, |v| v.split(',').count() as u64);
        let passes = if args.iter().any(|a| a == "--observers") { 2 } else { 1 };
        let sample_ms = arg("--sample-secs", 1) * 1000 + arg("--settle-ms", 500);
        return loops * arg("--warmup", 1)
            + (passes * loops * arg("--samples", 5) * sample_ms).div_ceil(1000);
    }
    arg("--duration", 20)
}

fn utc_stamp() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y%m%dT%H%M%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "now".into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx::new(cli.cache_dir.as_deref())?;
    match cli.command {
        Cmd::Setup => {
            ctx.ensure_root()?;
            println!("{}", ctx.root.path.display());
        }
        Cmd::Kernel(k) => {
            let image = ctx.kernel(&k.flavor, &k.faults, k.source)?;
            println!("{}", image.bzimage.display());
        }
        Cmd::BuildEbpf => {
            ctx.ensure_root()?;
            println!("{}", build::build_ebpf(&ctx.root, &ctx.cache)?.display());
        }
        Cmd::Build => println!("{}", ctx.build()?.loader.display()),
        Cmd::Checkpatch => {
            ctx.ensure_root()?;
            test::checkpatch(&ctx)?;
        }
        Cmd::Vm(v) => {
            let image = match &v.bzimage {
                Some(bzimage) => kernel::Image::user(bzimage, v.vmlinux.as_deref())?,
                None => ctx.kernel(&v.kernel.flavor, &v.kernel.faults, v.kernel.source)?,
            };
            let label = if v.bzimage.is_some() { "own" } else { v.kernel.flavor.as_str() };
            let args =
                if v.args.is_empty() { vec!["run".into(), "--duration".into(), "20".into()] } else { v.args };
            let out = v.out.unwrap_or_else(|| {
                let faults: String = v.kernel.faults.iter().map(|f| format!("+{f}")).collect();
                ctx.workspace.join("results").join(format!("vm-{label}{faults}-{}.json", utc_stamp()))
            });
            let guest = vm::Guest {
                smp: v.smp,
                slub_kunit: v.slub_kunit,
                interrupt_after: v.interrupt_after,
                crash_after: v.crash_after,
                accel: v.accel,
            };
            let outcome = ctx.vm(&image, args, out.clone(), guest)?;
            if v.slub_kunit {
                let ktap = out.with_extension("slub_kunit.txt");
                std::fs::write(&ktap, outcome.kunit.join("\n") + "\n")?;
                eprintln!("xtask: slub_kunit output: {}", ktap.display());
            }
            eprintln!("xtask: console log: {}", outcome.console_log.display());
            if let Some(json) = &outcome.json {
                eprintln!("xtask: results: {}", json.display());
            }
            if let Some(why) = outcome.describe_failure() {
                eprintln!("xtask: the console's last lines:");
                for l in &outcome.tail[outcome.tail.len().saturating_sub(25)..] {
                    eprintln!("  | {l}");
                }
                bail!("{why}");
            }
        }
        Cmd::Test(t) => return test::run(&ctx, &t),
        Cmd::Soak(s) => return test::soak(&ctx, &s),
        Cmd::Matrix(m) => return matrix::matrix(&ctx, &m),
        Cmd::Scaling(s) => return scaling::scaling(&ctx, &s),
        Cmd::Coverage(c) => return coverage::coverage(&ctx, &c),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::duration_of;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// The guest's time limit follows what the bench will do.
    #[test]
    fn a_bench_lasts_its_warmups_and_rounds() {
        assert_eq!(duration_of(&args("run")), 20);
        assert_eq!(duration_of(&args("run --duration 5")), 5);
        // 5 loops: 5 s of warm-up, 5 rounds of 5 samples of 1.5 s.
        assert_eq!(duration_of(&args("bench")), 5 + 38);
        assert_eq!(duration_of(&args("bench --free kfree_nolock --samples 2 --settle-ms 0")), 1 + 2);
        assert_eq!(duration_of(&args("bench --free a,b --samples 10 --sample-secs 2 --observers")), 2 + 100);
    }
}
