//! Shared harness for the comparison benchmarks.
