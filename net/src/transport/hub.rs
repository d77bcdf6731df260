//! In-process links: workers of one process connected through heap record rings that an
//! [`InProcessHub`] hands over, instead of sockets or shared-memory files.
//!
//! A link carries the frames of the wire protocol exactly as a shared-memory link does
//! (handshake, credits, heartbeats, close), one frame per ring record, so everything above
//! the rings is the code that runs between processes. What differs is how the two ends
//! meet and how they wake: the worker with the smaller id asks the hub for a link, the hub
//! makes both rings and leaves the peer's ends for it, and each side wakes the other's
//! transport thread (its driver's waker, through the same doorbell executors ring) after
//! it publishes frames or frees room, so nothing polls.
//!
//! The hub is also where a test steers the links: it can [cut](InProcessHub::cut) a link
//! (both sides close it and report the peer down, and no new link forms until
//! [`restore`](InProcessHub::restore)), and [pause](InProcessHub::pause) one direction,
//! which makes the receiving side take no frames — a consumer that stopped — so the sender
//! runs out of credit ([`TransportStats::credit_exhausted`](super::TransportStats)).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use squall_ringbuf::record::{RecordConsumer, RecordProducer, heap_ring};

use super::error::TransportError;
use super::wake::WakeState;
use crate::ids::WorkerId;

/// The flags both sides of one in-process link read: set by the hub, acted on by the two
/// transport threads.
#[derive(Debug, Default)]
pub(crate) struct LinkControl {
    cut: AtomicBool,
    /// Per direction (see [`direction`]): the receiving side takes no frames.
    paused: [AtomicBool; 2],
}

impl LinkControl {
    /// Whether the hub cut this link: both sides must close it.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Whether the receiving side of `direction` must take no frames.
    pub(crate) fn is_paused(&self, direction: usize) -> bool {
        self.paused[direction].load(Ordering::Acquire)
    }
}

/// The index of the direction from `from` to `to` in [`LinkControl`]: 0 from the smaller
/// id to the larger.
pub(crate) fn direction(from: WorkerId, to: WorkerId) -> usize {
    usize::from(from > to)
}

/// One side's ends of an in-process link.
#[derive(Debug)]
pub(crate) struct InProcessEnds {
    /// Frames to the peer.
    pub(crate) tx: RecordProducer,
    /// Frames from the peer.
    pub(crate) rx: RecordConsumer,
    pub(crate) control: Arc<LinkControl>,
    /// The peer transport's doorbell, rung after publishing frames or freeing room.
    pub(crate) peer_wake: Arc<WakeState>,
    /// The direction `rx` carries.
    pub(crate) rx_direction: usize,
}

/// A registered transport.
#[derive(Debug)]
struct Registered {
    wake: Arc<WakeState>,
    /// Raised when the hub has something for the transport: an offered link, a restored
    /// or resumed one.
    news: Arc<AtomicBool>,
}

impl Registered {
    fn tell(&self) {
        self.news.store(true, Ordering::Release);
        self.wake.wake();
    }
}

#[derive(Debug, Default)]
struct HubState {
    workers: HashMap<WorkerId, Registered>,
    /// Ends left for a worker by the peer that asked for the link: (for, from).
    offers: HashMap<(WorkerId, WorkerId), InProcessEnds>,
    /// The current link of each pair (smaller id first).
    links: HashMap<(WorkerId, WorkerId), Arc<LinkControl>>,
    /// Pairs the test cut, and not restored yet.
    cut: HashSet<(WorkerId, WorkerId)>,
    /// Directions (from, to) the test paused.
    paused: HashSet<(WorkerId, WorkerId)>,
}

/// Connects the transports of workers running in one process through heap record rings
/// carrying the wire protocol's frames, one frame per record, as shared memory does; it can
/// cut a link and pause one direction. Create one per group of workers, hand it to each worker's
/// transport ([`TransportConfig::with_in_process`](super::TransportConfig::with_in_process)),
/// and name peers with [`PeerSpec::in_process`](super::PeerSpec::in_process).
///
/// ```
/// use squall_net::WorkerId;
/// use squall_net::transport::InProcessHub;
///
/// let hub = InProcessHub::new();
/// // A test can steer links before or while workers use them.
/// hub.pause(WorkerId(1), WorkerId(2));
/// hub.resume(WorkerId(1), WorkerId(2));
/// hub.cut(WorkerId(1), WorkerId(2));
/// assert!(hub.is_cut(WorkerId(2), WorkerId(1)));
/// hub.restore(WorkerId(1), WorkerId(2));
/// ```
#[derive(Default)]
pub struct InProcessHub {
    state: Mutex<HubState>,
}

impl fmt::Debug for InProcessHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InProcessHub")
            .field("workers", &state.workers.len())
            .field("links", &state.links.len())
            .field("cut", &state.cut)
            .field("paused", &state.paused)
            .finish()
    }
}

fn pair(a: WorkerId, b: WorkerId) -> (WorkerId, WorkerId) {
    (a.min(b), a.max(b))
}

impl InProcessHub {
    /// A hub with no worker yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves plain maps behind, still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cuts the link between `a` and `b`: both transports close it and report the other
    /// [down](super::PeerEvent::Down); records in flight on it are lost, records still in
    /// executors' outbound rings wait. No new link forms until [`restore`](Self::restore).
    pub fn cut(&self, a: WorkerId, b: WorkerId) {
        let mut state = self.lock();
        let key = pair(a, b);
        state.cut.insert(key);
        if let Some(control) = state.links.remove(&key) {
            control.cut.store(true, Ordering::Release);
        }
        state.offers.remove(&(a, b));
        state.offers.remove(&(b, a));
        for worker in [a, b] {
            if let Some(registered) = state.workers.get(&worker) {
                registered.tell();
            }
        }
    }

    /// Lets `a` and `b` link again after a [`cut`](Self::cut); they reconnect at once.
    pub fn restore(&self, a: WorkerId, b: WorkerId) {
        let mut state = self.lock();
        state.cut.remove(&pair(a, b));
        for worker in [a, b] {
            if let Some(registered) = state.workers.get(&worker) {
                registered.tell();
            }
        }
    }

    /// Whether the link between `a` and `b` is cut.
    pub fn is_cut(&self, a: WorkerId, b: WorkerId) -> bool {
        self.lock().cut.contains(&pair(a, b))
    }

    /// Makes `to` take no records from `from` (until [`resume`](Self::resume)), as if its
    /// consumers had stopped: the first BATCH that arrives waits in the ring, `to` stops
    /// reading and grants no more credit, and `from` stops sending once the credit it has
    /// is spent. As for a receiver whose consumers are full, the silence that follows does
    /// not count against `from`.
    pub fn pause(&self, from: WorkerId, to: WorkerId) {
        self.set_paused(from, to, true);
    }

    /// Lets `to` take frames from `from` again.
    pub fn resume(&self, from: WorkerId, to: WorkerId) {
        self.set_paused(from, to, false);
    }

    fn set_paused(&self, from: WorkerId, to: WorkerId, paused: bool) {
        let mut state = self.lock();
        if paused {
            state.paused.insert((from, to));
        } else {
            state.paused.remove(&(from, to));
        }
        if let Some(control) = state.links.get(&pair(from, to)) {
            control.paused[direction(from, to)].store(paused, Ordering::Release);
        }
        if let Some(registered) = state.workers.get(&to) {
            // Resuming frees room as a consumer would: blocked deliveries retry at once.
            registered.wake.room_freed();
        }
    }

    /// Registers the transport of `worker`, woken through `wake`.
    pub(crate) fn register(
        self: &Arc<Self>,
        worker: WorkerId,
        wake: Arc<WakeState>,
    ) -> Result<HubRegistration, TransportError> {
        let mut state = self.lock();
        if state.workers.contains_key(&worker) {
            return Err(TransportError::InProcessWorkerTaken(worker));
        }
        let news = Arc::new(AtomicBool::new(false));
        state.workers.insert(
            worker,
            Registered {
                wake,
                news: Arc::clone(&news),
            },
        );
        // Peers that gave up dialling this worker try again now.
        for (other, registered) in &state.workers {
            if *other != worker {
                registered.tell();
            }
        }
        Ok(HubRegistration {
            hub: Arc::clone(self),
            worker,
            news,
        })
    }
}

/// A transport's place in the hub; dropping it unregisters the transport.
#[derive(Debug)]
pub(crate) struct HubRegistration {
    hub: Arc<InProcessHub>,
    worker: WorkerId,
    news: Arc<AtomicBool>,
}

impl HubRegistration {
    /// Whether the hub has news for this transport since the last call.
    pub(crate) fn take_news(&self) -> bool {
        self.news.load(Ordering::Relaxed) && self.news.swap(false, Ordering::Acquire)
    }

    /// A new link to `peer`, made by this side (the one with the smaller id); the peer's
    /// ends wait in the hub. `None` while the peer is not registered or the pair is cut.
    pub(crate) fn connect(&self, peer: WorkerId, ring_bytes: usize) -> Option<InProcessEnds> {
        let me = self.worker;
        let mut state = self.hub.lock();
        let key = pair(me, peer);
        if state.cut.contains(&key) {
            return None;
        }
        let mine = state.workers.get(&me)?;
        let theirs = state.workers.get(&peer)?;
        let control = Arc::new(LinkControl::default());
        for (from, to) in [(me, peer), (peer, me)] {
            let paused = state.paused.contains(&(from, to));
            control.paused[direction(from, to)].store(paused, Ordering::Relaxed);
        }
        let (to_peer, from_me) = heap_ring(ring_bytes);
        let (to_me, from_peer) = heap_ring(ring_bytes);
        let my_ends = InProcessEnds {
            tx: to_peer,
            rx: from_peer,
            control: Arc::clone(&control),
            peer_wake: Arc::clone(&theirs.wake),
            rx_direction: direction(peer, me),
        };
        let their_ends = InProcessEnds {
            tx: to_me,
            rx: from_me,
            control: Arc::clone(&control),
            peer_wake: Arc::clone(&mine.wake),
            rx_direction: direction(me, peer),
        };
        theirs.tell();
        state.offers.insert((peer, me), their_ends);
        if let Some(old) = state.links.insert(key, control) {
            // A link the peer has not taken yet, or one this side gave up: end it.
            old.cut.store(true, Ordering::Release);
        }
        Some(my_ends)
    }

    /// The links peers made for this transport since it last looked.
    pub(crate) fn take_offers(&self) -> Vec<(WorkerId, InProcessEnds)> {
        let me = self.worker;
        let mut state = self.hub.lock();
        let keys: Vec<(WorkerId, WorkerId)> = state
            .offers
            .keys()
            .filter(|(to, _)| *to == me)
            .copied()
            .collect();
        keys.into_iter()
            .filter_map(|key| state.offers.remove(&key).map(|ends| (key.1, ends)))
            .collect()
    }

    /// Whether `peer` is reached through this hub and the pair is not cut.
    pub(crate) fn may_link(&self, peer: WorkerId) -> bool {
        let state = self.hub.lock();
        state.workers.contains_key(&peer) && !state.cut.contains(&pair(self.worker, peer))
    }
}

impl Drop for HubRegistration {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        state.workers.remove(&self.worker);
        let me = self.worker;
        state
            .offers
            .retain(|(to, from), _| *to != me && *from != me);
        state.links.retain(|(a, b), _| *a != me && *b != me);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::driver::Waker;

    #[derive(Debug)]
    struct NoWaker;

    impl Waker for NoWaker {
        fn wake(&self) {}
    }

    fn wake() -> Arc<WakeState> {
        Arc::new(WakeState::new(Arc::new(NoWaker)))
    }

    #[test]
    fn the_smaller_id_makes_the_link_and_the_peer_finds_its_ends() {
        let hub = InProcessHub::new();
        let one = hub.register(WorkerId(1), wake()).unwrap();
        assert!(
            one.connect(WorkerId(2), 4096).is_none(),
            "the peer is not there yet"
        );
        let two = hub.register(WorkerId(2), wake()).unwrap();
        assert!(one.take_news(), "a new peer is news");
        let mut ends = one.connect(WorkerId(2), 4096).unwrap();
        assert!(two.take_news());
        let mut offers = two.take_offers();
        assert_eq!(offers.len(), 1);
        let (from, theirs) = &mut offers[0];
        assert_eq!(*from, WorkerId(1));
        ends.tx.write(b"frame").unwrap();
        ends.tx.publish();
        let batch = theirs.rx.read(1);
        assert_eq!(batch.iter().next(), Some(&b"frame"[..]));
        assert_eq!(ends.rx_direction, 1);
        assert_eq!(theirs.rx_direction, 0);
    }

    #[test]
    fn a_cut_pair_does_not_link_until_restored_and_pauses_outlive_links() {
        let hub = InProcessHub::new();
        let one = hub.register(WorkerId(1), wake()).unwrap();
        let _two = hub.register(WorkerId(2), wake()).unwrap();
        let ends = one.connect(WorkerId(2), 4096).unwrap();
        hub.cut(WorkerId(2), WorkerId(1));
        assert!(ends.control.is_cut());
        assert!(one.connect(WorkerId(2), 4096).is_none());
        assert!(!one.may_link(WorkerId(2)));
        hub.pause(WorkerId(2), WorkerId(1));
        hub.restore(WorkerId(1), WorkerId(2));
        let ends = one.connect(WorkerId(2), 4096).unwrap();
        assert!(ends.control.is_paused(ends.rx_direction));
        hub.resume(WorkerId(2), WorkerId(1));
        assert!(!ends.control.is_paused(ends.rx_direction));
    }

    #[test]
    fn a_worker_id_registers_once() {
        let hub = InProcessHub::new();
        let _one = hub.register(WorkerId(1), wake()).unwrap();
        let error = hub.register(WorkerId(1), wake()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "worker 1 is already registered with the in-process hub"
        );
    }
}
