//! A verdict and the checks it is made of, as a result records them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, pass: bool, detail: String) -> Check {
        Check { name: name.into(), pass, detail }
    }

    /// The verdict's line for this check when it fails.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.name, self.detail)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub pass: bool,
    /// One line per failed check.
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn of(checks: &[Check]) -> Verdict {
        let reasons: Vec<String> = checks.iter().filter(|c| !c.pass).map(Check::reason).collect();
        Verdict { pass: reasons.is_empty(), reasons }
    }

    pub fn fail(&mut self, reason: String) {
        self.pass = false;
        self.reasons.push(reason);
    }
}
