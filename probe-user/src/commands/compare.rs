//! `nolock-probe compare BASE NEW`: per metric, the change and its spread,
//! and the gate (`judge::gate`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use probe_result::{Document, run::Observe};

use crate::judge::gate;

/// The lines of the nolock machinery the base run reached and the new one
/// did not, with their source, when both ran on a coverage kernel.
fn coverage_lost(base: &Document, new: &Document) -> String {
    let (Document::Run(b), Document::Run(n)) = (base, new) else { return String::new() };
    let (Some(b), Some(n)) = (&b.coverage, &n.coverage) else { return String::new() };
    let lost = n.lost_since(b);
    if lost.is_empty() {
        return "coverage: every line the base reached, the new run reached too\n".into();
    }
    let mut s = format!(
        "coverage went down: {} lines the base reached, the new run did not:\n",
        lost.iter().map(|(_, l)| l.len()).sum::<usize>()
    );
    for (function, lines) in lost {
        for l in lines {
            s.push_str(&format!("  {function}:{} {}\n", l.line, l.text.trim()));
        }
    }
    s
}

/// How a result told each call's path, where the mode shapes its figures:
/// a run's, or a bench's with observed samples.
fn observe_mode(doc: &Document) -> Option<Observe> {
    match doc {
        Document::Run(r) => Some(r.plan.observe),
        Document::Bench(b) if b.plan.observers => Some(b.plan.observe),
        _ => None,
    }
}

/// A warning when the two results observed in different modes: the full
/// mode's trampolines on `__kfree_rcu_sheaf()` are in its call times and
/// rates, the cheap mode's are not.
fn observe_note(base: &Document, new: &Document) -> String {
    match (observe_mode(base), observe_mode(new)) {
        (Some(b), Some(n)) if b != n => format!(
            "note: the base observed in {} mode and the new result in {} mode (--observe): call times and \
             rates carry different observer costs, so a change in them may be the tool's, not the kernel's\n",
            b.name(),
            n.name()
        ),
        _ => String::new(),
    }
}

/// A warning when two benches' observed samples had different observer
/// sets: run's whole set since `plan.run_observers`, the path observers
/// alone before.
fn observer_set_note(base: &Document, new: &Document) -> String {
    let set = |d: &Document| match d {
        Document::Bench(b) if b.plan.observers => Some(b.plan.run_observers),
        _ => None,
    };
    match (set(base), set(new)) {
        (Some(b), Some(n)) if b != n => {
            let name =
                |whole: bool| if whole { "run's whole set of observers" } else { "the path observers only" };
            format!(
                "note: the base's observed samples had {} and the new result's {}: their observed rates and \
                 ratios measure different things\n",
                name(b),
                name(n)
            )
        }
        _ => String::new(),
    }
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    pub base: PathBuf,
    pub new: PathBuf,
    /// Regression thresholds [default: the repository's results/thresholds.toml].
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
}

/// Prints the comparison; false (exit 1) when a gated metric regressed.
pub fn compare(a: &CompareArgs) -> Result<bool> {
    let thresholds = match &a.thresholds {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        None => gate::DEFAULT_THRESHOLDS.to_string(),
    };
    let thresholds = gate::parse_thresholds(&thresholds)?;
    let (base, new) = (Document::read(&a.base)?, Document::read(&a.new)?);
    let rows = gate::compare(&base, &new, &thresholds);
    let regressed = gate::describe_regressions(&rows);
    let last = if regressed.is_empty() { "no gated metric regressed\n" } else { &regressed };
    super::print(&format!(
        "{}{}{}{}{last}",
        observe_note(&base, &new),
        observer_set_note(&base, &new),
        gate::render(&rows),
        coverage_lost(&base, &new)
    ))?;
    Ok(regressed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn results_of_different_modes_get_a_note() {
        let base = testing::committed_run("vm-debug-20s.json");
        let mut new = base.clone();
        new.plan.observe = Observe::Cheap;
        let (base, new) = (Document::Run(Box::new(base)), Document::Run(Box::new(new)));
        assert_eq!(observe_note(&base, &base), "");
        let note = observe_note(&base, &new);
        assert!(
            note.starts_with("note: the base observed in full mode and the new result in cheap mode"),
            "{note}"
        );
    }

    #[test]
    fn benches_with_different_observer_sets_get_a_note() {
        let base = testing::committed_bench("bench-debug.json");
        let mut new = base.clone();
        new.plan.run_observers = !base.plan.run_observers;
        let (base, new) = (Document::Bench(Box::new(base)), Document::Bench(Box::new(new)));
        assert_eq!(observer_set_note(&base, &base), "");
        assert!(observer_set_note(&base, &new).starts_with("note: the base's observed samples had "));
    }
}
