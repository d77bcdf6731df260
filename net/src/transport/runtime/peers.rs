//! The peer table: where each peer worker is, its outbound rings, its current connection,
//! and when to dial it again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::super::event::{PeerAddr, PeerSpec};
use super::super::outbound::OutboundRing;
use super::LinkId;
use crate::ids::WorkerId;

/// One peer worker.
#[derive(Debug)]
pub(crate) struct Peer {
    /// Where to reach it, when it is in the peer set.
    pub(crate) addr: Option<PeerAddr>,
    /// The rings its local senders write to.
    pub(crate) rings: Vec<OutboundRing>,
    /// The connection being opened or in use.
    pub(crate) link: Option<LinkId>,
    /// Wait before the next attempt after a failure.
    backoff: Duration,
    /// Earliest time to dial again.
    pub(crate) next_attempt: Instant,
}

impl Peer {
    fn new(now: Instant, backoff: Duration) -> Self {
        Self {
            addr: None,
            rings: Vec::new(),
            link: None,
            backoff,
            next_attempt: now,
        }
    }
}

/// Every peer this worker knows of: those in the peer set, those that connected to it, and
/// those it has rings for.
#[derive(Debug)]
pub(crate) struct PeerTable {
    peers: HashMap<WorkerId, Peer>,
    min_backoff: Duration,
    max_backoff: Duration,
}

/// What changed when the peer set was replaced.
#[derive(Debug, Default)]
pub(crate) struct SetChange {
    /// Peers that left the set, with the connection they had.
    pub(crate) removed: Vec<(WorkerId, Option<LinkId>)>,
    /// Peers whose address changed, with the connection to the old address.
    pub(crate) moved: Vec<(WorkerId, LinkId)>,
}

impl PeerTable {
    pub(crate) fn new(min_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            peers: HashMap::new(),
            min_backoff,
            max_backoff,
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, worker: WorkerId) -> Option<&Peer> {
        self.peers.get(&worker)
    }

    pub(crate) fn get_mut(&mut self, worker: WorkerId) -> Option<&mut Peer> {
        self.peers.get_mut(&worker)
    }

    /// The peer, created (outside the peer set) if unknown.
    pub(crate) fn entry(&mut self, worker: WorkerId, now: Instant) -> &mut Peer {
        let backoff = self.min_backoff;
        self.peers
            .entry(worker)
            .or_insert_with(|| Peer::new(now, backoff))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&WorkerId, &mut Peer)> {
        self.peers.iter_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&WorkerId, &Peer)> {
        self.peers.iter()
    }

    /// Replaces the peer set. Peers that leave it are forgotten with their rings (their
    /// senders see the rings closed); peers that connected on their own and were never in
    /// the set stay.
    pub(crate) fn set(&mut self, specs: Vec<PeerSpec>, now: Instant) -> SetChange {
        let mut change = SetChange::default();
        let wanted: HashMap<WorkerId, PeerAddr> = specs
            .into_iter()
            .map(|spec| (spec.worker, spec.addr))
            .collect();
        let leaving: Vec<WorkerId> = self
            .peers
            .iter()
            .filter(|(worker, peer)| peer.addr.is_some() && !wanted.contains_key(worker))
            .map(|(worker, _)| *worker)
            .collect();
        for worker in leaving {
            let peer = self.peers.remove(&worker).expect("listed above");
            change.removed.push((worker, peer.link));
        }
        for (worker, addr) in wanted {
            let peer = self.entry(worker, now);
            if peer.addr.as_ref() != Some(&addr) {
                if peer.addr.is_some()
                    && let Some(link) = peer.link
                {
                    change.moved.push((worker, link));
                }
                peer.addr = Some(addr);
                peer.next_attempt = now;
            }
        }
        change
    }

    /// The connection `link` to `worker` failed or ended: dial again after the backoff,
    /// which doubles.
    pub(crate) fn link_gone(&mut self, worker: WorkerId, link: LinkId, now: Instant) {
        let max = self.max_backoff;
        if let Some(peer) = self.peers.get_mut(&worker)
            && peer.link == Some(link)
        {
            peer.link = None;
            peer.next_attempt = now + peer.backoff;
            peer.backoff = (peer.backoff * 2).min(max);
        }
    }

    /// A connection to `worker` authenticated: the backoff starts over.
    pub(crate) fn link_up(&mut self, worker: WorkerId) {
        let min = self.min_backoff;
        if let Some(peer) = self.peers.get_mut(&worker) {
            peer.backoff = min;
        }
    }

    /// Dials `worker` at the next opportunity, whatever the backoff says: what made the
    /// last attempts fail has changed. The backoff itself stays.
    pub(crate) fn retry_now(&mut self, worker: WorkerId, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&worker) {
            peer.next_attempt = now;
        }
    }

    /// A dial attempt to `worker` failed before a connection existed.
    pub(crate) fn dial_failed(&mut self, worker: WorkerId, now: Instant) {
        let max = self.max_backoff;
        if let Some(peer) = self.peers.get_mut(&worker) {
            peer.next_attempt = now + peer.backoff;
            peer.backoff = (peer.backoff * 2).min(max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(port: u16) -> PeerAddr {
        PeerAddr::Tcp(([127, 0, 0, 1], port).into())
    }

    #[test]
    fn backoff_doubles_up_to_the_max_and_resets_on_success() {
        let now = Instant::now();
        let mut table = PeerTable::new(Duration::from_millis(100), Duration::from_millis(350));
        table.set(
            vec![PeerSpec {
                worker: WorkerId(2),
                addr: tcp(1),
            }],
            now,
        );
        let link = LinkId::Socket(crate::transport::driver::ConnId(9));
        let mut waits = Vec::new();
        for _ in 0..4 {
            table.get_mut(WorkerId(2)).unwrap().link = Some(link);
            table.link_gone(WorkerId(2), link, now);
            waits.push(table.get(WorkerId(2)).unwrap().next_attempt - now);
        }
        let ms = |n| Duration::from_millis(n);
        assert_eq!(waits, [ms(100), ms(200), ms(350), ms(350)]);
        table.link_up(WorkerId(2));
        table.get_mut(WorkerId(2)).unwrap().link = Some(link);
        table.link_gone(WorkerId(2), link, now);
        assert_eq!(table.get(WorkerId(2)).unwrap().next_attempt - now, ms(100));
    }

    #[test]
    fn replacing_the_set_reports_removed_and_moved_peers() {
        let now = Instant::now();
        let mut table = PeerTable::new(Duration::from_millis(100), Duration::from_secs(1));
        let spec = |w, port| PeerSpec {
            worker: WorkerId(w),
            addr: tcp(port),
        };
        table.set(vec![spec(2, 1), spec(3, 1)], now);
        let link = LinkId::Socket(crate::transport::driver::ConnId(1));
        table.get_mut(WorkerId(3)).unwrap().link = Some(link);
        // Worker 4 connected on its own; it is not in the set and stays.
        table.entry(WorkerId(4), now);
        let change = table.set(vec![spec(3, 2)], now);
        assert_eq!(change.removed.len(), 1);
        assert_eq!(change.removed[0].0, WorkerId(2));
        assert_eq!(change.moved, [(WorkerId(3), link)]);
        assert!(table.get(WorkerId(4)).is_some());
    }
}
