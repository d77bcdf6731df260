//! Bounds the connections that have not yet authenticated. Each holds a [`Pending`] from
//! accept until its request is verified; when the bound is reached, the oldest is told to
//! close so that a newcomer is admitted. Connections left idle thus cannot lock clients
//! out: a client that sends its request at once authenticates long before enough
//! newcomers arrive to push it out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The connections waiting to authenticate.
#[derive(Debug)]
pub(crate) struct Admission {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Oldest first.
    pending: VecDeque<(u64, Arc<Notify>)>,
}

/// One connection's place until it authenticates or closes.
#[derive(Debug)]
pub(crate) struct Pending {
    id: u64,
    evicted: Arc<Notify>,
    admission: Arc<Admission>,
}

impl Admission {
    /// At most `limit` (at least 1) connections wait at once.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// Admits a new connection, evicting the oldest waiting one when full.
    pub(crate) fn admit(self: &Arc<Self>) -> Pending {
        let evicted = Arc::new(Notify::new());
        let mut state = self.state.lock().expect("admission lock");
        while state.pending.len() >= self.limit {
            if let Some((_, oldest)) = state.pending.pop_front() {
                // Stored if the connection is not waiting on it yet.
                oldest.notify_one();
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        state.pending.push_back((id, evicted.clone()));
        Pending {
            id,
            evicted,
            admission: self.clone(),
        }
    }

    /// Connections waiting now.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock().expect("admission lock").pending.len()
    }
}

impl Pending {
    /// Returns once a newer connection has taken this one's place.
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut state = self.admission.state.lock().expect("admission lock");
        if let Some(index) = state.pending.iter().position(|(id, _)| *id == self.id) {
            state.pending.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn evicted_soon(pending: &Pending) -> bool {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                tokio::time::timeout(Duration::from_millis(50), pending.evicted())
                    .await
                    .is_ok()
            })
    }

    #[test]
    fn the_oldest_waiting_connection_makes_room() {
        let admission = Admission::new(2);
        let first = admission.admit();
        let second = admission.admit();
        assert_eq!(admission.waiting(), 2);
        assert!(!evicted_soon(&first));
        let third = admission.admit();
        assert_eq!(admission.waiting(), 2);
        assert!(evicted_soon(&first));
        assert!(!evicted_soon(&second));
        assert!(!evicted_soon(&third));
        drop(first);
        assert_eq!(admission.waiting(), 2, "an evicted place is already free");
    }

    #[test]
    fn an_authenticated_connection_leaves_its_place() {
        let admission = Admission::new(2);
        let first = admission.admit();
        let second = admission.admit();
        drop(second);
        assert_eq!(admission.waiting(), 1);
        let _third = admission.admit();
        assert!(!evicted_soon(&first), "there was room");
        let _fourth = admission.admit();
        assert!(evicted_soon(&first));
    }
}
