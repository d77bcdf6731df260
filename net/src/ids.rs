//! Identities carried on the wire: which cluster a worker belongs to, and which worker it is.

use std::fmt;

use sha2::{Digest, Sha256};

/// Identifies a cluster on the wire. Two workers talk only when their cluster ids match.
///
/// [`ClusterId::from_name`] derives one from a cluster's name with SHA-256, so every
/// worker that knows the name computes the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub u64);

impl ClusterId {
    /// The id of the cluster called `name`: the first 8 bytes, little-endian, of
    /// `SHA-256("squall cluster id\0" || name)`.
    pub fn from_name(name: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"squall cluster id\0")
            .chain_update(name.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Self(u64::from_le_bytes(first))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster {:#018x}", self.0)
    }
}

/// Identifies a running topology on the wire. Two workers talk only when they run the same
/// topology: the workers of another topology, or of an earlier submission of the same
/// name, are refused.
///
/// [`TopologyId::from_name`] derives one from the topology's id (its name plus submission
/// time) with SHA-256. [`TopologyId::UNSCOPED`] (zero) is for connections outside a
/// cluster, such as tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopologyId(pub u64);

impl TopologyId {
    /// The id of connections that belong to no particular topology.
    pub const UNSCOPED: Self = Self(0);

    /// The id of the topology whose id is `topology_id`: the first 8 bytes, little-endian,
    /// of `SHA-256("squall topology id\0" || topology_id)`.
    pub fn from_name(topology_id: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"squall topology id\0")
            .chain_update(topology_id.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Self(u64::from_le_bytes(first))
    }
}

impl fmt::Display for TopologyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topology {:#018x}", self.0)
    }
}

/// Identifies a worker process within a cluster on the wire.
///
/// The engine chooses the numbering; the transport only needs every worker of a cluster
/// to have a distinct id. Between two workers, the one with the smaller id dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u64);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_from_name_is_stable_and_distinct() {
        assert_eq!(ClusterId::from_name("prod"), ClusterId::from_name("prod"));
        assert_ne!(
            ClusterId::from_name("prod"),
            ClusterId::from_name("staging")
        );
    }

    #[test]
    fn topology_id_from_name_is_stable_and_distinct() {
        let words = TopologyId::from_name("words-1733400000");
        assert_eq!(words, TopologyId::from_name("words-1733400000"));
        assert_ne!(words, TopologyId::from_name("words-1733400001"));
        // Another domain than cluster ids: the same text gives another id.
        assert_ne!(words.0, ClusterId::from_name("words-1733400000").0);
        assert_eq!(TopologyId(2).to_string(), "topology 0x0000000000000002");
    }

    #[test]
    fn ids_display_their_kind() {
        assert_eq!(WorkerId(7).to_string(), "worker 7");
        assert_eq!(ClusterId(1).to_string(), "cluster 0x0000000000000001");
    }
}
