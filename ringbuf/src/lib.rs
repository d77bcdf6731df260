//! Lock-free single-producer single-consumer rings, and the wait strategies that go with them.
//!
//! Squall connects every pair of executors in a worker with one ring: the upstream executor is
//! its only producer, the downstream executor its only consumer. With exactly one writer and
//! one reader per ring, no operation needs a lock or a read-modify-write instruction; each side
//! publishes its progress with one release store per batch.
//!
//! # The model
//!
//! - [`spsc`]: a typed ring of `T` values. [`channel`] returns a [`Producer`] and a
//!   [`Consumer`]; both are `Send` but not `Sync`, and all their methods take `&mut self`, so
//!   the single-writer single-reader rule is checked by the compiler. Values move in batches
//!   ([`Producer::claim`] then [`Claim::publish`]; [`Consumer::read`] then
//!   [`ReadChunk::release`]) or one by one ([`Producer::push`], [`Consumer::pop`]).
//! - [`record`]: a ring of variable-length byte records (encoded tuples), over heap memory or
//!   over a file mapped by two processes; its module documentation describes its layout.
//! - [`wait`]: what a thread does when its rings are empty (or full): spin, yield, or sleep
//!   until another thread [`notify`](WaitStrategy::notify)s it. One [`WaitStrategy`]
//!   instance serves as the doorbell of one waiting thread.
//!
//! Both rings count positions with ever-increasing sequence numbers kept on separate cache
//! lines, and each side caches the other side's sequence, reloading it only when the cache
//! says the ring is full or empty, so a side that has work rarely touches a cache line the
//! other core writes. The memory orderings are documented where the atomics are declared
//! (see [`spsc`] for the typed ring and [`wait`] for the sleep/notify handshake).
//!
//! # Example: moving values between threads in batches
//!
//! ```
//! use std::time::Duration;
//!
//! use squall_ringbuf::{WaitStrategyKind, channel};
//!
//! const COUNT: u64 = 100_000;
//! let (mut producer, mut consumer) = channel::<u64>(256);
//! // The consumer's doorbell: it sleeps on it when its ring is empty.
//! let doorbell = WaitStrategyKind::SpinThenPark.build();
//!
//! let producer_doorbell = doorbell.clone();
//! let upstream = std::thread::spawn(move || {
//!     let mut next = 0;
//!     while next < COUNT {
//!         let mut claim = producer.claim(64);
//!         next += claim.fill_from_iter(next..COUNT) as u64;
//!         claim.publish();
//!         producer_doorbell.notify();
//!     }
//! });
//!
//! let mut sum = 0;
//! let mut received = 0;
//! while received < COUNT {
//!     let ready = doorbell.wait_until(Duration::from_secs(10), &mut || consumer.available() > 0);
//!     assert!(ready, "the producer stalled");
//!     for value in consumer.read(usize::MAX) {
//!         sum += value;
//!         received += 1;
//!     }
//! }
//! upstream.join().unwrap();
//! assert_eq!(sum, COUNT * (COUNT - 1) / 2);
//! ```
//!
//! # Example: one value at a time
//!
//! ```
//! use squall_ringbuf::spsc::{self, Full};
//!
//! let (mut producer, mut consumer) = spsc::channel::<String>(2);
//! producer.push("first".to_owned()).unwrap();
//! producer.push("second".to_owned()).unwrap();
//! // A full ring hands the value back.
//! let Err(Full(third)) = producer.push("third".to_owned()) else { unreachable!() };
//! assert_eq!(consumer.pop().as_deref(), Some("first"));
//! producer.push(third).unwrap();
//!
//! drop(producer);
//! assert!(consumer.is_abandoned());
//! let rest: Vec<String> = consumer.read(usize::MAX).collect();
//! assert_eq!(rest, ["second", "third"]);
//! ```
//!
//! # Checking
//!
//! Every shared access goes through a small shim that swaps in loom's model-checked atomics
//! and cells under `--cfg loom`; `tests/loom.rs` checks the publish/consume protocols and the
//! sleep/notify handshake with it:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p squall-ringbuf --release --test loom
//! ```
//!
//! [`Producer`]: spsc::Producer
//! [`Consumer`]: spsc::Consumer
//! [`Producer::claim`]: spsc::Producer::claim
//! [`Producer::push`]: spsc::Producer::push
//! [`Claim::publish`]: spsc::Claim::publish
//! [`Consumer::read`]: spsc::Consumer::read
//! [`Consumer::pop`]: spsc::Consumer::pop
//! [`ReadChunk::release`]: spsc::ReadChunk::release

mod sync;

pub mod record;
pub mod spsc;
pub mod wait;

pub use spsc::{Claim, Consumer, Full, Producer, ReadChunk, channel};
pub use wait::{
    BusySpin, ParseWaitStrategyError, Patience, SpinThenPark, SpinThenYield, WaitStrategy,
    WaitStrategyKind,
};
