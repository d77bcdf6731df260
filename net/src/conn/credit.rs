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

/// The receiving direction: what this side granted, received and handed on.
///
/// Invariants: `delivered <= received <= granted`, and `granted <= delivered + window`, so
/// the bytes received but not yet delivered never exceed the window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceiveCredit {
    pub(crate) window: u64,
    /// Total BATCH bytes this side allows (its latest CREDIT, sent or queued).
    pub(crate) granted: u64,
    /// Total BATCH bytes received.
    pub(crate) received: u64,
    /// Total BATCH bytes handed to consumers.
    pub(crate) delivered: u64,
}

impl ReceiveCredit {
    pub(crate) fn new(window: u64) -> Self {
        Self {
            window,
            granted: 0,
            received: 0,
            delivered: 0,
        }
    }

    /// Records that `len` bytes of BATCH frames were handed to consumers and returns the
    /// new limit to grant, if one is due.
    ///
    /// A new limit is due once a quarter of the window has been freed, or as soon as every
    /// received byte is delivered. The second rule matters when the peer waits for room
    /// for a large frame: with nothing in flight, it gets the whole window back at once.
    pub(crate) fn deliver(&mut self, len: u64) -> Option<u64> {
        self.delivered = (self.delivered + len).min(self.received);
        let target = self.delivered + self.window;
        let freed = target - self.granted;
        let idle = self.delivered == self.received;
        if freed > 0 && (freed >= self.window / 4 || idle) {
            self.granted = target;
            Some(target)
        } else {
            None
        }
    }

    /// The first grant: the whole window.
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
        let mut credit = ReceiveCredit::new(1000);
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
        let mut credit = ReceiveCredit::new(1000);
        credit.open();
        credit.received = 100;
        assert_eq!(credit.deliver(5000), Some(1100));
        assert_eq!(credit.delivered, 100);
    }
}
