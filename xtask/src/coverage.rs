//! `cargo xtask coverage`: scenarios on the coverage kernels (debug and
//! PREEMPT_RT with gcov on the nolock machinery), each result with the
//! lines and branches it reached, and a summary of the figures and of
//! every line no scenario reached (results/coverage/).

pub mod gcov;

use std::{fs, path::PathBuf, process::ExitCode};

use anyhow::{Result, bail};
use clap::Args;
use probe_result::{Document, coverage::Coverage};
use serde_json::{Value, json};

use crate::{Ctx, step::step, vm};

#[derive(Args)]
pub struct CoverageArgs {
    /// Scenarios, comma-separated; the first is the one held to --min-pct.
    #[arg(long, value_delimiter = ',', default_value = "coverage,default")]
    pub scenarios: Vec<String>,
    /// Kernels, comma-separated: debug and rt, each with
    /// kernel-patches/config/coverage.config on top.
    #[arg(long, value_delimiter = ',', default_value = "debug,rt")]
    pub flavors: Vec<String>,
    /// Seconds each run stresses [default: the scenario's].
    #[arg(long)]
    pub duration: Option<u64>,
    /// The share of the listed functions' lines the first scenario must
    /// reach on the debug kernel, in %.
    #[arg(long, default_value_t = 90.0)]
    pub min_pct: f64,
    /// Directory for each run's JSON and the summary.
    #[arg(long, default_value = "results/coverage")]
    pub out: PathBuf,
}

/// The coverage kernel of a flavor: `rt` is `rt+coverage`.
fn coverage_flavor(flavor: &str) -> String {
    if flavor == "debug" { "coverage".into() } else { format!("{flavor}+coverage") }
}

fn row(flavor: &str, scenario: &str, json: &std::path::Path, doc: &Document) -> Value {
    let verdict = doc.verdict();
    let mut row = json!({
        "flavor": flavor, "scenario": scenario,
        "result": json.file_name().map(|n| n.to_string_lossy().into_owned()),
        "pass": verdict.pass, "reasons": verdict.reasons,
    });
    if let Some(c) = coverage_of(doc) {
        row["lines"] = c.lines.into();
        row["lines_hit"] = c.lines_hit.into();
        row["line_pct"] = round(c.line_pct()).into();
        row["branches"] = c.branches.into();
        row["branches_hit"] = c.branches_hit.into();
        row["branch_pct"] = round(c.branch_pct()).into();
        row["functions"] = c
            .functions
            .iter()
            .map(|f| {
                json!({"name": f.name, "lines": f.lines, "lines_hit": f.lines_hit,
                       "line_pct": round(f.line_pct()), "branch_pct": round(f.branch_pct()),
                       "unreached": f.unreached.iter().map(|l| format!("{}:{} {}", f.file, l.line, l.text.trim()))
                           .collect::<Vec<_>>()})
            })
            .collect();
    }
    row
}

fn coverage_of(doc: &Document) -> Option<&Coverage> {
    match doc {
        Document::Run(r) => r.coverage.as_ref(),
        _ => None,
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub fn coverage(ctx: &Ctx, args: &CoverageArgs) -> Result<ExitCode> {
    ctx.ensure_root()?;
    if args.scenarios.is_empty() || args.flavors.is_empty() {
        bail!("give at least one scenario (--scenarios) and one kernel (--flavors debug,rt)");
    }
    let out = ctx.out_dir(&args.out)?;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let total = args.flavors.len() * args.scenarios.len();
    let mut n = 0;
    for flavor in &args.flavors {
        for scenario in &args.scenarios {
            n += 1;
            let json = out.join(format!("{scenario}-{flavor}.json"));
            let mut run_args = vec!["run".to_string(), "--scenario".into(), scenario.clone()];
            if let Some(d) = args.duration {
                run_args.extend(["--duration".into(), d.to_string()]);
            }
            let name = format!("coverage [{n}/{total}]: {scenario} on the {flavor} coverage kernel");
            let outcome = step(&name, || {
                let image = ctx.kernel(&coverage_flavor(flavor), &[], None)?;
                let _ = fs::remove_file(&json);
                ctx.vm(&image, run_args.clone(), json.clone(), vm::Guest::DEFAULT)
            })?;
            let Some(json) = outcome.json else {
                failures.push(format!("{scenario} on {flavor}: the guest sent no result"));
                continue;
            };
            let doc = Document::read(&json)?;
            if !doc.verdict().pass {
                failures.push(format!("{scenario} on {flavor} failed: {}", doc.verdict().reasons.join("; ")));
            }
            match coverage_of(&doc) {
                Some(c) => {
                    eprint!("{}", crate::coverage::table(scenario, flavor, c));
                    if flavor == "debug" && scenario == &args.scenarios[0] && c.line_pct() < args.min_pct {
                        failures.push(format!(
                            "{scenario} reached {:.1}% of the listed lines on debug, below {}%",
                            c.line_pct(),
                            args.min_pct
                        ));
                    }
                }
                None => failures.push(format!("{scenario} on {flavor}: the result carries no coverage")),
            }
            rows.push(row(flavor, scenario, &json, &doc));
        }
    }
    let summary = out.join("summary.json");
    let doc = json!({
        "command": format!(
            "cargo xtask coverage --scenarios {} --flavors {}{}",
            args.scenarios.join(","),
            args.flavors.join(","),
            args.duration.map_or(String::new(), |d| format!(" --duration {d}"))
        ),
        "functions": FUNCTION_LIST,
        "min_pct": args.min_pct,
        "runs": rows,
        "failures": failures,
    });
    fs::write(&summary, serde_json::to_string_pretty(&doc)? + "\n")?;
    eprintln!("xtask: coverage: summary {}", summary.display());
    for f in &failures {
        eprintln!("xtask: coverage: {f}");
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Where the list of the functions whose coverage is reported lives.
const FUNCTION_LIST: &str = "kernel-patches/config/coverage.functions";

/// The functions whose coverage is reported, from the checkout.
pub fn function_list(workspace: &std::path::Path) -> Result<Vec<probe_result::coverage::Listed>> {
    use anyhow::Context;
    let path = workspace.join(FUNCTION_LIST);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    probe_result::coverage::parse_list(&text, FUNCTION_LIST)
}

/// Every function of kernel-patches/config/coverage.functions is defined
/// in `tree`'s source, and those defined without `static` are in the
/// built kernel's symbol table (`system_map`): a rename upstream fails
/// here, naming the function, before a coverage run reports it as 0.
pub fn check_list(
    workspace: &std::path::Path,
    tree: &std::path::Path,
    system_map: &std::path::Path,
) -> Result<usize> {
    use anyhow::Context;
    let list = function_list(workspace)?;
    let symbols =
        fs::read_to_string(system_map).with_context(|| format!("cannot read {}", system_map.display()))?;
    let in_map = |name: &str| symbols.lines().any(|l| l.split_whitespace().nth(2) == Some(name));
    let mut problems = Vec::new();
    for l in &list {
        let source: Vec<String> = fs::read_to_string(tree.join(&l.file))
            .with_context(|| format!("the kernel tree has no {}", l.file))?
            .lines()
            .map(String::from)
            .collect();
        match probe_result::coverage::definition(&source, &l.name) {
            None => problems.push(format!("{} is not defined in {}", l.name, l.file)),
            Some((start, _)) => {
                let static_ = source[start as usize - 1].starts_with("static");
                if !static_ && !in_map(&l.name) {
                    problems.push(format!("{} ({}) is not in the kernel's symbol table", l.name, l.file));
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "kernel-patches/config/coverage.functions is out of date: {}; renamed or moved? update the list",
            problems.join(", ")
        );
    }
    Ok(list.len())
}

/// One run's per-function figures, as the host prints them.
fn table(scenario: &str, flavor: &str, c: &Coverage) -> String {
    let mut s = format!(
        "xtask: coverage: {scenario} on {flavor}: {}/{} lines ({:.1}%), {}/{} branches ({:.1}%)\n",
        c.lines_hit,
        c.lines,
        c.line_pct(),
        c.branches_hit,
        c.branches,
        c.branch_pct()
    );
    for f in &c.functions {
        s.push_str(&format!(
            "  {:<26} {:>4}/{:<4} {:>5.1}%  {} unreached\n",
            f.name,
            f.lines_hit,
            f.lines,
            f.line_pct(),
            f.unreached.len()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_held_to_the_source_and_the_symbol_table() {
        let dir = std::env::temp_dir().join(format!("xtask-covlist-{}", std::process::id()));
        let (ws, tree) = (dir.join("ws"), dir.join("tree"));
        fs::create_dir_all(ws.join("kernel-patches/config")).unwrap();
        fs::create_dir_all(tree.join("mm")).unwrap();
        fs::write(
            tree.join("mm/slub.c"),
            "static void helper(void)\n{\n}\n\nvoid kfree_nolock(const void *p)\n{\n}\n",
        )
        .unwrap();
        let list = ws.join("kernel-patches/config/coverage.functions");
        fs::write(&list, "mm/slub.c helper\nmm/slub.c kfree_nolock\n").unwrap();
        let map = dir.join("System.map");
        fs::write(&map, "ffffffff81000000 T kfree_nolock\n").unwrap();
        assert_eq!(check_list(&ws, &tree, &map).unwrap(), 2);
        // Out of the symbol table, and renamed in the source.
        fs::write(&map, "ffffffff81000000 T kfree_nolock_renamed\n").unwrap();
        fs::write(&list, "mm/slub.c helper_gone\nmm/slub.c kfree_nolock\n").unwrap();
        let err = check_list(&ws, &tree, &map).unwrap_err().to_string();
        assert_eq!(
            err,
            "kernel-patches/config/coverage.functions is out of date: helper_gone is not defined in mm/slub.c, \
             kfree_nolock (mm/slub.c) is not in the kernel's symbol table; renamed or moved? update the list"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
