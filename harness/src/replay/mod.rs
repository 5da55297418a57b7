//! `portcullis replay`: traffic formats, the replay loop and its reports.

pub mod de;
pub mod error;
pub mod ftw;
pub mod har;
pub mod jsonl;
pub mod load;
pub mod model;

pub use error::TrafficError;
pub use model::{Expectation, Locator, PeerCert, ReplayRequest, SourceLoc};

#[cfg(test)]
mod crs_corpus;

pub use load::{load_file, LoadOptions, TrafficFormat};
