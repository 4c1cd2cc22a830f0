//! Addresses of static kernel functions, which BTF does not give.

use std::fs;

use anyhow::{Context, Result, bail};

/// The addresses of `names` in /proc/kallsyms, read once.
pub fn addresses<const N: usize>(names: [&str; N]) -> Result<[u64; N]> {
    let text = fs::read_to_string("/proc/kallsyms").context("cannot read /proc/kallsyms")?;
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = parse(&text, name)?;
    }
    Ok(out)
}

pub fn parse(text: &str, name: &str) -> Result<u64> {
    let mut found = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(addr), Some(_kind), Some(sym)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if sym == name {
            if found.is_some() {
                bail!("{name} appears twice in /proc/kallsyms, so the tool cannot tell its sheaves apart");
            }
            found = Some(u64::from_str_radix(addr, 16).with_context(|| format!("bad address for {name}"))?);
        }
    }
    match found {
        None => bail!(
            "the running kernel has no {name} in /proc/kallsyms: it is not Linux 7.3's allocator; apply kernel-patches/ to a 7.3 tree or use `cargo xtask vm`"
        ),
        Some(0) => bail!(
            "/proc/kallsyms hides addresses (kernel.kptr_restrict): run `sysctl kernel.kptr_restrict=1` as root"
        ),
        Some(a) => Ok(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_symbol_and_rejects_hidden_addresses() {
        let text = "ffffffff81000000 T _text\nffffffff81234560 t rcu_free_sheaf\nffffffff81234600 t rcu_free_sheaf_nobarn\n";
        assert_eq!(parse(text, "rcu_free_sheaf").unwrap(), 0xffffffff81234560);
        let hidden = "0000000000000000 t rcu_free_sheaf\n";
        assert!(parse(hidden, "rcu_free_sheaf").unwrap_err().to_string().contains("kptr_restrict"));
        assert!(parse(text, "nope").unwrap_err().to_string().contains("has no nope"));
    }
}
