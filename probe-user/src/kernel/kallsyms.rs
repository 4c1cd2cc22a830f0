//! Addresses of static kernel functions, which BTF does not give.

use std::fs;

use anyhow::{Context, Result, bail};

/// /proc/kallsyms, read once.
pub struct Kallsyms {
    text: String,
}

/// A function's text, [start, end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub start: u64,
    pub end: u64,
}

impl Kallsyms {
    pub fn read() -> Result<Self> {
        Ok(Kallsyms { text: fs::read_to_string("/proc/kallsyms").context("cannot read /proc/kallsyms")? })
    }

    #[cfg(test)]
    fn from_text(text: &str) -> Self {
        Kallsyms { text: text.into() }
    }

    fn symbols(&self) -> impl Iterator<Item = (u64, char, &str)> {
        self.text.lines().filter_map(|line| {
            let mut it = line.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let kind = it.next()?.chars().next()?;
            Some((addr, kind, it.next()?))
        })
    }

    /// The address of the one symbol called `name`.
    pub fn address(&self, name: &str) -> Result<u64> {
        let mut found = self.symbols().filter(|(_, _, sym)| *sym == name).map(|(a, _, _)| a);
        match (found.next(), found.next()) {
            (_, Some(_)) => {
                bail!("{name} appears twice in /proc/kallsyms, so the tool cannot tell its sheaves apart")
            }
            (None, _) => bail!(
                "the running kernel has no {name} in /proc/kallsyms: it is not Linux 7.3's allocator; apply kernel-patches/ to a 7.3 tree or use `cargo xtask vm`"
            ),
            (Some(0), _) => bail!(
                "/proc/kallsyms hides addresses (kernel.kptr_restrict): run `sysctl kernel.kptr_restrict=1` as root"
            ),
            (Some(a), _) => Ok(a),
        }
    }

    /// The text of every function whose name, without a suffix the
    /// compiler adds (`.isra.0`, `.constprop.0`), is one of `names`; each
    /// ends where the next symbol in the kernel's text begins.
    pub fn functions(&self, names: &[&str]) -> Vec<Function> {
        let mut text: Vec<(u64, &str)> = self
            .symbols()
            .filter(|(a, kind, _)| *a != 0 && matches!(kind, 't' | 'T'))
            .map(|(a, _, sym)| (a, sym))
            .collect();
        text.sort_unstable();
        text.windows(2)
            .filter(|w| names.contains(&w[0].1.split('.').next().unwrap_or("")) && w[1].0 > w[0].0)
            .map(|w| Function { name: w[0].1.into(), start: w[0].0, end: w[1].0 })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_symbol_and_rejects_hidden_addresses() {
        let k = Kallsyms::from_text(
            "ffffffff81000000 T _text\nffffffff81234560 t rcu_free_sheaf\nffffffff81234600 t rcu_free_sheaf_nobarn\n",
        );
        assert_eq!(k.address("rcu_free_sheaf").unwrap(), 0xffffffff81234560);
        let hidden = Kallsyms::from_text("0000000000000000 t rcu_free_sheaf\n");
        assert!(hidden.address("rcu_free_sheaf").unwrap_err().to_string().contains("kptr_restrict"));
        assert!(k.address("nope").unwrap_err().to_string().contains("has no nope"));
        let twice = Kallsyms::from_text("ffffffff81000000 t a\nffffffff81000010 t a\n");
        assert!(twice.address("a").unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn functions_end_at_the_next_text_symbol_and_lose_their_suffix() {
        let k = Kallsyms::from_text(
            "ffffffff8125cb20 t __pcs_replace_full_main\n\
             ffffffff8125d000 d some_data\n\
             ffffffff8125ed20 t __sheaf_flush_main_batch.isra.0\n\
             ffffffff8125cf00 T kmem_cache_free\n\
             ffffffff8125ee00 t barn_put_empty_sheaf\n",
        );
        let f = k.functions(&[
            "__pcs_replace_full_main",
            "__sheaf_flush_main_batch",
            "__pcs_install_empty_sheaf",
        ]);
        assert_eq!(
            f,
            vec![
                Function {
                    name: "__pcs_replace_full_main".into(),
                    start: 0xffffffff8125cb20,
                    end: 0xffffffff8125cf00
                },
                Function {
                    name: "__sheaf_flush_main_batch.isra.0".into(),
                    start: 0xffffffff8125ed20,
                    end: 0xffffffff8125ee00
                },
            ]
        );
    }
}
