//! Wait strategies: how a thread waits for one of its rings to become ready.
//!
//! A [`WaitStrategy`] instance is a doorbell owned by one waiting thread (typically an
//! executor that drains its input rings). The waiter calls [`WaitStrategy::wait_until`] with
//! a readiness check; any number of other threads call [`WaitStrategy::notify`] after they
//! publish something the waiter might be waiting for (or free room it might be waiting for).
//!
//! | Strategy          | Waiting costs             | Wake-up latency  | `notify` costs            |
//! |-------------------|---------------------------|------------------|---------------------------|
//! | [`BusySpin`]      | a whole core              | lowest           | nothing                   |
//! | [`SpinThenYield`] | a core, shared with peers | scheduler slice  | nothing                   |
//! | [`SpinThenPark`]  | nothing once asleep       | a futex wake-up  | one load while none sleeps|
//!
//! [`WaitStrategyKind`] names the three in configuration (`"busy-spin"`, `"spin-yield"`,
//! `"spin-park"`) and builds them.
//!
//! # Sleeping without lost wake-ups
//!
//! [`SpinThenPark`] spins, then yields, then sleeps on a condition variable. Its notifier side
//! must stay cheap, so it does not take the lock unless someone sleeps. The protocol:
//!
//! - The waiter, holding the lock, increments a `sleepers` counter, runs a full fence, then
//!   calls `ready()` once more; only if that is still `false` does it sleep (the condition
//!   variable releases the lock atomically as it sleeps).
//! - A notifier has already made its data visible (a release store, e.g. a ring's `tail`). It
//!   runs a fence, then loads `sleepers`; only if it is not zero does it take the lock and
//!   signal the condition variable.
//!
//! The two fences make this a store-then-load handshake: either the waiter's final `ready()`
//! sees the notifier's data, or the notifier sees the waiter's increment (then the lock makes
//! sure the signal cannot fall between the waiter's check and its sleep). On Linux the
//! notifier's fence is only a compiler fence and the waiter's is `membarrier(2)`, which runs a
//! barrier on every thread of the process, so while nobody sleeps `notify` costs one relaxed
//! load and a branch; elsewhere both fences are `fence(SeqCst)`. The handshake is model-checked
//! with loom in `tests/loom/spsc.rs`.
//!
//! # Short timed waits nap
//!
//! A wait whose deadline is at most [`NAP_LIMIT`] away when the sleeping phase begins (a
//! paced source resting until its next burst, a thread looking again at a backlog) sleeps
//! without the handshake: a plain timed sleep that no notification cuts short, ended early
//! by as much as the thread's naps have been overshooting (a moving average), then a poll of
//! `ready()` between yields up to the deadline. What a notifier published meanwhile is seen
//! by that poll, at most [`NAP_LIMIT`] late; nothing is lost. The handshake's barrier would
//! cost more than that: a paced source rests tens of thousands of times a second, and each
//! barrier interrupts every other core that runs the process (through the hypervisor, on a
//! virtual machine) and serialises on a kernel-wide lock.
//!
//! # Sleeping only when it pays
//!
//! That barrier interrupts every other core running the process, producers included, and a
//! futex wake-up costs the notifier a system call. Both are worth paying to free an idle
//! core, not to bridge the short gaps of a producer that is merely slower than its consumer.
//! So [`SpinThenPark`] learns how long its sleeps last: a sleep that a notification ends
//! within [`SpinThenPark::SHORT_SLEEP`] doubles the yields tried before the next one (up to
//! its limit), and a longer sleep or an expired wait halves them back toward the floor. A
//! busy pipeline then polls through its gaps by yielding, which leaves the core to any
//! runnable thread, and an idle one still sleeps after a few hundred microseconds.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::Duration;
//!
//! use squall_ringbuf::wait::WaitStrategyKind;
//!
//! let doorbell = "spin-park".parse::<WaitStrategyKind>().unwrap().build();
//! let flag = Arc::new(AtomicBool::new(false));
//!
//! let (notifier_doorbell, notifier_flag) = (Arc::clone(&doorbell), Arc::clone(&flag));
//! let notifier = std::thread::spawn(move || {
//!     notifier_flag.store(true, Ordering::Release);
//!     notifier_doorbell.notify();
//! });
//!
//! let ready = doorbell.wait_until(Duration::from_secs(10), &mut || flag.load(Ordering::Acquire));
//! assert!(ready);
//! notifier.join().unwrap();
//! ```

use std::fmt;
use std::str::FromStr;
// Not the model-checked atomic under loom: only the waiting thread touches it.
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Condvar, FencePair, Mutex, Ordering, nap, spin_loop, yield_now};

/// How a thread waits for a condition that other threads make true.
///
/// One instance is the doorbell of one waiting thread; other threads [`notify`] it after
/// publishing. Implementations never miss a notification: a `ready()` that becomes true
/// before or during a wait ends the wait, at once or, for a wait shorter than
/// [`NAP_LIMIT`], at its timeout (see [`SpinThenPark`]).
///
/// [`notify`]: WaitStrategy::notify
pub trait WaitStrategy: Send + Sync + fmt::Debug {
    /// Waits until `ready()` is true or `timeout` passed; returns the last answer of
    /// `ready()`.
    ///
    /// `ready` is called first, before any clock is read, so an already-ready condition costs
    /// one call. `Duration::MAX` waits without a time limit.
    fn wait_until(&self, timeout: Duration, ready: &mut dyn FnMut() -> bool) -> bool;

    /// Wakes the waiter if it sleeps. While nobody sleeps it costs one atomic load and a
    /// branch.
    ///
    /// Call it after the store (with `Release` or stronger) that makes `ready()` true.
    fn notify(&self);
}

/// The longest timed wait that naps instead of sleeping with the handshake: see the
/// [module documentation](self#short-timed-waits-nap).
pub const NAP_LIMIT: Duration = Duration::from_micros(100);

/// Timer slack this crate asks for with [`tighten_timer_slack`], in nanoseconds.
pub const FINE_TIMER_SLACK_NANOS: u64 = 1_000;

/// Asks the kernel to end the calling thread's timed sleeps within about a microsecond of
/// their deadline; returns whether it agreed.
///
/// Linux lets an ordinary thread's timers fire up to 50 µs late so that wake-ups coalesce.
/// A waiter whose timeout is a paced source's next burst, tens of microseconds away, would
/// then oversleep by more than the wait itself. Only timed sleeps are affected; the cost is
/// more timer interrupts for the threads that ask.
pub fn tighten_timer_slack() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and changes only the
        // calling thread's timer slack; no memory is passed to the kernel.
        let answer = unsafe {
            libc::prctl(
                libc::PR_SET_TIMERSLACK,
                FINE_TIMER_SLACK_NANOS as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        answer == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Spins on `ready()` without ever giving up the core: the lowest latency, at the price of a
/// core kept at 100% while waiting.
#[derive(Debug, Clone, Copy, Default)]
pub struct BusySpin;

/// How many spins run between two clock readings.
const SPINS_PER_CLOCK_CHECK: u32 = 64;

impl WaitStrategy for BusySpin {
    fn wait_until(&self, timeout: Duration, ready: &mut dyn FnMut() -> bool) -> bool {
        if ready() {
            return true;
        }
        let deadline = Deadline::after(timeout);
        loop {
            for _ in 0..SPINS_PER_CLOCK_CHECK {
                spin_loop();
                if ready() {
                    return true;
                }
            }
            if deadline.has_passed() {
                return ready();
            }
        }
    }

    #[inline]
    fn notify(&self) {}
}

/// Spins on `ready()` a number of times, then offers the core to other threads between
/// checks (`std::thread::yield_now`).
#[derive(Debug, Clone, Copy)]
pub struct SpinThenYield {
    spins: u32,
}

impl SpinThenYield {
    /// Spins used by [`Default`]: a few microseconds, enough to cover a peer's short pause.
    pub const DEFAULT_SPINS: u32 = 256;

    /// Checks `ready()` `spins` times in a spin loop before it starts yielding.
    pub fn new(spins: u32) -> Self {
        Self { spins }
    }
}

impl Default for SpinThenYield {
    fn default() -> Self {
        Self::new(Self::DEFAULT_SPINS)
    }
}

impl WaitStrategy for SpinThenYield {
    fn wait_until(&self, timeout: Duration, ready: &mut dyn FnMut() -> bool) -> bool {
        if ready() {
            return true;
        }
        let deadline = Deadline::after(timeout);
        match spin(self.spins, &deadline, ready) {
            Some(answer) => answer,
            None => loop {
                yield_now();
                if ready() {
                    return true;
                }
                if deadline.has_passed() {
                    return false;
                }
            },
        }
    }

    #[inline]
    fn notify(&self) {}
}

/// Spins, then yields, then sleeps until notified (or the timeout passes): no CPU used while
/// idle, and a [`notify`](WaitStrategy::notify) that costs one load while nobody sleeps.
///
/// See the [module documentation](self) for the handshake that rules out lost wake-ups.
pub struct SpinThenPark {
    spins: u32,
    /// Yields before the next sleep, learnt from the last sleeps.
    patience: Patience,
    /// How late its naps end, learnt (see [`Oversleep`]).
    oversleep: Oversleep,
    /// Waiters between "about to check one last time" and "awake again"; loaded by every
    /// `notify`, so it sits alone on its cache line.
    sleepers: CachePadded<AtomicUsize>,
    /// Held by a waiter from its increment of `sleepers` until it sleeps, and by a notifier
    /// while it signals, so a signal cannot fall between the final check and the sleep.
    lock: Mutex<()>,
    wake: Condvar,
    fences: FencePair,
}

impl SpinThenPark {
    /// Spins used by [`Default`].
    pub const DEFAULT_SPINS: u32 = 256;
    /// Yields used by [`Default`] before a sleep, at the least.
    pub const DEFAULT_YIELDS: u32 = 16;
    /// Yields used by [`Default`] before a sleep, at the most: a few hundred microseconds.
    pub const DEFAULT_MAX_YIELDS: u32 = 1024;
    /// A sleep that a notification ends sooner than this did not pay for itself.
    pub const SHORT_SLEEP: Duration = Patience::SHORT_SLEEP;

    /// Checks `ready()` `spins` times in a spin loop, then `yields` times between yields of
    /// the core, then sleeps. It does not adapt: see [`with_max_yields`](Self::with_max_yields).
    pub fn new(spins: u32, yields: u32) -> Self {
        Self {
            spins,
            patience: Patience::new(yields, yields),
            oversleep: Oversleep::default(),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            fences: FencePair::new(),
        }
    }

    /// Lets the yields before a sleep grow up to `max_yields` while sleeps keep ending
    /// within [`SHORT_SLEEP`](Self::SHORT_SLEEP) (see the [module documentation](self)).
    #[must_use]
    pub fn with_max_yields(mut self, max_yields: u32) -> Self {
        self.patience = Patience::new(self.patience.fewest, max_yields);
        self
    }

    /// Yields the next wait tries before it sleeps.
    pub fn patience(&self) -> u32 {
        self.patience.get()
    }

    /// The sleeping phase, entered once spinning and yielding did not see `ready()`.
    #[cold]
    fn sleep_until(&self, deadline: &Deadline, ready: &mut dyn FnMut() -> bool) -> bool {
        if let Remaining::Left(left) = deadline.remaining()
            && left <= NAP_LIMIT
        {
            // Nothing for the patience to learn: a nap lasts as long as the deadline says,
            // whatever notifiers do.
            return self.nap_until(deadline, left, ready);
        }
        let slept = self.sleep_rounds(deadline, ready);
        self.patience.learn(slept);
        slept.is_some()
    }

    /// Naps until `left` before the deadline less what naps overshoot, then polls between
    /// yields until the deadline: the wait ends on time without spinning through all of it.
    fn nap_until(
        &self,
        deadline: &Deadline,
        left: Duration,
        ready: &mut dyn FnMut() -> bool,
    ) -> bool {
        if let Some(asked) = left.checked_sub(self.oversleep.get())
            && !asked.is_zero()
        {
            let fell_asleep = Instant::now();
            nap(asked);
            self.oversleep
                .learn(fell_asleep.elapsed().saturating_sub(asked));
        }
        loop {
            if ready() {
                return true;
            }
            if deadline.has_passed() {
                return false;
            }
            yield_now();
        }
    }

    /// Sleeps until `ready()`: `Some(time asleep)`, or `None` once the deadline passed.
    fn sleep_rounds(
        &self,
        deadline: &Deadline,
        ready: &mut dyn FnMut() -> bool,
    ) -> Option<Duration> {
        let fell_asleep = Instant::now();
        loop {
            // Lock poisoning cannot leave `()` inconsistent, so it is ignored.
            let guard = self
                .lock
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            // Relaxed: the fence below orders this store before the final `ready()`.
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            self.fences.heavy();
            if ready() {
                self.sleepers.fetch_sub(1, Ordering::Relaxed);
                return Some(fell_asleep.elapsed());
            }
            let guard = match deadline.remaining() {
                Remaining::Unlimited => self
                    .wake
                    .wait(guard)
                    .unwrap_or_else(|poison| poison.into_inner()),
                Remaining::Left(left) => {
                    self.wake
                        .wait_timeout(guard, left)
                        .unwrap_or_else(|poison| poison.into_inner())
                        .0
                }
                Remaining::Expired => {
                    self.sleepers.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
            };
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
            drop(guard);
            // Woken (or timed out, or spuriously): a plain check first; the next round's
            // fenced check covers a notification that this one might miss.
            if ready() {
                return Some(fell_asleep.elapsed());
            }
            if deadline.has_passed() {
                return None;
            }
        }
    }

    /// The notifier's slow path: somebody sleeps (or is about to).
    #[cold]
    fn wake_sleepers(&self) {
        // Taking the lock waits out a waiter between its final check and its sleep.
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.wake.notify_all();
    }
}

impl Default for SpinThenPark {
    fn default() -> Self {
        Self::new(Self::DEFAULT_SPINS, Self::DEFAULT_YIELDS)
            .with_max_yields(Self::DEFAULT_MAX_YIELDS)
    }
}

impl fmt::Debug for SpinThenPark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinThenPark")
            .field("spins", &self.spins)
            .field("patience", &self.patience)
            .field("sleepers", &self.sleepers.load(Ordering::Relaxed))
            .field("fences", &self.fences)
            .finish_non_exhaustive()
    }
}

/// How many times a waiter polls (yielding the core in between) before it sleeps, learnt
/// from how its sleeps end: a sleep that a wake-up ends within [`SHORT_SLEEP`](Self::SHORT_SLEEP)
/// did not pay for itself and doubles the polls before the next one, up to `most`; a longer
/// sleep or an expired wait halves them back toward `fewest`.
///
/// Shared by [`SpinThenPark`] and by other threads that sleep in a system call of their own
/// (a transport's event loop); only the waiting thread reads or writes it, hence relaxed
/// atomics behind `&self`.
pub struct Patience {
    fewest: u32,
    most: u32,
    current: AtomicU32,
}

impl Patience {
    /// A sleep that a wake-up ends sooner than this did not pay for itself.
    pub const SHORT_SLEEP: Duration = Duration::from_micros(250);

    /// Starts at `fewest` polls; learns up to `most` (at least `fewest`).
    pub fn new(fewest: u32, most: u32) -> Self {
        Self {
            fewest,
            most: most.max(fewest),
            current: AtomicU32::new(fewest),
        }
    }

    /// Polls before the next sleep.
    #[inline]
    pub fn get(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// Learns from a sleep that a wake-up ended after `slept` (`None`: it expired).
    pub fn learn(&self, slept: Option<Duration>) {
        let current = self.get();
        let next = match slept {
            Some(slept) if slept < Self::SHORT_SLEEP => current.saturating_mul(2).min(self.most),
            _ => (current / 2).max(self.fewest),
        };
        if next != current {
            self.current.store(next, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Patience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patience")
            .field("fewest", &self.fewest)
            .field("most", &self.most)
            .field("current", &self.get())
            .finish()
    }
}

/// How much later than asked a thread's naps end, as a moving average: a timer's slack, the
/// wake-up's trip through the scheduler and, on a virtual machine, through the hypervisor.
/// Only the waiting thread touches it, hence a relaxed atomic behind `&self`.
#[derive(Debug, Default)]
struct Oversleep {
    nanos: AtomicU32,
}

impl Oversleep {
    /// The most a nap is cut short by: half of the longest nap, so that a few very late
    /// wake-ups cannot turn naps into spins.
    const MOST_NANOS: u32 = (NAP_LIMIT.as_nanos() / 2) as u32;
    /// Weight of the newest sample in the average: one eighth.
    const NEWEST_SHIFT: u32 = 3;

    fn get(&self) -> Duration {
        Duration::from_nanos(u64::from(self.nanos.load(Ordering::Relaxed)))
    }

    fn learn(&self, late: Duration) {
        let late = u32::try_from(late.as_nanos())
            .unwrap_or(u32::MAX)
            .min(Self::MOST_NANOS);
        let average = self.nanos.load(Ordering::Relaxed);
        let next = if late >= average {
            average + ((late - average) >> Self::NEWEST_SHIFT)
        } else {
            average - ((average - late) >> Self::NEWEST_SHIFT)
        };
        self.nanos.store(next, Ordering::Relaxed);
    }
}

impl WaitStrategy for SpinThenPark {
    fn wait_until(&self, timeout: Duration, ready: &mut dyn FnMut() -> bool) -> bool {
        if ready() {
            return true;
        }
        let deadline = Deadline::after(timeout);
        if let Some(answer) = spin(self.spins, &deadline, ready) {
            return answer;
        }
        for _ in 0..self.patience() {
            yield_now();
            if ready() {
                return true;
            }
            if deadline.has_passed() {
                return false;
            }
        }
        self.sleep_until(&deadline, ready)
    }

    #[inline]
    fn notify(&self) {
        self.fences.light();
        // Relaxed: the fence pair orders this load against the waiter's increment.
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_sleepers();
        }
    }
}

/// Spins up to `spins` times; `Some(answer)` when the wait is over (ready, or the deadline
/// passed), `None` when the spins ran out first.
#[inline]
fn spin(spins: u32, deadline: &Deadline, ready: &mut dyn FnMut() -> bool) -> Option<bool> {
    for spun in 1..=spins {
        spin_loop();
        if ready() {
            return Some(true);
        }
        if spun % SPINS_PER_CLOCK_CHECK == 0 && deadline.has_passed() {
            return Some(false);
        }
    }
    None
}

/// When a wait ends; `None` for a timeout too large to represent (no limit).
#[derive(Debug)]
struct Deadline(Option<Instant>);

/// Time left before a [`Deadline`].
enum Remaining {
    Unlimited,
    Left(Duration),
    Expired,
}

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Self(Instant::now().checked_add(timeout))
    }

    fn has_passed(&self) -> bool {
        self.0.is_some_and(|deadline| Instant::now() >= deadline)
    }

    fn remaining(&self) -> Remaining {
        match self.0 {
            None => Remaining::Unlimited,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Remaining::Left(left),
                _ => Remaining::Expired,
            },
        }
    }
}

/// The wait strategies by name, for configuration.
///
/// Parses from and displays as `"busy-spin"`, `"spin-yield"` and `"spin-park"`. The default
/// is [`SpinThenPark`](WaitStrategyKind::SpinThenPark): an idle topology then leaves its cores
/// to other work, which matters whenever executors outnumber cores, while a busy one never
/// reaches the sleeping phase; latency-critical deployments with dedicated cores choose
/// `busy-spin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WaitStrategyKind {
    /// [`BusySpin`].
    BusySpin,
    /// [`SpinThenYield`] with its default spins.
    SpinThenYield,
    /// [`SpinThenPark`] with its default spins and yields.
    #[default]
    SpinThenPark,
}

impl WaitStrategyKind {
    /// Every kind, in order of increasing thrift with the CPU.
    pub const ALL: [WaitStrategyKind; 3] =
        [Self::BusySpin, Self::SpinThenYield, Self::SpinThenPark];

    /// The configuration name: `"busy-spin"`, `"spin-yield"` or `"spin-park"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BusySpin => "busy-spin",
            Self::SpinThenYield => "spin-yield",
            Self::SpinThenPark => "spin-park",
        }
    }

    /// A new doorbell of this kind, with default parameters.
    pub fn build(self) -> std::sync::Arc<dyn WaitStrategy> {
        match self {
            Self::BusySpin => std::sync::Arc::new(BusySpin),
            Self::SpinThenYield => std::sync::Arc::new(SpinThenYield::default()),
            Self::SpinThenPark => std::sync::Arc::new(SpinThenPark::default()),
        }
    }
}

impl fmt::Display for WaitStrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WaitStrategyKind {
    type Err = ParseWaitStrategyError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| ParseWaitStrategyError::UnknownName {
                name: name.to_owned(),
            })
    }
}

/// A wait strategy name that [`WaitStrategyKind::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseWaitStrategyError {
    /// The name is none of the accepted ones.
    #[error(
        "unknown wait strategy {name:?}: expected \"busy-spin\", \"spin-yield\" or \"spin-park\""
    )]
    UnknownName {
        /// The name as given.
        name: String,
    },
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in WaitStrategyKind::ALL {
            assert_eq!(kind.to_string().parse::<WaitStrategyKind>(), Ok(kind));
        }
        assert_eq!("spin-park".parse(), Ok(WaitStrategyKind::SpinThenPark));
        assert_eq!(WaitStrategyKind::default(), WaitStrategyKind::SpinThenPark);
    }

    #[test]
    fn unknown_name_is_reported_with_the_accepted_ones() {
        let error = "Spin-Park".parse::<WaitStrategyKind>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown wait strategy \"Spin-Park\": expected \"busy-spin\", \"spin-yield\" or \"spin-park\""
        );
    }

    /// A condition that turns true on its `calls`-th check.
    fn ready_on_check(calls: u32) -> impl FnMut() -> bool {
        let mut checked = 0;
        move || {
            checked += 1;
            checked >= calls
        }
    }

    #[test]
    fn sleeps_that_end_at_once_double_the_yields_up_to_the_limit() {
        let doorbell = SpinThenPark::new(0, 2).with_max_yields(6);
        assert_eq!(doorbell.patience(), 2);
        // One check before the yields, one per yield, then the fenced check before sleeping.
        assert!(doorbell.wait_until(Duration::from_secs(5), &mut ready_on_check(1 + 2 + 1)));
        assert_eq!(doorbell.patience(), 4);
        assert!(doorbell.wait_until(Duration::from_secs(5), &mut ready_on_check(1 + 4 + 1)));
        assert_eq!(doorbell.patience(), 6);
        // Ready during the yields: no sleep, nothing learnt.
        assert!(doorbell.wait_until(Duration::from_secs(5), &mut ready_on_check(3)));
        assert_eq!(doorbell.patience(), 6);
    }

    /// A doorbell whose patience two short sleeps raised from 2 to its limit of 8. The sleeps
    /// are taught rather than slept: on a loaded machine a real one may outlast
    /// `SHORT_SLEEP` (its barrier alone can), which would teach the opposite.
    fn patient_doorbell() -> SpinThenPark {
        let doorbell = SpinThenPark::new(0, 2).with_max_yields(8);
        for _ in 0..2 {
            doorbell.patience.learn(Some(Duration::ZERO));
        }
        assert_eq!(doorbell.patience(), 8);
        doorbell
    }

    #[test]
    fn expired_waits_halve_the_yields_down_to_the_floor() {
        let doorbell = patient_doorbell();
        let never = &mut || false;
        assert!(!doorbell.wait_until(Duration::from_millis(20), never));
        assert_eq!(doorbell.patience(), 4);
        assert!(!doorbell.wait_until(Duration::from_millis(20), never));
        assert!(!doorbell.wait_until(Duration::from_millis(20), never));
        assert_eq!(doorbell.patience(), 2);
    }

    #[test]
    fn patience_doubles_on_short_sleeps_and_halves_on_long_or_expired_ones() {
        let patience = Patience::new(1, 8);
        let short = Some(Duration::from_micros(10));
        for expected in [2, 4, 8, 8] {
            patience.learn(short);
            assert_eq!(patience.get(), expected);
        }
        patience.learn(Some(Patience::SHORT_SLEEP));
        assert_eq!(patience.get(), 4);
        patience.learn(None);
        patience.learn(None);
        patience.learn(None);
        assert_eq!(patience.get(), 1);
        // A floor of zero never grows: such a waiter always sleeps at once.
        let never = Patience::new(0, 8);
        never.learn(short);
        assert_eq!(never.get(), 0);
    }

    #[test]
    fn a_short_timed_wait_naps_and_teaches_the_patience_nothing() {
        let doorbell = patient_doorbell();
        // An expired sleep would halve the patience; an expired nap leaves it.
        let started = Instant::now();
        assert!(!doorbell.wait_until(NAP_LIMIT, &mut || false));
        assert!(
            started.elapsed() >= NAP_LIMIT,
            "a nap does not end before its deadline"
        );
        assert_eq!(doorbell.patience(), 8);
        assert_eq!(doorbell.sleepers.load(Ordering::Relaxed), 0);
        // What was published during a nap is seen when it ends, even past the deadline.
        let napper = SpinThenPark::new(0, 0);
        let mut checks = 0;
        assert!(napper.wait_until(NAP_LIMIT, &mut || {
            checks += 1;
            checks > 1
        }));
        assert_eq!(checks, 2);
    }

    #[test]
    fn naps_learn_how_late_they_end_within_bounds() {
        let oversleep = Oversleep::default();
        assert_eq!(oversleep.get(), Duration::ZERO);
        for _ in 0..100 {
            oversleep.learn(Duration::from_micros(8));
        }
        let settled = oversleep.get();
        assert!(
            (Duration::from_micros(7)..=Duration::from_micros(8)).contains(&settled),
            "{settled:?}"
        );
        // One very late wake-up moves the average by an eighth of the capped lateness.
        oversleep.learn(Duration::from_secs(1));
        let capped = Duration::from_nanos(u64::from(Oversleep::MOST_NANOS));
        assert!(oversleep.get() <= settled + (capped - settled) / 8 + Duration::from_nanos(1));
        for _ in 0..200 {
            oversleep.learn(Duration::from_secs(1));
        }
        assert!(oversleep.get() <= capped);
        for _ in 0..200 {
            oversleep.learn(Duration::ZERO);
        }
        assert!(oversleep.get() < Duration::from_micros(1));
    }

    #[test]
    fn a_fixed_doorbell_does_not_adapt() {
        let doorbell = SpinThenPark::new(0, 3);
        assert!(doorbell.wait_until(Duration::from_secs(5), &mut ready_on_check(1 + 3 + 1)));
        assert_eq!(doorbell.patience(), 3);
        assert_eq!(
            SpinThenPark::default().patience(),
            SpinThenPark::DEFAULT_YIELDS
        );
    }

    #[test]
    fn deadline_without_limit_never_passes() {
        let deadline = Deadline::after(Duration::MAX);
        assert!(!deadline.has_passed());
        assert!(matches!(deadline.remaining(), Remaining::Unlimited));
        let expired = Deadline::after(Duration::ZERO);
        assert!(expired.has_passed());
        assert!(matches!(expired.remaining(), Remaining::Expired));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_tightened_thread_has_a_microsecond_of_timer_slack_and_others_keep_theirs() {
        fn slack() -> i32 {
            // SAFETY: PR_GET_TIMERSLACK reads the calling thread's slack; no memory is
            // passed.
            unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) }
        }
        let (tightened, after) = std::thread::spawn(|| (tighten_timer_slack(), slack()))
            .join()
            .expect("thread");
        assert!(tightened);
        assert_eq!(after as u64, FINE_TIMER_SLACK_NANOS);
        let untouched = std::thread::spawn(slack).join().expect("thread");
        assert_ne!(untouched as u64, FINE_TIMER_SLACK_NANOS);
    }
}
