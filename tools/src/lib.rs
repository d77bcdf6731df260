//! The pieces behind the `squall` and `squall-bench` binaries: argument types, progress
//! output and benchmark reports.
//!
//! Everything an embedding program needs — the built-in spouts, bolts and topologies, latency
//! stamps and histograms, exact word-count checks — lives in the engine crate (`squall::builtin`);
//! this crate only parses arguments, drives runs and prints results.
//!
//! ```
//! use squall_tools::args::{HumanDuration, RateSpec};
//! use std::time::Duration;
//!
//! let duration: HumanDuration = "1.5s".parse().unwrap();
//! assert_eq!(duration.get(), Duration::from_millis(1_500));
//! assert_eq!("25M".parse::<RateSpec>().unwrap(), RateSpec::PerSecond(25_000_000));
//! ```

pub mod args;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod demo;
pub mod drill;
pub mod drpc;
pub mod drpc_bench;
pub mod entry;
pub mod format;
pub mod html_report;
pub mod interference;
pub mod local;
pub mod measure;
pub mod postgres_bench;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod shell_bench;
pub mod subscribe;
