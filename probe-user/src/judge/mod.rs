//! From what the maps held to the numbers a result reports and a gate
//! weighs: latency distributions, dashboard metrics, the regression gate.
//! The checks of a verdict are probe_result::checks, shared with xtask.

pub mod gate;
pub mod latency;
pub mod metrics;
pub mod noise;
