//! Named scenarios: files in the repository's scenarios/ directory, built
//! into the binary so that it needs nothing else on the machine it runs on.

use anyhow::{Context, Result, bail};
use probe_common::Trigger;
use serde::Deserialize;

/// In a list of triggers: every trigger there is, so that the `all`
/// scenario needs no edit when one is added.
pub const EVERY_TRIGGER: &str = "*";

/// The triggers `names` name, in order, each once; `*` names them all.
pub fn triggers(names: &[String]) -> Result<Vec<Trigger>> {
    let mut out = Vec::new();
    for n in names {
        let named: Vec<Trigger> = if n == EVERY_TRIGGER {
            Trigger::ALL.to_vec()
        } else {
            match Trigger::from_name(n) {
                Some(t) => vec![t],
                None => bail!("there is no trigger {n}: `nolock-probe list` shows them"),
            }
        };
        for t in named {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// (name, TOML text) of every scenario.
pub const SCENARIOS: [(&str, &str); 6] = [
    ("default", include_str!("../../../../scenarios/default.toml")),
    ("all", include_str!("../../../../scenarios/all.toml")),
    ("slub-kunit", include_str!("../../../../scenarios/slub-kunit.toml")),
    ("sizes", include_str!("../../../../scenarios/sizes.toml")),
    ("bursts", include_str!("../../../../scenarios/bursts.toml")),
    ("expedited", include_str!("../../../../scenarios/expedited.toml")),
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub description: String,
    pub triggers: Vec<String>,
    pub duration: Option<u64>,
    pub payload_sizes: Option<Vec<u32>>,
    pub gfp_zero: Option<bool>,
    pub gfp_account: Option<bool>,
    pub perf_frequency: Option<u64>,
    pub every_nth: Option<u32>,
    pub rate: Option<u32>,
    pub nolock_share: Option<u32>,
    pub burst: Option<u32>,
    pub nmi_rate: Option<u32>,
    pub expedited_rate: Option<u32>,
}

pub fn parse(name: &str, text: &str) -> Result<Scenario> {
    toml::from_str(text).with_context(|| format!("scenario {name} is not valid"))
}

pub fn find(name: &str) -> Result<Scenario> {
    match SCENARIOS.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => parse(n, text),
        None => {
            let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
            bail!("there is no scenario {name}: pick one of {}", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses_and_names_real_triggers() {
        for (name, text) in SCENARIOS {
            let s = parse(name, text).unwrap();
            assert!(!s.description.is_empty(), "{name}");
            assert!(!s.triggers.is_empty(), "{name}");
            triggers(&s.triggers).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let all = find("all").unwrap();
        assert_eq!(triggers(&all.triggers).unwrap(), Trigger::ALL);
        let names = ["nmi".to_string(), "*".to_string(), "nmi".to_string()];
        let t = triggers(&names).unwrap();
        assert_eq!((t[0], t.len()), (Trigger::Nmi, Trigger::ALL.len()));
    }

    #[test]
    fn unknown_names_and_fields_are_refused() {
        assert!(find("nope").unwrap_err().to_string().contains("pick one of default, all"));
        assert!(parse("x", "description = \"d\"\ntriggers = []\nspeed = 3\n").is_err());
    }
}
