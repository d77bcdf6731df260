//! Credit accounting: how many BATCH bytes each direction may carry.
//!
//! Both counters are cumulative over the connection's life, as on the wire: a CREDIT frame
//! carries the total the receiver allows, never an increment.

/// The sending direction: what the peer allows, and what this side used.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SendCredit {
    /// Total BATCH bytes the peer allows (its latest CREDIT).
    pub(crate) limit: u64,
    /// Total BATCH bytes sent.
    pub(crate) sent: u64,
}

impl SendCredit {
    /// BATCH bytes that may be sent now.
    pub(crate) fn available(&self) -> u64 {
        self.limit - self.sent
    }
}

/// The receiving direction: what this side granted, received and handed on, and how large
/// a window it grants.
///
/// Invariants: `delivered <= received <= granted`, and `granted <= delivered + window`, so
/// the bytes received but not yet delivered never exceed the window, and the window never
/// exceeds `max_window`.
///
/// # Sizing the window from bandwidth × delay
///
/// The window must cover what the sender can send during one credit round trip, which this
/// side cannot know in advance: the round trip is the scheduler's as much as the wire's.
/// So the window starts small and doubles whenever it, and not the consumer, held the
/// sender back: a frame arrived when less than a quarter of the window was left to the
/// sender, and its records went straight to their consumers (nothing waits for room). A
/// window that grows only then settles at about bandwidth × delay, rounded up to a power of
/// two, and stays small for a consumer that cannot keep up, whose backlog would otherwise
/// only add latency.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceiveCredit {
    /// The window granted now.
    pub(crate) window: u64,
    /// The largest window: the memory this connection's inbound data may take.
    pub(crate) max_window: u64,
    /// Total BATCH bytes this side allows (its latest CREDIT, sent or queued).
    pub(crate) granted: u64,
    /// Total BATCH bytes received.
    pub(crate) received: u64,
    /// Total BATCH bytes handed to consumers.
    pub(crate) delivered: u64,
    /// Credit the sender had left when the latest frame arrived.
    left_at_arrival: u64,
}

impl ReceiveCredit {
    pub(crate) fn new(initial_window: u64, max_window: u64) -> Self {
        Self {
            window: initial_window.min(max_window),
            max_window,
            granted: 0,
            received: 0,
            delivered: 0,
            left_at_arrival: u64::MAX,
        }
    }

    /// Records a BATCH frame of `len` bytes received; `false` when it overruns the credit.
    pub(crate) fn receive(&mut self, len: u64) -> bool {
        let received = self.received + len;
        if received > self.granted {
            return false;
        }
        self.left_at_arrival = self.granted - received;
        self.received = received;
        true
    }

    /// Records that `len` bytes of BATCH frames were handed to consumers and returns the
    /// new limit to grant, if one is due.
    ///
    /// A new limit is due once a quarter of the window has been freed, or as soon as every
    /// received byte is delivered. The second rule matters when the peer waits for room
    /// for a large frame: with nothing in flight, it gets the whole window back at once. So
    /// a consumer that keeps up returns credit after every frame, and credit is held back
    /// only while records wait for room: that is the backpressure.
    pub(crate) fn deliver(&mut self, len: u64) -> Option<u64> {
        self.delivered = (self.delivered + len).min(self.received);
        let idle = self.delivered == self.received;
        if idle && self.left_at_arrival < self.window / 4 && self.window < self.max_window {
            self.window = (self.window * 2).min(self.max_window);
        }
        self.left_at_arrival = u64::MAX;
        let target = self.delivered + self.window;
        let freed = target.saturating_sub(self.granted);
        if freed > 0 && (freed >= self.window / 4 || idle) {
            self.granted = target;
            Some(target)
        } else {
            None
        }
    }

    /// The first grant: the whole initial window.
    pub(crate) fn open(&mut self) -> u64 {
        self.granted = self.delivered + self.window;
        self.granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_follow_deliveries_in_quarters_or_when_idle() {
        let mut credit = ReceiveCredit::new(1000, 1000);
        assert_eq!(credit.open(), 1000);
        credit.received = 600;
        assert_eq!(credit.deliver(100), None, "100 freed, 500 still in flight");
        assert_eq!(
            credit.deliver(200),
            Some(1300),
            "a quarter of the window freed"
        );
        assert_eq!(
            credit.deliver(300),
            Some(1600),
            "idle: everything received delivered"
        );
        assert_eq!(credit.deliver(0), None, "nothing more to grant");
    }

    #[test]
    fn delivering_more_than_received_is_capped() {
        let mut credit = ReceiveCredit::new(1000, 1000);
        credit.open();
        credit.received = 100;
        assert_eq!(credit.deliver(5000), Some(1100));
        assert_eq!(credit.delivered, 100);
    }

    #[test]
    fn the_window_doubles_when_it_starves_a_sender_whose_consumer_keeps_up() {
        let mut credit = ReceiveCredit::new(1000, 3000);
        assert_eq!(credit.open(), 1000);
        assert!(credit.receive(900), "100 bytes of credit left");
        assert_eq!(
            credit.deliver(900),
            Some(2900),
            "window 2000 from delivered 900"
        );
        assert_eq!(credit.window, 2000);
        assert!(credit.receive(1900));
        assert_eq!(
            credit.deliver(1900),
            Some(5800),
            "capped at the largest window"
        );
        assert_eq!(credit.window, 3000);
    }

    #[test]
    fn the_window_stays_when_the_consumer_holds_the_sender_back() {
        let mut credit = ReceiveCredit::new(1000, 8000);
        credit.open();
        assert!(credit.receive(400));
        assert!(credit.receive(500));
        assert_eq!(credit.deliver(400), Some(1400), "a quarter freed");
        assert_eq!(credit.window, 1000, "records still wait for room");
        assert!(credit.receive(100), "300 of 1400 left: plenty");
        assert_eq!(credit.deliver(600), Some(2000));
        assert_eq!(credit.window, 1000, "the sender was not short of credit");
    }

    #[test]
    fn a_frame_beyond_the_grant_is_refused() {
        let mut credit = ReceiveCredit::new(1000, 1000);
        credit.open();
        assert!(!credit.receive(1001));
        assert_eq!(credit.received, 0);
    }
}
