//! Built-in components and helpers: the spouts and bolts of the demo and benchmark
//! topologies, latency stamps, exact count checks.

pub mod clock;
pub mod components;
pub mod counts;
pub mod latency;
pub mod meter;
pub mod pacing;
pub mod probe;
pub mod stateful;
pub mod topologies;
pub mod windowed;
pub mod words;
