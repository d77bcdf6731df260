//! The published streams a DRPC server knows and their subscribers, as plain data: each
//! tuple published is offered to every subscriber's bounded queue, and a subscriber whose
//! queue is full is removed and handed back, so one slow reader never holds up the
//! topology or the other readers. No I/O: the server turns what comes out into events.

use std::collections::HashMap;
use std::sync::Arc;

/// What a subscriber's queue did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued.
    Queued,
    /// The queue is full: the subscriber is too slow.
    Full,
    /// The subscriber is gone (its connection closed).
    Gone,
}

/// Where a subscriber's events go.
pub trait Sink {
    /// Queues `event` without waiting.
    fn offer(&mut self, event: &Arc<str>) -> Offer;
}

/// A subscriber's id, for unsubscribing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriberId(u64);

#[derive(Debug)]
struct Stream<S> {
    published: u64,
    subscribers: Vec<(SubscriberId, S)>,
}

impl<S> Default for Stream<S> {
    fn default() -> Self {
        Self {
            published: 0,
            subscribers: Vec::new(),
        }
    }
}

/// One server's published streams, by full name (`<topology name>/<stream>`).
#[derive(Debug)]
pub struct Streams<S> {
    streams: HashMap<String, Stream<S>>,
    next_subscriber: u64,
}

impl<S> Default for Streams<S> {
    fn default() -> Self {
        Self {
            streams: HashMap::new(),
            next_subscriber: 0,
        }
    }
}

/// The text of the event carrying the `sequence`th tuple of a stream: its JSON array as
/// the data, and its place in the stream as the id.
pub fn event_text(sequence: u64, tuple: &serde_json::Value) -> Arc<str> {
    format!("id: {sequence}\ndata: {tuple}\n\n").into()
}

impl<S: Sink> Streams<S> {
    /// No streams.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sink` as a subscriber of `stream`, known or not yet published; returns its id
    /// and whether the stream has been published.
    pub fn subscribe(&mut self, stream: &str, sink: S) -> (SubscriberId, bool) {
        let id = SubscriberId(self.next_subscriber);
        self.next_subscriber += 1;
        let known = self.streams.contains_key(stream);
        self.streams
            .entry(stream.to_owned())
            .or_default()
            .subscribers
            .push((id, sink));
        (id, known)
    }

    /// Removes subscriber `id` of `stream`, if it is still there.
    pub fn unsubscribe(&mut self, stream: &str, id: SubscriberId) -> Option<S> {
        let entry = self.streams.get_mut(stream)?;
        let at = entry
            .subscribers
            .iter()
            .position(|(subscriber, _)| *subscriber == id)?;
        Some(entry.subscribers.remove(at).1)
    }

    /// Offers `tuples` to every subscriber of `stream`, in order; returns the subscribers
    /// removed because their queue was full. Subscribers that are gone are forgotten.
    pub fn publish(&mut self, stream: &str, tuples: &[serde_json::Value]) -> Vec<S> {
        let entry = self.streams.entry(stream.to_owned()).or_default();
        let mut slow = Vec::new();
        for tuple in tuples {
            entry.published += 1;
            if entry.subscribers.is_empty() {
                continue;
            }
            let event = event_text(entry.published, tuple);
            let mut index = 0;
            while index < entry.subscribers.len() {
                match entry.subscribers[index].1.offer(&event) {
                    Offer::Queued => index += 1,
                    Offer::Full => slow.push(entry.subscribers.swap_remove(index).1),
                    Offer::Gone => {
                        entry.subscribers.swap_remove(index);
                    }
                }
            }
        }
        slow
    }

    /// Tuples published on `stream` so far (0 when it is unknown).
    pub fn published(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |entry| entry.published)
    }

    /// Every known stream's published count and subscribers, by name.
    pub fn gauges(&self) -> Vec<super::figures::StreamGauges> {
        let mut gauges: Vec<_> = self
            .streams
            .iter()
            .map(|(stream, entry)| super::figures::StreamGauges {
                stream: stream.clone(),
                published: entry.published,
                subscribers: entry.subscribers.len(),
            })
            .collect();
        gauges.sort_by(|a, b| a.stream.cmp(&b.stream));
        gauges
    }

    /// Subscribers of `stream`.
    pub fn subscriber_count(&self, stream: &str) -> usize {
        self.streams
            .get(stream)
            .map_or(0, |entry| entry.subscribers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue of `capacity` events; `None` once its reader is gone.
    #[derive(Debug)]
    struct Queue {
        events: Option<Vec<Arc<str>>>,
        capacity: usize,
    }

    impl Queue {
        fn new(capacity: usize) -> Self {
            Self {
                events: Some(Vec::new()),
                capacity,
            }
        }
    }

    impl Sink for Queue {
        fn offer(&mut self, event: &Arc<str>) -> Offer {
            match &mut self.events {
                None => Offer::Gone,
                Some(events) if events.len() == self.capacity => Offer::Full,
                Some(events) => {
                    events.push(event.clone());
                    Offer::Queued
                }
            }
        }
    }

    fn tuples(range: std::ops::Range<u64>) -> Vec<serde_json::Value> {
        range.map(|n| serde_json::json!(["w", n])).collect()
    }

    #[test]
    fn a_full_subscriber_is_dropped_and_the_others_keep_everything() {
        let mut streams = Streams::new();
        let (_, known) = streams.subscribe("t/s", Queue::new(2));
        assert!(!known);
        streams.subscribe("t/s", Queue::new(100));
        let slow = streams.publish("t/s", &tuples(0..5));
        assert_eq!(slow.len(), 1);
        assert_eq!(slow[0].events.as_ref().unwrap().len(), 2);
        assert_eq!(streams.subscriber_count("t/s"), 1);
        assert_eq!(streams.published("t/s"), 5);
        let (_, known) = streams.subscribe("t/s", Queue::new(1));
        assert!(known);
        let slow = streams.publish("t/s", &tuples(5..6));
        assert!(slow.is_empty());
        let mut reading = streams
            .streams
            .get_mut("t/s")
            .unwrap()
            .subscribers
            .iter()
            .map(|(_, queue)| queue.events.clone().unwrap())
            .collect::<Vec<_>>();
        reading.sort_by_key(Vec::len);
        assert_eq!(&*reading[0][0], "id: 6\ndata: [\"w\",5]\n\n");
        assert_eq!(reading[1].len(), 6);
        assert_eq!(&*reading[1][0], "id: 1\ndata: [\"w\",0]\n\n");
    }

    #[test]
    fn gone_subscribers_are_forgotten_and_unsubscribing_works() {
        let mut streams = Streams::new();
        let (first, _) = streams.subscribe("t/s", Queue::new(10));
        let (second, _) = streams.subscribe("t/s", Queue::new(10));
        streams.subscribe("t/other", Queue::new(10));
        streams
            .streams
            .get_mut("t/s")
            .unwrap()
            .subscribers
            .iter_mut()
            .find(|(id, _)| *id == second)
            .unwrap()
            .1
            .events = None;
        assert!(streams.publish("t/s", &tuples(0..1)).is_empty());
        assert_eq!(streams.subscriber_count("t/s"), 1);
        assert!(streams.unsubscribe("t/s", second).is_none());
        assert_eq!(
            streams
                .unsubscribe("t/s", first)
                .unwrap()
                .events
                .unwrap()
                .len(),
            1
        );
        assert_eq!(streams.subscriber_count("t/s"), 0);
        assert_eq!(streams.subscriber_count("t/other"), 1);
        assert_eq!(streams.published("t/other"), 0);
    }
}
