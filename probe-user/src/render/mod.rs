//! How a result is shown: the terminal summary, an SVG picture, dashboard
//! exports. All read the typed result, so a saved result looks exactly
//! like the run that made it.

pub mod export;
pub mod kcidb;
pub mod svg;
pub mod terminal;
