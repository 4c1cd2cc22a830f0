//! What the tool does to the machine besides its BPF programs: the load
//! generator, the NMI source, expedited grace periods, and the Ctrl-C that
//! ends it all early.

pub mod expedite;
pub mod load_gen;
pub mod nmi;
mod pacer;
pub mod stop;
