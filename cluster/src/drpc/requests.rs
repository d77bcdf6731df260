//! The requests a DRPC server holds, as plain data: which wait to be fetched, which are
//! with a topology, and who to answer. No I/O and no clock: the server passes deadlines
//! in and acts on what comes out.

use std::collections::{HashMap, VecDeque};

use squall_drpc::protocol::FetchedRequest;

/// One request not yet answered; `R` is how to answer its client.
#[derive(Debug)]
pub struct Open<R> {
    /// The function.
    pub function: String,
    /// Where its answer goes.
    pub reply: R,
}

/// The requests of one server.
#[derive(Debug)]
pub struct Requests<R> {
    next_id: u64,
    waiting: HashMap<String, VecDeque<(u64, String)>>,
    open: HashMap<u64, Open<R>>,
}

impl<R> Requests<R> {
    /// No requests; ids start at `first_id` (random per server start, so a result for a
    /// request of an earlier run of the server is not taken for one of this run).
    pub fn new(first_id: u64) -> Self {
        Self {
            next_id: first_id,
            waiting: HashMap::new(),
            open: HashMap::new(),
        }
    }

    /// Queues `function(argument)` for a spout; returns its id.
    pub fn submit(&mut self, function: &str, argument: String, reply: R) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.waiting
            .entry(function.to_owned())
            .or_default()
            .push_back((id, argument));
        self.open.insert(
            id,
            Open {
                function: function.to_owned(),
                reply,
            },
        );
        id
    }

    /// Up to `max` waiting requests of `function`, oldest first, handed to a spout.
    pub fn take(&mut self, function: &str, max: usize) -> Vec<FetchedRequest> {
        let Some(queue) = self.waiting.get_mut(function) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some((request, argument)) = queue.pop_front() else {
                break;
            };
            // Requests that timed out while waiting are gone from `open`.
            if self.open.contains_key(&request) {
                taken.push(FetchedRequest { request, argument });
            }
        }
        if queue.is_empty() {
            self.waiting.remove(function);
        }
        taken
    }

    /// Ends request `id` (answered, failed or timed out): how to answer its client, if it
    /// is still open.
    pub fn finish(&mut self, id: u64) -> Option<Open<R>> {
        self.open.remove(&id)
    }

    /// Requests not yet answered.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Requests waiting for a spout, over every function.
    pub fn waiting_count(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_fetched_per_function_oldest_first() {
        let mut requests = Requests::new(10);
        let a = requests.submit("f", "1".into(), 'a');
        let b = requests.submit("g", "2".into(), 'b');
        let c = requests.submit("f", "3".into(), 'c');
        assert_eq!((a, b, c), (10, 11, 12));
        let fetched = requests.take("f", 5);
        assert_eq!(
            fetched,
            vec![
                FetchedRequest {
                    request: 10,
                    argument: "1".into()
                },
                FetchedRequest {
                    request: 12,
                    argument: "3".into()
                }
            ]
        );
        assert!(requests.take("f", 5).is_empty());
        assert_eq!(requests.waiting_count(), 1);
        assert_eq!(requests.finish(12).unwrap().reply, 'c');
        assert!(requests.finish(12).is_none());
        assert_eq!(requests.open_count(), 2);
    }

    #[test]
    fn a_request_finished_while_waiting_is_not_fetched() {
        let mut requests = Requests::new(0);
        let id = requests.submit("f", "x".into(), ());
        requests.submit("f", "y".into(), ());
        assert!(requests.finish(id).is_some());
        let fetched = requests.take("f", 1);
        assert_eq!(fetched.len(), 1);
        assert_eq!(fetched[0].argument, "y");
        assert_eq!(requests.waiting_count(), 0);
    }
}
