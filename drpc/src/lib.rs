//! Distributed RPC: a function computed by a running topology, called like a remote
//! procedure. Storm's "parallelising an intense query on the fly".
//!
//! A client sends `(function, argument)` to a DRPC server (`squall drpc`, in the cluster
//! crate); a topology serving the function pulls the request through its [`DrpcSpout`],
//! computes the answer over as many tasks as it likes, and its [`ReturnResultsBolt`] sends
//! the answer back to the server holding the request, which hands it to the client. A
//! request whose tuple tree fails, or that gets no answer in time, ends with an error at the
//! client.
//!
//! This crate holds what both sides of a server need, with no async runtime:
//!
//! - [`protocol`]: the messages and their authenticated frames (no I/O);
//! - [`DrpcClient`]: the blocking client, one call at a time;
//! - [`AsyncDrpcClient`]: the asynchronous client, many calls in flight on one connection,
//!   each a future any executor can await;
//! - [`DrpcSpout`], [`ReturnResultsBolt`], [`DrpcAggregateBolt`]: the topology side;
//! - [`PublishBolt`] and [`subscribe::Subscription`]: continuous queries, whose results a
//!   topology publishes on a stream and the server streams to its subscribers;
//! - [`LinearDrpcBuilder`]: a function as a chain of bolts, the request id and the final
//!   per-request aggregation handled for the user.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = squall_net::ClusterSecret::new(std::env::var("SQUALL_CLUSTER_SECRET")?)?;
//! let mut client = squall_drpc::DrpcClient::connect("127.0.0.1:3772", &secret)?;
//! assert_eq!(client.call("exclaim", "hello")?, "hello!");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod async_client;
pub mod client;
pub mod key;
pub mod linear;
pub mod link;
mod oneshot;
pub mod protocol;
pub mod publish;
pub mod return_bolt;
pub mod return_info;
pub mod spout;
pub mod subscribe;

pub use aggregate::{Aggregation, DrpcAggregateBolt};
pub use async_client::{AsyncDrpcClient, CallFuture};
pub use client::{DrpcClient, DrpcError};
pub use key::DrpcKey;
pub use linear::LinearDrpcBuilder;
pub use protocol::CallError;
pub use publish::PublishBolt;
pub use return_bolt::ReturnResultsBolt;
pub use return_info::ReturnInfo;
pub use spout::{DrpcServers, DrpcSpout, SpoutShape};
/// The cluster secret, as DRPC components and clients take it.
pub use squall_net::ClusterSecret;
