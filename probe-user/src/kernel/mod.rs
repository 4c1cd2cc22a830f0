//! What the running kernel has and says: its BTF, symbols, config, log and
//! slab statistics, and whether it can run the tool at all.

pub mod btf;
pub mod gcov;
pub mod info;
pub mod kallsyms;
pub mod kmsg;
pub mod machine;
pub mod readiness;
pub mod slub_stats;
