//! Squall's wire protocol: a codec without I/O, and the transports that feed it bytes.
//!
//! This crate knows nothing of topologies; the engine plugs into it through a small
//! transport trait.
#![forbid(unsafe_code)]
