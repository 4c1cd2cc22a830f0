//! Which lines and branches of the nolock machinery a run reached: gcov's
//! counts of the coverage kernel (`--kernel-config coverage`), per function
//! of the list in kernel-patches/config/coverage.functions, with the source
//! text of every line no trigger reached.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// The gcov that read the counters (`gcov --version`'s first line).
    pub gcov: String,
    /// What the counts span: the loader resets them when the stress
    /// starts, the guest reads them after the loader exits (so the drain
    /// and the unload are in, the boot and the BPF verifier are not).
    pub window: String,
    pub lines: u32,
    pub lines_hit: u32,
    pub branches: u32,
    pub branches_hit: u32,
    /// Per listed function, in the list's order.
    pub functions: Vec<FunctionCoverage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCoverage {
    pub name: String,
    /// The source file, relative to the kernel tree.
    pub file: String,
    pub start_line: u32,
    pub end_line: u32,
    /// Times the function was entered; None where the compiler inlined it
    /// before instrumenting (its lines count in its callers).
    pub calls: Option<u64>,
    /// Lines with code, and those run at least once.
    pub lines: u32,
    pub lines_hit: u32,
    /// Branch outcomes, and those taken at least once.
    pub branches: u32,
    pub branches_hit: u32,
    /// Lines with code that never ran, with their source.
    pub unreached: Vec<SourceLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceLine {
    pub line: u32,
    pub text: String,
}

/// One function of the list: where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub file: String,
    pub name: String,
}

/// Parses the function list: `FILE FUNCTION` per line, `#` comments.
pub fn parse_list(text: &str, origin: &str) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(file), Some(name), None) => {
                out.push(Listed { file: file.to_string(), name: name.to_string() })
            }
            _ => bail!("{origin}:{}: expected `FILE FUNCTION`, found \"{line}\"", i + 1),
        }
    }
    if out.is_empty() {
        bail!("{origin} lists no function");
    }
    Ok(out)
}

impl Coverage {
    pub fn line_pct(&self) -> f64 {
        pct(self.lines_hit, self.lines)
    }

    pub fn branch_pct(&self) -> f64 {
        pct(self.branches_hit, self.branches)
    }

    /// From gcov's JSON (`gcov --json-format --stdout`, one document per
    /// object), the listed functions; `source(file)` gives a file's lines,
    /// for the unreached ones and for the extent of functions gcov has no
    /// record of (the compiler inlined them before it instrumented: their
    /// lines are counted in their callers). A listed function neither
    /// gcov nor the source knows fails, naming it: it was renamed or
    /// moved, and the list must follow.
    pub fn from_gcov(
        gcov: &str,
        documents: &[serde_json::Value],
        list: &[Listed],
        window: &str,
        source: &dyn Fn(&str) -> Option<Vec<String>>,
    ) -> Result<Coverage> {
        let mut files: BTreeMap<String, GcovFile> = BTreeMap::new();
        for doc in documents {
            let entries = doc["files"].as_array().context("gcov's JSON has no files")?;
            for f in entries {
                let file = files.entry(f["file"].as_str().unwrap_or_default().to_string()).or_default();
                for func in f["functions"].as_array().into_iter().flatten() {
                    let entry = file
                        .functions
                        .entry(func["name"].as_str().unwrap_or_default().to_string())
                        .or_default();
                    entry.start_line = func["start_line"].as_u64().unwrap_or(0) as u32;
                    entry.end_line = func["end_line"].as_u64().unwrap_or(0) as u32;
                    entry.calls += func["execution_count"].as_u64().unwrap_or(0);
                }
                for line in f["lines"].as_array().into_iter().flatten() {
                    let number = line["line_number"].as_u64().unwrap_or(0) as u32;
                    let entry = file.lines.entry(number).or_default();
                    entry.count += line["count"].as_u64().unwrap_or(0);
                    // A line can come once per function it is inlined
                    // into: its branches add up outcome by outcome.
                    let branches = line["branches"].as_array().map_or(&[][..], |b| b.as_slice());
                    if entry.branches.len() < branches.len() {
                        entry.branches.resize(branches.len(), 0);
                    }
                    for (i, b) in branches.iter().enumerate() {
                        entry.branches[i] += b["count"].as_u64().unwrap_or(0);
                    }
                }
            }
        }
        let mut missing = Vec::new();
        let mut out = Coverage { gcov: gcov.to_string(), window: window.to_string(), ..Default::default() };
        for l in list {
            // gcov names files as the compiler saw them: relative to the
            // tree, or with the tree's path in front.
            let Some(file) = files
                .iter()
                .find(|(name, _)| *name == &l.file || name.ends_with(&format!("/{}", l.file)))
                .map(|(_, f)| f)
            else {
                missing.push(format!("{} in {} (no counts for the file)", l.name, l.file));
                continue;
            };
            let text = source(&l.file);
            let record = file.functions.get(&l.name);
            let extent = match record {
                Some(r) => Some((r.start_line, r.end_line)),
                None => text.as_deref().and_then(|t| definition(t, &l.name)),
            };
            let Some((start_line, end_line)) = extent else {
                missing.push(format!("{} in {}", l.name, l.file));
                continue;
            };
            let mut fc = FunctionCoverage {
                name: l.name.clone(),
                file: l.file.clone(),
                start_line,
                end_line,
                calls: record.map(|r| r.calls),
                ..Default::default()
            };
            for (&number, line) in file.lines.range(start_line..=end_line) {
                fc.lines += 1;
                fc.branches += line.branches.len() as u32;
                fc.branches_hit += line.branches.iter().filter(|&&c| c > 0).count() as u32;
                if line.count > 0 {
                    fc.lines_hit += 1;
                } else {
                    let text = text
                        .as_ref()
                        .and_then(|t| t.get(number as usize - 1))
                        .map_or(String::new(), |s| s.trim_end().to_string());
                    fc.unreached.push(SourceLine { line: number, text });
                }
            }
            out.lines += fc.lines;
            out.lines_hit += fc.lines_hit;
            out.branches += fc.branches;
            out.branches_hit += fc.branches_hit;
            out.functions.push(fc);
        }
        if !missing.is_empty() {
            bail!(
                "the coverage kernel has no function {}: renamed or moved? update \
                 kernel-patches/config/coverage.functions",
                missing.join(", ")
            );
        }
        Ok(out)
    }

    /// Lines `base` reached that this one did not, per function (the same
    /// line number and text: a changed source moves lines).
    pub fn lost_since(&self, base: &Coverage) -> Vec<(String, Vec<SourceLine>)> {
        let mut out = Vec::new();
        for f in &self.functions {
            let Some(b) = base.functions.iter().find(|b| b.name == f.name && b.file == f.file) else {
                continue;
            };
            let lost: Vec<SourceLine> = f
                .unreached
                .iter()
                .filter(|l| (b.start_line..=b.end_line).contains(&l.line))
                .filter(|l| !b.unreached.iter().any(|u| u.line == l.line && u.text == l.text))
                .cloned()
                .collect();
            if !lost.is_empty() {
                out.push((f.name.clone(), lost));
            }
        }
        out
    }
}

impl FunctionCoverage {
    pub fn line_pct(&self) -> f64 {
        pct(self.lines_hit, self.lines)
    }

    pub fn branch_pct(&self) -> f64 {
        pct(self.branches_hit, self.branches)
    }
}

fn pct(hit: u32, of: u32) -> f64 {
    if of == 0 { 0.0 } else { 100.0 * f64::from(hit) / f64::from(of) }
}

/// The first and last line of the kernel-style definition of `name`: a
/// line at column 0 that names it before a parenthesis, followed by a `{`
/// line before any `;` (which would make it a declaration), to the first
/// `}` at column 0 after it.
pub fn definition(source: &[String], name: &str) -> Option<(u32, u32)> {
    let call = format!("{name}(");
    let names = |line: &str| {
        !line.starts_with([' ', '\t', '#', '/', '*', '}'])
            && line.match_indices(&call).any(|(at, _)| {
                at == 0 || {
                    let c = line.as_bytes()[at - 1];
                    !c.is_ascii_alphanumeric() && c != b'_'
                }
            })
    };
    let start = (0..source.len()).find(|&i| {
        names(&source[i])
            && source[i..]
                .iter()
                .take(10)
                .find(|l| l.starts_with('{') || l.trim_end().ends_with(';'))
                .is_some_and(|l| l.starts_with('{'))
    })?;
    let end = source[start..].iter().position(|l| l.starts_with('}'))? + start;
    Some((start as u32 + 1, end as u32 + 1))
}

#[derive(Default)]
struct GcovFile {
    functions: BTreeMap<String, GcovFunction>,
    lines: BTreeMap<u32, GcovLine>,
}

#[derive(Default)]
struct GcovFunction {
    start_line: u32,
    end_line: u32,
    calls: u64,
}

#[derive(Default)]
struct GcovLine {
    count: u64,
    branches: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcov_doc() -> serde_json::Value {
        serde_json::json!({
            "format_version": "2",
            "files": [{
                "file": "/cache/kernel/tree-coverage/mm/slub.c",
                "functions": [
                    {"name": "kfree_nolock", "start_line": 2, "end_line": 6, "execution_count": 7},
                    {"name": "other", "start_line": 8, "end_line": 9, "execution_count": 0}
                ],
                "lines": [
                    {"line_number": 3, "count": 7, "function_name": "kfree_nolock",
                     "branches": [{"count": 7}, {"count": 0}]},
                    {"line_number": 4, "count": 0, "function_name": "kfree_nolock", "branches": []},
                    {"line_number": 5, "count": 7, "function_name": "kfree_nolock"},
                    {"line_number": 9, "count": 0, "function_name": "other"}
                ]
            }]
        })
    }

    fn source(_: &str) -> Option<Vec<String>> {
        Some(
            ["", "void kfree_nolock(void *p)", "\tif (!p)", "\t\treturn;", "\tfree(p);", "}", ""]
                .map(String::from)
                .to_vec(),
        )
    }

    #[test]
    fn listed_functions_get_their_lines_branches_and_unreached_source() {
        let list = parse_list("# c\nmm/slub.c kfree_nolock  # why\n", "list").unwrap();
        let c = Coverage::from_gcov("gcov 16", &[gcov_doc()], &list, "w", &source).unwrap();
        assert_eq!((c.lines, c.lines_hit, c.branches, c.branches_hit), (3, 2, 2, 1));
        let f = &c.functions[0];
        assert_eq!((f.calls, f.start_line, f.end_line), (Some(7), 2, 6));
        assert_eq!(f.unreached, vec![SourceLine { line: 4, text: "\t\treturn;".into() }]);
        assert!((c.line_pct() - 66.666).abs() < 0.01);
        assert_eq!(c.branch_pct(), 50.0);
    }

    #[test]
    fn an_inlined_function_is_found_in_the_source() {
        let text: Vec<String> = [
            "void helper(int x);",
            "static inline void helper(int x)",
            "{",
            "\tif (x)",
            "\t\tkfree_nolock(0);",
            "}",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(definition(&text, "helper"), Some((2, 6)));
        assert_eq!(definition(&text, "kfree_nolock"), None);
        assert_eq!(definition(&text, "elper"), None);
        let doc = serde_json::json!({"files": [{"file": "mm/x.c", "functions": [], "lines": [
            {"line_number": 4, "count": 2, "branches": [{"count": 2}, {"count": 0}]},
            {"line_number": 5, "count": 0}, {"line_number": 9, "count": 1}]}]});
        let list = parse_list("mm/x.c helper\n", "l").unwrap();
        let c = Coverage::from_gcov("g", &[doc], &list, "w", &|_| Some(text.clone())).unwrap();
        let f = &c.functions[0];
        assert_eq!((f.calls, f.lines, f.lines_hit, f.branches, f.branches_hit), (None, 2, 1, 2, 1));
        assert_eq!(f.unreached[0].text, "\t\tkfree_nolock(0);");
    }

    #[test]
    fn a_renamed_function_is_named() {
        let list = parse_list("mm/slub.c kfree_nolock\nmm/slub.c gone\n", "list").unwrap();
        let err = Coverage::from_gcov("g", &[gcov_doc()], &list, "w", &source).unwrap_err().to_string();
        assert_eq!(
            err,
            "the coverage kernel has no function gone in mm/slub.c: renamed or moved? update \
             kernel-patches/config/coverage.functions"
        );
        let err = parse_list("mm/slub.c\n", "f.functions").unwrap_err().to_string();
        assert_eq!(err, "f.functions:1: expected `FILE FUNCTION`, found \"mm/slub.c\"");
    }

    #[test]
    fn lines_reached_before_and_not_now_are_lost() {
        let list = parse_list("mm/slub.c kfree_nolock\n", "l").unwrap();
        let now = Coverage::from_gcov("g", &[gcov_doc()], &list, "w", &source).unwrap();
        let mut base = now.clone();
        base.functions[0].unreached.clear();
        let lost = now.lost_since(&base);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].0, "kfree_nolock");
        assert_eq!(lost[0].1[0].line, 4);
        assert!(now.lost_since(&now).is_empty());
    }
}
