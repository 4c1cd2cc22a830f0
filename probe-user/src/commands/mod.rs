//! One module per subcommand, each with its Args, and what `run` and
//! `bench` share: start-up checks and writing the result.

pub mod bench;
pub mod compare;
pub mod export;
pub mod list;
pub mod report;
pub mod run;
mod session;
pub mod validate;
