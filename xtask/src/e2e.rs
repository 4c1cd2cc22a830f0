//! What the end-to-end test demands of a VM run's JSON.

use serde_json::Value;

pub const TRIGGERS: [&str; 3] = ["locked_kprobe", "perf_event", "fentry_deferred_work"];

/// Every problem with a foundation run's report; empty means it passed.
pub fn foundation_problems(report: &Value, cpus: u32) -> Vec<String> {
    let mut problems = Vec::new();
    if report["verdict"]["pass"] != Value::Bool(true) {
        problems.push(format!(
            "the verdict is not pass: {}",
            report["verdict"]["reasons"]
        ));
    }
    let triggers = report["triggers"].as_array().cloned().unwrap_or_default();
    for name in TRIGGERS {
        let Some(t) = triggers.iter().find(|t| t["name"] == name) else {
            problems.push(format!("trigger {name} is missing from the report"));
            continue;
        };
        for cpu in 0..cpus {
            let calls = t["per_cpu"]
                .as_array()
                .and_then(|v| v.iter().find(|c| c["cpu"] == cpu))
                .and_then(|c| c["calls"].as_u64())
                .unwrap_or(0);
            if calls == 0 {
                problems.push(format!("trigger {name} made no calls on CPU {cpu}"));
            }
        }
        let total = &t["total"];
        let n = |k: &str| total[k].as_u64().unwrap_or(0);
        if n("sheaf") + n("fallback") != n("freed_rcu") {
            problems.push(format!(
                "trigger {name}: sheaf {} + fallback {} != kfree_rcu_nolock() calls {}",
                n("sheaf"),
                n("fallback"),
                n("freed_rcu")
            ));
        }
    }
    if let Some(t) = triggers.iter().find(|t| t["name"] == "locked_kprobe") {
        if t["total"]["fallback"].as_u64().unwrap_or(0) == 0 {
            problems.push("the locked-slab kprobe never fell back to defer_kfree_rcu()".into());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trigger(name: &str, calls: [u64; 2], sheaf: u64, fallback: u64) -> Value {
        json!({
            "name": name,
            "per_cpu": [{"cpu": 0, "calls": calls[0]}, {"cpu": 1, "calls": calls[1]}],
            "total": {"calls": calls[0] + calls[1], "freed_rcu": sheaf + fallback, "sheaf": sheaf, "fallback": fallback},
        })
    }

    fn good() -> Value {
        json!({
            "verdict": {"pass": true, "reasons": []},
            "triggers": [
                trigger("locked_kprobe", [5, 5], 4, 6),
                trigger("perf_event", [3, 3], 6, 0),
                trigger("fentry_deferred_work", [2, 1], 3, 0),
            ],
        })
    }

    #[test]
    fn a_good_run_passes() {
        assert_eq!(foundation_problems(&good(), 2), Vec::<String>::new());
    }

    #[test]
    fn each_requirement_fires() {
        let mut r = good();
        r["triggers"][1]["per_cpu"][1]["calls"] = json!(0);
        assert_eq!(
            foundation_problems(&r, 2),
            ["trigger perf_event made no calls on CPU 1"]
        );

        let mut r = good();
        r["triggers"][0] = trigger("locked_kprobe", [5, 5], 10, 0);
        assert_eq!(
            foundation_problems(&r, 2),
            ["the locked-slab kprobe never fell back to defer_kfree_rcu()"]
        );

        let mut r = good();
        r["triggers"][2]["total"]["sheaf"] = json!(2);
        assert_eq!(
            foundation_problems(&r, 2),
            ["trigger fentry_deferred_work: sheaf 2 + fallback 0 != kfree_rcu_nolock() calls 3"]
        );

        let mut r = good();
        r["triggers"].as_array_mut().unwrap().remove(2);
        r["verdict"] = json!({"pass": false, "reasons": ["x"]});
        let p = foundation_problems(&r, 2);
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
