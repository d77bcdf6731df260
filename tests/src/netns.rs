//! Private "hosts" for tests: network namespaces joined by veth pairs to a bridge, each with
//! its own address, removed again when the guard is dropped. Needs root and `ip`. The drill's
//! namespaces serve the tests too.

pub use squall_tools::drill::netns::{Hosts, available};
