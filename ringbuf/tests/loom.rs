//! loom model checks of the rings' publish/consume protocols.
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p squall-ringbuf --release --test loom`.
#![cfg(loom)]

#[path = "loom/record.rs"]
mod record;
#[path = "loom/spsc.rs"]
mod spsc;
