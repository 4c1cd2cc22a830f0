//! The once-a-second watch during the stress: a progress line, and the
//! objects in flight sampled for the gauge.

use std::time::{Duration, Instant};

use anyhow::Result;
use probe_common::TriggerCounters;
use probe_result::Plan;

use crate::{
    bpf::{Probes, unpreempted},
    render::terminal,
    stress::{load_gen::LoadGen, stop::Stop},
};

/// What the watch saw.
pub struct Watched {
    pub interrupted: bool,
    pub in_flight: Vec<u64>,
}

/// Prints a progress line a second until the duration is over or a signal
/// arrives, sampling the objects in flight.
pub async fn watch(
    probes: &Probes,
    plan: &Plan,
    load: Option<&LoadGen>,
    started: Instant,
    stop: &mut Stop,
) -> Result<Watched> {
    let deadline = tokio::time::Instant::from_std(started + Duration::from_secs(plan.duration_s));
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    let mut prev = TriggerCounters::default();
    let mut prev_ops = 0;
    let mut in_flight = Vec::with_capacity(plan.duration_s as usize + 1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(Watched { interrupted: false, in_flight }),
            _ = stop.signalled() => return Ok(Watched { interrupted: true, in_flight }),
            _ = tick.tick() => {
                let now = unpreempted(|| -> Result<TriggerCounters> {
                    let mut now = TriggerCounters::default();
                    for &t in &plan.triggers {
                        for c in probes.counters(t)? {
                            now.accumulate(&c);
                        }
                    }
                    Ok(now)
                })?;
                // Untracked objects are never seen reclaimed: leave them out.
                // Without following nothing is seen reclaimed.
                if plan.follow {
                    in_flight.push(now.freed_rcu.saturating_sub(now.reclaimed + now.untracked));
                }
                let ops = load.map(|l| l.ops());
                let rate = ops.map(|o| (o - prev_ops) as f64);
                eprintln!("{}", terminal::progress_line(started.elapsed().as_secs(), plan.duration_s, &now, &prev, rate));
                prev = now;
                prev_ops = ops.unwrap_or(0);
            }
        }
    }
}
