//! The tool's own load: kmalloc/kfree churn from system calls on every CPU,
//! so that the locked-slab and slab-internal hooks fire often, and updates
//! of `LOAD_MAP` when the map_update trigger watches it.

use std::{
    ffi::CStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use anyhow::{Context, Result};
use aya::maps::{HashMap, MapData};
use probe_common::{LOAD_MAP_KEYS_PER_CPU, MAX_HOLD_CPUS};

use crate::probes::Probes;

/// `LOAD_MAP` updates per load operation, when the map_update trigger runs.
const MAP_UPDATES: u32 = 32;

pub struct LoadGen {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    map_updates: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl LoadGen {
    /// One thread pinned to each CPU in `cpus`; each also updates
    /// `LOAD_MAP` of `map_of` if given.
    pub fn start(cpus: &[u32], map_of: Option<&Probes>) -> Result<Self> {
        let mut load = LoadGen {
            stop: Arc::new(AtomicBool::new(false)),
            ops: Arc::new(AtomicU64::new(0)),
            map_updates: Arc::new(AtomicU64::new(0)),
            threads: Vec::new(),
        };
        for &cpu in cpus {
            let mut map = map_of.map(Probes::load_map).transpose()?;
            let (stop, ops, updates) = (load.stop.clone(), load.ops.clone(), load.map_updates.clone());
            let handle = std::thread::Builder::new()
                .name(format!("load-cpu{cpu}"))
                .spawn(move || {
                    pin(cpu);
                    while !stop.load(Ordering::Relaxed) {
                        churn();
                        if let Some(m) = map.as_mut() {
                            updates.fetch_add(update_map(m, cpu), Ordering::Relaxed);
                        }
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .context("cannot start a load thread")?;
            load.threads.push(handle);
        }
        Ok(load)
    }

    /// `LOAD_MAP` updates so far.
    pub fn map_updates(&self) -> u64 {
        self.map_updates.load(Ordering::Relaxed)
    }

    /// Operations so far (one operation: a /proc file opened, read and
    /// closed, and a burst of pipes opened and closed).
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pin(cpu: u32) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in
    // bounds for cpu < CPU_SETSIZE, and sched_setaffinity reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if (cpu as usize) < libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu as usize, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// Pipes held open at once: enough objects to overflow the per-CPU sheaves,
/// so that frees reach the barn and the slabs' partial lists, where
/// `slab_attach_kprobe_locked()` runs under the node list_lock.
const BURST: usize = 128;

/// One load operation: a /proc file read and a burst of pipes.
fn churn() {
    const STAT: &CStr = c"/proc/self/stat";
    let mut buf = [0u8; 512];
    let mut pipes = [[0i32; 2]; BURST];
    // SAFETY: plain system calls on buffers and descriptors this function owns.
    unsafe {
        // seq_file buffers and the file are kmalloc'ed and freed here.
        let fd = libc::open(STAT.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
        }
        // Each pipe allocates its inode info and buffer array with
        // kmalloc, and two files, an inode and a dentry.
        let mut open = 0;
        for p in pipes.iter_mut() {
            if libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                break;
            }
            open += 1;
        }
        for p in &pipes[..open] {
            libc::close(p[0]);
            libc::close(p[1]);
        }
    }
}

/// Overwrites this CPU's block of keys: each update allocates a new
/// element in alloc_htab_elem(). Returns the updates that succeeded.
fn update_map(map: &mut HashMap<MapData, u32, u64>, cpu: u32) -> u64 {
    let base = (cpu % MAX_HOLD_CPUS) * LOAD_MAP_KEYS_PER_CPU;
    (0..MAP_UPDATES)
        .filter(|i| map.insert(&(base + i % LOAD_MAP_KEYS_PER_CPU), &u64::from(*i), 0).is_ok())
        .count() as u64
}
