//! `portcullis replay`: traffic formats, the replay loop and its reports.

pub mod de;
pub mod effects;
pub mod error;
pub mod ftw;
pub mod har;
pub mod host;
pub mod jsonl;
pub mod load;
pub mod model;
pub mod report;
pub mod runner;
pub mod script;
pub mod verdict;

pub use error::TrafficError;
pub use model::{Expectation, Locator, PeerCert, ReplayRequest, SourceLoc};

#[cfg(test)]
mod crs_corpus;

pub use effects::Effects;
pub use host::HostTarget;
pub use load::{load_file, traffic_files, LoadOptions, TrafficFormat};
pub use report::{render, FileError, OutputFormat, Report};
pub use runner::{run, RunOptions, Target, TargetError};
pub use script::{
    CallAnswer, CallReply, GrpcAnswer, GrpcCallReply, Script, TcpStep, UpstreamResponse,
};
pub use verdict::{Mismatch, Observed, Verdict};
