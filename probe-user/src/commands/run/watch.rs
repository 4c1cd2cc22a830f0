//! The once-a-second watch during the stress: a progress line, the
//! objects in flight sampled for the gauge, and with `--stream` the same
//! as a JSON line; and, the moment the BPF side catches a violation, one
//! more line, before a kernel that goes on to crash on the broken object
//! can take the evidence with it.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use probe_common::{Trigger, TriggerCounters};
use probe_result::{Plan, Progress, SCHEMA_VERSION, run::LoaderFootprint};
use tokio::io::{Interest, unix::AsyncFd};

use super::stream::{self, Stream};
use crate::{
    bpf::{Fifo, Probes, unpreempted},
    footprint::{Footprint, activity},
    render::terminal,
    stress::{load_gen::LoadGen, stop::Stop},
};

/// What the watch saw.
pub struct Watched {
    pub interrupted: bool,
    pub in_flight: Vec<u64>,
    /// What the watch itself cost.
    pub loader: LoaderFootprint,
}

/// Where the watch sends what it sees besides the terminal.
pub struct Outputs<'a> {
    /// `--stream`: a JSON line a second, and one at each alert.
    pub stream: Option<&'a mut Stream>,
    /// The BPF side's alerts (`probe_common::Alert`): the first violation
    /// of each kind on each CPU, the moment it happens.
    pub alerts: Option<RingBuf<MapData>>,
}

/// Prints a progress line a second until the duration is over or a signal
/// arrives, sampling the objects in flight; streams each second's counters
/// to the stream, as run `repeat` (from 1) of the plan, and streams them
/// again at once when an alert comes.
pub async fn watch(
    probes: &Probes,
    plan: &Plan,
    load: Option<&LoadGen>,
    started: Instant,
    stop: &mut Stop,
    out: Outputs<'_>,
    repeat: u32,
) -> Result<Watched> {
    let Outputs { mut stream, alerts } = out;
    let _prompt = Fifo::prompt();
    let mut footprint = Footprint::start();
    // Without a stream there is nowhere to send an alert sooner than the
    // report: leave the ring buffer alone.
    let mut alerts = match (alerts, stream.is_some()) {
        (Some(a), true) => {
            // SAFETY: the ring buffer owns its map's descriptor, open and
            // the same for as long as it lives, and the AsyncFd owns it.
            let fd = unsafe { AsyncFd::register_with_interest(a, Interest::READABLE) };
            Some(fd.map_err(|e| e.into_parts().1).context("cannot wait on the ALERTS ring buffer")?)
        }
        _ => None,
    };
    let deadline = tokio::time::Instant::from_std(started + Duration::from_secs(plan.duration_s));
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    let mut prev = TriggerCounters::default();
    let mut prev_ops = 0;
    let mut in_flight = Vec::with_capacity(plan.duration_s as usize + 1);
    let mut warned_starved = false;
    let line = |per_trigger, in_flight_now| Progress {
        schema_version: SCHEMA_VERSION,
        scenario: plan.scenario.clone(),
        repeat,
        elapsed_s: started.elapsed().as_secs_f64(),
        duration_s: plan.duration_s,
        uptime_s: stream::uptime_s(),
        triggers: per_trigger,
        in_flight: in_flight_now,
        first_failure: None,
    };
    // A line of the counters as they are now, outside the second's beat.
    let stream_now = |footprint: &mut Footprint, s: &mut Stream| -> Result<()> {
        let (per_trigger, now) = footprint.charge(activity::MAPS, || sample(probes, plan))?;
        footprint.charge(activity::OUTPUT, || s.write(line(per_trigger, in_flight_of(plan, &now))));
        Ok(())
    };
    // A first line at once: should the kernel die before the first second's,
    // the run is still known to have started, and the result is cut short
    // rather than a stub.
    if let Some(s) = stream.as_deref_mut() {
        stream_now(&mut footprint, s)?;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Ok(Watched { interrupted: false, in_flight, loader: footprint.finish() });
            }
            _ = stop.signalled() => return Ok(Watched { interrupted: true, in_flight, loader: footprint.finish() }),
            ready = alert(alerts.as_mut()) => {
                ready?;
                // The counters moved before the alert was sent: the line
                // carries the violation, and the stream latches it.
                if let Some(s) = stream.as_deref_mut() {
                    stream_now(&mut footprint, s)?;
                }
            }
            _ = tick.tick() => {
                let (per_trigger, now) = footprint.charge(activity::MAPS, || sample(probes, plan))?;
                let in_flight_now = in_flight_of(plan, &now);
                in_flight.extend(in_flight_now);
                let ops = load.map(|l| l.ops());
                let rate = ops.map(|o| (o - prev_ops) as f64);
                footprint.charge(activity::OUTPUT, || {
                    if let Some(s) = stream.as_deref_mut() {
                        s.write(line(per_trigger, in_flight_now));
                    }
                    let elapsed = started.elapsed().as_secs();
                    eprintln!("{}", terminal::progress_line(elapsed, plan.duration_s, &now, &prev, rate));
                });
                prev = now;
                prev_ops = ops.unwrap_or(0);
                if let Some(gap) = footprint.sample().filter(|_| !warned_starved) {
                    warned_starved = true;
                    eprintln!(
                        "nolock-probe: warning: the watch ran {gap:.1} s after its last look: the loader got no \
                         CPU (the guest is overloaded, see loader.max_sample_gap_s), so the run lasts longer and \
                         its per-second figures are averages over the gap"
                    );
                }
            }
        }
    }
}

/// Each trigger's counters summed over the CPUs, and their total.
fn sample(probes: &Probes, plan: &Plan) -> Result<(BTreeMap<Trigger, TriggerCounters>, TriggerCounters)> {
    let per_trigger = unpreempted(|| -> Result<BTreeMap<Trigger, TriggerCounters>> {
        let mut out = BTreeMap::new();
        for &t in &plan.triggers {
            let sum = out.entry(t).or_insert_with(TriggerCounters::default);
            for c in probes.counters(t)? {
                sum.accumulate(&c);
            }
        }
        Ok(out)
    })?;
    let mut now = TriggerCounters::default();
    for c in per_trigger.values() {
        now.accumulate(c);
    }
    Ok((per_trigger, now))
}

/// Objects in flight: untracked objects are never seen reclaimed, so they
/// are left out; without following nothing is seen reclaimed.
fn in_flight_of(plan: &Plan, now: &TriggerCounters) -> Option<u64> {
    plan.follow.then(|| now.freed_rcu.saturating_sub(now.reclaimed + now.untracked))
}

/// Waits for alerts and consumes those that came; never returns without
/// a ring buffer.
async fn alert(alerts: Option<&mut AsyncFd<RingBuf<MapData>>>) -> Result<()> {
    let Some(fd) = alerts else { return std::future::pending().await };
    let mut guard = fd.readable_mut().await.context("cannot wait on the ALERTS ring buffer")?;
    let ring = guard.get_inner_mut();
    while ring.next().is_some() {}
    guard.clear_ready();
    Ok(())
}
