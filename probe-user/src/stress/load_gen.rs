//! The tool's own load: kmalloc/kfree churn from system calls on every CPU,
//! so that the locked-slab and slab-internal hooks fire often, and, for the
//! map_update trigger, a getsid() per operation, on which a BPF program
//! updates the trigger's map.

use std::{
    ffi::CStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use anyhow::{Context, Result};

pub struct LoadGen {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl LoadGen {
    /// One thread pinned to each CPU in `cpus`; with `map_updates`, each
    /// operation also calls getsid(), where the map_update trigger's
    /// driver updates its map (from a BPF program: updates through the
    /// bpf() system call would keep kprobes from running on the CPU).
    pub fn start(cpus: &[u32], map_updates: bool) -> Result<Self> {
        Self::spin(cpus, "load", move || {
            churn();
            if map_updates {
                // SAFETY: getsid() has no preconditions.
                unsafe { libc::getsid(0) };
            }
        })
    }

    /// One thread named `<name>-cpu<N>` pinned to each CPU in `cpus`,
    /// repeating `op` until stopped.
    pub fn spin(cpus: &[u32], name: &str, op: impl Fn() + Send + Copy + 'static) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let mut load = LoadGen { stop, ops, threads: Vec::new() };
        for &cpu in cpus {
            let (stop, ops) = (load.stop.clone(), load.ops.clone());
            let handle = std::thread::Builder::new()
                .name(format!("{name}-cpu{cpu}"))
                .spawn(move || {
                    pin(cpu);
                    while !stop.load(Ordering::Relaxed) {
                        op();
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .with_context(|| format!("cannot start a {name} thread"))?;
            load.threads.push(handle);
        }
        Ok(load)
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
