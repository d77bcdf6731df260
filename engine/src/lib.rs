//! Squall: topologies of spouts and bolts in the Storm model, run on pinned executor
//! threads joined by lock-free rings.
#![forbid(unsafe_code)]

pub mod grouping;
pub mod tuple;
