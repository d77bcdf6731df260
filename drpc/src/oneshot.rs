//! A one-value channel whose receiving end is a future: how a thread hands an answer to
//! whatever executor awaits it, without the crate depending on an async runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

#[derive(Debug)]
struct Slot<T> {
    value: Option<T>,
    /// The sender was dropped: no value will come.
    abandoned: bool,
    waker: Option<Waker>,
}

/// Fills the slot once.
#[derive(Debug)]
pub(crate) struct Sender<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// Resolves to the value sent, or to `None` when the sender was dropped without one.
#[derive(Debug)]
pub(crate) struct Receiver<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// A connected pair.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        abandoned: false,
        waker: None,
    }));
    (Sender { slot: slot.clone() }, Receiver { slot })
}

fn lock<T>(slot: &Mutex<Slot<T>>) -> std::sync::MutexGuard<'_, Slot<T>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Sender<T> {
    /// Hands `value` over and wakes the receiver.
    pub(crate) fn send(self, value: T) {
        let waker = {
            let mut slot = lock(&self.slot);
            slot.value = Some(value);
            slot.waker.take()
        };
        // Woken outside the lock, so a receiver polled at once does not contend for it.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = lock(&self.slot);
            slot.abandoned = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = lock(&self.slot);
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Some(value));
        }
        if slot.abandoned {
            return Poll::Ready(None);
        }
        match &mut slot.waker {
            Some(waker) if waker.will_wake(context.waker()) => {}
            waker => *waker = Some(context.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    struct Unpark(std::thread::Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Runs `future` to completion on this thread, parking between polls.
    pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut context = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
            std::thread::park();
        }
    }

    #[test]
    fn a_value_sent_from_another_thread_wakes_the_receiver() {
        let (sender, receiver) = channel();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            sender.send(7);
        });
        assert_eq!(block_on(receiver), Some(7));
        thread.join().unwrap();
    }

    #[test]
    fn a_value_sent_before_the_first_poll_is_ready_at_once() {
        let (sender, receiver) = channel();
        sender.send("answer");
        assert_eq!(block_on(receiver), Some("answer"));
    }

    #[test]
    fn a_dropped_sender_ends_the_wait_with_none() {
        let (sender, receiver) = channel::<u8>();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(sender);
        });
        assert_eq!(block_on(receiver), None);
        thread.join().unwrap();
    }
}
