//! Side-by-side benchmarks of Squall's rings against the best peers, run in one process so
//! that their figures can be compared as ratios.
//!
//! - [`endpoints`] puts every ring under test (ours, `rtrb`, `crossbeam-queue`'s
//!   `ArrayQueue`, the `disruptor` crate) behind the same two small traits.
//! - [`harness`] runs a case on two threads, pinned to two cores or left to the scheduler,
//!   and measures throughput over fixed time intervals; [`latency`] times ping-pong round
//!   trips into HDR histograms; [`stats`] turns both into figures.
//! - [`records`] adapts the byte-record ring, and runs its producer in a child process for
//!   the cross-process case.
//! - [`watchdog`] tells intervals in which a thread lost its core (on a shared machine) from
//!   those that measure the ring.
//! - [`report`] prints the results as tables (or JSON) and checks the targets.
//!
//! The `rings` binary runs the whole comparison:
//!
//! ```text
//! cargo run --release -p squall-benches --bin rings -- [--seconds N] [--json]
//! ```

pub mod endpoints;
pub mod harness;
pub mod latency;
pub mod records;
pub mod report;
pub mod stats;
pub mod watchdog;
