//! Helpers shared by the workspace's tests, in one place: an allocator that counts
//! allocations, bounded waits for conditions that other threads or processes make true, and
//! a check that the Python packages of multi-lang tests are installed.
//!
//! It depends on nothing but `std`, so every crate of the workspace can take it as a
//! dev-dependency without a cycle.

pub mod alloc;
pub mod python;
pub mod wait;

pub use alloc::CountingAllocator;
pub use python::require_python_module;
pub use wait::{poll_until, wait_for, wait_for_or_explain, wait_until};
