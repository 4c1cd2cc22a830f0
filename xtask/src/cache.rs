//! Where builds are cached (outside the checkout, so a clean clone reuses
//! them) and how cache keys are made from their inputs.

use std::{
    env,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// `--cache-dir`, else `$NOLOCK_PROBE_CACHE`, else
/// `$XDG_CACHE_HOME/nolock-probe`, else `~/.cache/nolock-probe`.
pub fn dir(flag: Option<&Path>) -> Result<PathBuf> {
    let dir = match flag {
        Some(d) => d.to_path_buf(),
        None => match env::var_os("NOLOCK_PROBE_CACHE") {
            Some(d) => PathBuf::from(d),
            None => match env::var_os("XDG_CACHE_HOME") {
                Some(d) => PathBuf::from(d).join("nolock-probe"),
                None => PathBuf::from(env::var_os("HOME").context("HOME is not set: pass --cache-dir")?)
                    .join(".cache/nolock-probe"),
            },
        },
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the cache directory {}", dir.display()))?;
    // Absolute, because the same path is bind-mounted into the toolchain root.
    dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))
}

/// A short hex key over named inputs; the names keep `("a", "bc")` and
/// `("ab", "c")` apart.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(mut self, name: &str, data: impl AsRef<[u8]>) -> Self {
        let data = data.as_ref();
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update((data.len() as u64).to_le_bytes());
        self.0.update(data);
        self
    }

    pub fn add_file(self, path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(self.add(&name, data))
    }

    pub fn finish(self) -> String {
        self.0.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_names_and_contents() {
        let a = Key::new().add("a", "bc").finish();
        assert_eq!(a, Key::new().add("a", "bc").finish());
        assert_ne!(a, Key::new().add("ab", "c").finish());
        assert_ne!(a, Key::new().add("a", "bd").finish());
        assert_eq!(a.len(), 16);
    }
}
