//! How the shared types read and write in a result: triggers and contexts
//! by their stable names, per-context counts as an object keyed by context
//! name. The loader and xtask get this with the `serde` feature.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::{Intended, Trigger};

/// A name from a fixed table, read without allocating (the BPF side has
/// no allocator, and this crate is no_std).
struct Named<T>(fn(&str) -> Option<T>, &'static str);

impl<T> de::Visitor<'_> for Named<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "the name of a {}", self.1)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Named(Trigger::from_name, "trigger"))
    }
}

impl Serialize for Intended {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Intended {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Named(Intended::from_name, "context"))
    }
}

/// `alloc_ctx`: `{"task": n, "softirq": n, "hardirq": n, "nmi": n}`.
pub mod per_context {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeMap};

    use crate::ctx;

    pub fn serialize<S: Serializer>(counts: &[u64; ctx::COUNT], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(counts.len()))?;
        for (name, n) in ctx::NAMES.iter().zip(counts) {
            map.serialize_entry(name, n)?;
        }
        map.end()
    }

    /// The same four names as `ctx::NAMES`, in its order.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PerContext {
        task: u64,
        softirq: u64,
        hardirq: u64,
        nmi: u64,
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u64; ctx::COUNT], D::Error> {
        let c = PerContext::deserialize(d)?;
        Ok([c.task, c.softirq, c.hardirq, c.nmi])
    }
}
