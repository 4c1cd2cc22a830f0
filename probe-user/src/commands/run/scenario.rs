//! Scenarios: the named ones are files in the repository's scenarios/
//! directory, built into the binary so that it needs nothing else on the
//! machine it runs on; any other TOML file of the same keys is taken by
//! its path (scenarios/example.toml documents every key).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
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
pub const SCENARIOS: [(&str, &str); 7] = [
    ("default", include_str!("../../../../scenarios/default.toml")),
    ("all", include_str!("../../../../scenarios/all.toml")),
    ("slub-kunit", include_str!("../../../../scenarios/slub-kunit.toml")),
    ("sizes", include_str!("../../../../scenarios/sizes.toml")),
    ("bursts", include_str!("../../../../scenarios/bursts.toml")),
    ("expedited", include_str!("../../../../scenarios/expedited.toml")),
    ("coverage", include_str!("../../../../scenarios/coverage.toml")),
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

/// Parses a scenario; a problem is one sentence that names `origin` (the
/// scenario or its file), the line and the key.
pub fn parse(origin: &str, text: &str) -> Result<Scenario> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end_matches('\n').replace('\n', " ");
        // A missing key has no line; the message names it.
        match e.span().filter(|_| !message.starts_with("missing field")) {
            Some(span) => {
                let start = span.start.min(text.len());
                let line = text[..start].matches('\n').count() + 1;
                let line_text = text.lines().nth(line - 1).unwrap_or("");
                let key = line_text.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.is_empty());
                match key {
                    Some(key) => anyhow!("{origin} line {line}, key `{key}`: {message}"),
                    None => anyhow!("{origin} line {line}: {message}"),
                }
            }
            None => anyhow!("{origin}: {message}"),
        }
    })
}

/// Whether `name` is a file's path rather than a built-in scenario's name.
fn is_path(name: &str) -> bool {
    name.contains('/') || name.ends_with(".toml")
}

/// A built-in scenario by name, or a scenario file by path (anything with
/// a `/` or ending in `.toml`): the name the result files it under (a
/// file's stem) and the scenario.
pub fn find(name: &str) -> Result<(String, Scenario)> {
    if is_path(name) {
        let path = Path::new(name);
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read scenario file {name}"))?;
        let stem = path.file_stem().map_or_else(|| name.to_string(), |s| s.to_string_lossy().into_owned());
        return Ok((stem, parse(&format!("scenario file {name}"), &text)?));
    }
    match SCENARIOS.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => Ok((n.to_string(), parse(&format!("scenario {n}"), text)?)),
        None => {
            let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
            bail!(
                "there is no scenario {name}: pick one of {}, or give a scenario file's path",
                names.join(", ")
            )
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
        let (_, all) = find("all").unwrap();
        assert_eq!(triggers(&all.triggers).unwrap(), Trigger::ALL);
        let names = ["nmi".to_string(), "*".to_string(), "nmi".to_string()];
        let t = triggers(&names).unwrap();
        assert_eq!((t[0], t.len()), (Trigger::Nmi, Trigger::ALL.len()));
    }

    #[test]
    fn unknown_names_and_fields_are_refused() {
        assert!(find("nope").unwrap_err().to_string().contains("pick one of default, all"));
        let err = |text: &str| parse("scenario file x.toml", text).unwrap_err().to_string();
        assert_eq!(
            err("description = \"d\"\ntriggers = []\nspeed = 3\n"),
            "scenario file x.toml line 3, key `speed`: unknown field `speed`, expected one of `description`, \
             `triggers`, `duration`, `payload_sizes`, `gfp_zero`, `gfp_account`, `perf_frequency`, `every_nth`, \
             `rate`, `nolock_share`, `burst`, `nmi_rate`, `expedited_rate`"
        );
        let bad_type = err("description = \"d\"\ntriggers = []\nrate = \"fast\"\n");
        assert!(bad_type.starts_with("scenario file x.toml line 3, key `rate`: "), "{bad_type}");
        assert!(!bad_type.contains('\n'), "{bad_type}");
        assert_eq!(err("description = \"d\"\n"), "scenario file x.toml: missing field `triggers`");
    }

    /// A scenario given by its path: read, named after its file, and
    /// refused with the file's name when it cannot be read.
    #[test]
    fn scenario_files_are_read_by_path() {
        let dir = std::env::temp_dir().join(format!("nolock-probe-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mine.toml");
        std::fs::write(&file, "description = \"mine\"\ntriggers = [\"nmi\"]\nrate = 7\n").unwrap();
        let (name, s) = find(file.to_str().unwrap()).unwrap();
        assert_eq!(
            (name.as_str(), s.rate, s.triggers.as_slice()),
            ("mine", Some(7), &["nmi".to_string()][..])
        );
        let missing = dir.join("gone.toml");
        let err = format!("{:#}", find(missing.to_str().unwrap()).unwrap_err());
        assert!(err.starts_with(&format!("cannot read scenario file {}", missing.display())), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// scenarios/example.toml, which users copy, sets every key.
    #[test]
    fn the_example_sets_every_key() {
        let path = crate::testing::repo_path("scenarios/example.toml");
        let (name, s) = find(path.to_str().unwrap()).unwrap();
        assert_eq!(name, "example");
        let every = [
            s.duration.is_some(),
            s.payload_sizes.is_some(),
            s.gfp_zero.is_some(),
            s.gfp_account.is_some(),
            s.perf_frequency.is_some(),
            s.every_nth.is_some(),
            s.rate.is_some(),
            s.nolock_share.is_some(),
            s.burst.is_some(),
            s.nmi_rate.is_some(),
            s.expedited_rate.is_some(),
        ];
        assert!(every.iter().all(|set| *set), "{s:?}");
        triggers(&s.triggers).unwrap();
    }
}
