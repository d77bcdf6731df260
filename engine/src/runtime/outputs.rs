//! Where an executor thread's records go: the route to each task, the output ports to
//! other threads and peers, the thread's ring to itself, and the count of ports whose
//! records wait for room (what throttles sources and reading).

use super::ports::OutputPort;
use crate::ids::TaskId;

/// Where records for a task go from this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The task is not reachable from this worker (never used by a valid route).
    Nowhere,
    /// The task runs on this thread.
    Local,
    /// Through output port `n`.
    Port(u16),
}

/// Counts of backlogged ports (see [`congestion`](super::congestion)).
#[derive(Debug)]
struct Backlog {
    local: usize,
    remote: usize,
    /// Peers (as a mask) that backlogged ports lead to.
    remote_peers: u64,
    /// Ports to peers whose overflow holds more than `overflow_limit` bytes.
    over_limit: usize,
    /// Bytes of overflow to one peer past which the thread stops reading (`usize::MAX`:
    /// never, for threads on a cycle of the topology's streams).
    overflow_limit: usize,
}

impl Backlog {
    fn new(overflow_limit: usize) -> Self {
        Self {
            local: 0,
            remote: 0,
            remote_peers: 0,
            over_limit: 0,
            overflow_limit,
        }
    }

    /// Counts `port` backlogged, if it just became so, and over the limit, if it just went
    /// past it. Called after every write to a port.
    #[inline(always)]
    fn after_write(&mut self, port: &mut OutputPort, was_backlogged: bool) {
        if port.is_backlogged() {
            self.note_backlog(port, was_backlogged);
        }
    }

    #[cold]
    #[inline(never)]
    fn note_backlog(&mut self, port: &mut OutputPort, was_backlogged: bool) {
        if !port.is_remote() {
            if !was_backlogged {
                self.local += 1;
            }
            return;
        }
        if !was_backlogged {
            self.remote += 1;
            self.remote_peers |= port.peer_bit();
        }
        if !port.over_limit && port.overflow_bytes() > self.overflow_limit {
            port.over_limit = true;
            self.over_limit += 1;
        }
    }

    /// Uncounts what `port` no longer is after its overflow was flushed.
    fn after_flush(&mut self, port: &mut OutputPort) {
        if port.over_limit && port.overflow_bytes() <= self.overflow_limit {
            port.over_limit = false;
            self.over_limit -= 1;
        }
        if !port.is_backlogged() {
            if port.is_remote() {
                self.remote -= 1;
            } else {
                self.local -= 1;
            }
        }
    }
}

/// The routes, ports and backlog of one executor thread.
#[derive(Debug)]
pub(crate) struct Outputs {
    routes: Box<[Route]>,
    /// `routes` as the ring keys [`route_run`](Self::route_run) groups records by, one
    /// byte per task: a run looks each record's ring up in one load.
    ring_keys: Box<[u8]>,
    pub(crate) ports: Vec<OutputPort>,
    /// The ring from this thread to itself, for records to its own tasks. It is not among
    /// `ports`: a backlog there does not throttle the thread, which drains it itself.
    pub(crate) local: OutputPort,
    /// Ports whose overflow holds records: to threads of this worker, and to peer workers.
    backlogged: Backlog,
    /// Records handed to rings of this worker's threads or the local queue. Records for peer
    /// workers are left out: they are processed elsewhere, so no count here could balance
    /// them (see `RunningTopology::is_drained`).
    pub(crate) records_sent: u64,
    /// Largest record every port takes.
    max_record: usize,
}

impl Outputs {
    /// `routes` indexed by task id; `overflow_limit` bytes of overflow to one peer make the
    /// thread stop reading (see [`stops_reading`](Self::stops_reading)).
    pub(crate) fn new(
        routes: Box<[Route]>,
        ports: Vec<OutputPort>,
        local: OutputPort,
        overflow_limit: usize,
    ) -> Self {
        let max_record = ports
            .iter()
            .chain(std::iter::once(&local))
            .map(OutputPort::max_record_len)
            .min()
            .unwrap_or(usize::MAX);
        let ring_keys = routes.iter().map(|&route| ring_key(route)).collect();
        Self {
            routes,
            ring_keys,
            ports,
            local,
            backlogged: Backlog::new(overflow_limit),
            records_sent: 0,
            max_record,
        }
    }

    /// The largest record every port takes.
    #[inline]
    pub(crate) fn max_record(&self) -> usize {
        self.max_record
    }

    /// Whether any port has records waiting for room: sources must stop emitting.
    #[inline]
    pub(crate) fn is_backlogged(&self) -> bool {
        self.backlogged.local + self.backlogged.remote != 0
    }

    /// Whether a port to a thread of this worker has records waiting for room: spouts must
    /// stop emitting.
    #[inline]
    pub(crate) fn is_locally_backlogged(&self) -> bool {
        self.backlogged.local != 0
    }

    /// Whether the thread must stop taking data from its inputs until its outputs drain: a
    /// port to a thread of this worker has records waiting for room, or a port to a peer
    /// has more than the overflow limit waiting.
    ///
    /// A smaller backlog towards a peer does not stop a thread from reading: records
    /// between workers may flow both ways over one connection, so two workers each waiting
    /// for the other to read could wait forever. It stops the spouts feeding that peer
    /// instead ([`congested_peers`](Self::congested_peers)), which bounds what is in flight.
    #[inline]
    pub(crate) fn stops_reading(&self) -> bool {
        self.backlogged.local + self.backlogged.over_limit != 0
    }

    /// Peers (as a mask) this thread has records waiting for.
    #[inline]
    pub(crate) fn congested_peers(&self) -> u64 {
        self.backlogged.remote_peers
    }

    /// Moves overflowed records into rings; returns whether any moved.
    pub(crate) fn flush_overflow(&mut self) -> bool {
        if !self.is_backlogged() {
            return false;
        }
        let mut moved = false;
        let mut remote_peers = 0;
        for port in &mut self.ports {
            if port.is_backlogged() {
                moved |= port.flush_overflow();
                self.backlogged.after_flush(port);
                if port.is_backlogged() {
                    remote_peers |= port.peer_bit();
                }
            }
        }
        self.backlogged.remote_peers = remote_peers;
        moved
    }

    /// Publishes every port written since the last publish.
    #[inline]
    pub(crate) fn publish_all(&mut self) {
        for port in &mut self.ports {
            port.publish();
        }
    }

    /// Where records for `target` go.
    #[inline(always)]
    fn route(&self, target: TaskId) -> Route {
        self.routes
            .get(target.index())
            .copied()
            .unwrap_or(Route::Nowhere)
    }

    /// Writes a record of `len` bytes for `target`, encoded in place by `fill`, into the
    /// ring its route leads to (or that ring's overflow, counting the port backlogged).
    #[inline(always)]
    pub(crate) fn route_record(
        &mut self,
        target: TaskId,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        match self.route(target) {
            Route::Local => {
                self.local.write(target, len, fill);
                self.records_sent += 1;
            }
            Route::Port(port) => {
                let port = &mut self.ports[usize::from(port)];
                let was_backlogged = port.is_backlogged();
                port.write(target, len, fill);
                self.backlogged.after_write(port, was_backlogged);
                if !port.is_remote() {
                    self.records_sent += 1;
                }
            }
            Route::Nowhere => no_route(target),
        }
    }
}

/// Most records [`Outputs::route_run`] takes at once.
pub(crate) const RUN_MAX: usize = 128;

/// Most rings one call to [`Outputs::route_run`] groups records for; records of a run that
/// goes to more go one by one.
const RUN_RINGS: usize = 8;

/// Rings [`Outputs::route_run`] tells apart: the thread's own (0), ports up to 61 (their
/// number plus one) and nowhere ([`NO_RING`]). Runs to further ports go one by one.
const RING_KEYS: usize = 64;

/// The ring of a record [`Outputs::route_run`] finds no route for.
const NO_RING: usize = RING_KEYS - 1;

impl Outputs {
    /// Writes one record of `len` bytes for each of `targets` (at most [`RUN_MAX`]), the
    /// `i`th encoded in place by `fill(i, bytes)`: what [`route_record`](Self::route_record)
    /// would write for each, grouped by ring. Each ring gets its records in their order,
    /// with one claim of space for them all where they fit at once; records for different
    /// rings are not ordered against each other, nor need to be, as each ring has its own
    /// reader. With `fields` (writing the anchor pairs and fields alone of the `i`th), a
    /// thread's ring may get them packed (see [`OutputPort::write_run`]).
    #[inline(always)]
    pub(crate) fn route_run(
        &mut self,
        targets: &[TaskId],
        len: usize,
        mut fill: impl FnMut(usize, &mut [u8]),
        mut fields: Option<impl FnMut(usize, &mut [u8])>,
    ) {
        debug_assert!(targets.len() <= RUN_MAX);
        // Each record's index goes to the list of its ring, in one pass: `ring_slot` maps a
        // ring (0: this thread's own, `n + 1`: port `n`, `NO_RING`: nowhere) to its list.
        let mut ring_slot = [u8::MAX; RING_KEYS];
        let mut slot_ring = [0u8; RUN_RINGS];
        let mut lists = [[0u8; RUN_MAX]; RUN_RINGS];
        let mut list_lens = [0u8; RUN_RINGS];
        let mut slots = 0;
        for (index, &target) in targets.iter().enumerate() {
            let ring = usize::from(
                self.ring_keys
                    .get(target.index())
                    .copied()
                    .unwrap_or(NO_RING as u8),
            );
            let slot = match ring_slot.get(ring) {
                Some(&slot) if slot != u8::MAX => usize::from(slot),
                // A ring first seen: a list of its own, unless the lists are all taken or
                // the port's number is past what they map (then the run goes one by one).
                Some(_) if slots < RUN_RINGS => {
                    ring_slot[ring] = slots as u8;
                    slot_ring[slots] = ring as u8;
                    slots += 1;
                    slots - 1
                }
                _ => {
                    for (index, &target) in targets.iter().enumerate() {
                        self.route_record(
                            target,
                            len,
                            #[inline(always)]
                            |out| fill(index, out),
                        );
                    }
                    return;
                }
            };
            lists[slot][usize::from(list_lens[slot])] = index as u8;
            list_lens[slot] += 1;
        }
        for slot in 0..slots {
            let members = &lists[slot][..usize::from(list_lens[slot])];
            let count = members.len();
            let ring = usize::from(slot_ring[slot]);
            if ring == NO_RING {
                for &member in members {
                    no_route(targets[usize::from(member)]);
                }
                continue;
            }
            // The thread's own ring is not among the ports, and a backlog there does not
            // count (see `local`).
            let own = ring == 0;
            let port = if own {
                &mut self.local
            } else {
                &mut self.ports[ring - 1]
            };
            let was_backlogged = port.is_backlogged();
            let records = port.write_run(
                count,
                len,
                #[inline(always)]
                |member| targets[usize::from(members[member])],
                #[inline(always)]
                |member, out| fill(usize::from(members[member]), out),
                fields.as_mut().map(|fields| {
                    #[inline(always)]
                    |member: usize, out: &mut [u8]| fields(usize::from(members[member]), out)
                }),
            );
            if !own {
                self.backlogged.after_write(port, was_backlogged);
            }
            if !port.is_remote() {
                self.records_sent += records as u64;
            }
        }
    }
}

/// The key [`Outputs::route_run`] groups records for `route` by: 0 for the thread's own
/// ring, a port's number plus one, [`NO_RING`] for nowhere, and [`RING_KEYS`] for ports
/// past those it tells apart.
fn ring_key(route: Route) -> u8 {
    match route {
        Route::Local => 0,
        Route::Port(port) if usize::from(port) + 1 < NO_RING => port as u8 + 1,
        Route::Port(_) => RING_KEYS as u8,
        Route::Nowhere => NO_RING as u8,
    }
}

#[cold]
#[inline(never)]
fn no_route(target: TaskId) {
    tracing::error!(target_task = target.0, "no route to task; record dropped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task_fixture::{output, records};
    use crate::tuple::{TupleRef, write_record};

    /// Outputs of a thread running task 1, with task 2 behind port 0 (a ring of
    /// `port_capacity` bytes) and task 3 nowhere; the readers of the local queue and port 0.
    fn outputs(
        port_capacity: usize,
    ) -> (
        Outputs,
        squall_ringbuf::record::RecordConsumer,
        squall_ringbuf::record::RecordConsumer,
    ) {
        let (local, local_reader) = output(4096);
        let (port, port_reader) = output(port_capacity);
        let routes = [Route::Nowhere, Route::Local, Route::Port(0), Route::Nowhere];
        let outputs = Outputs::new(routes.into(), vec![port], local, usize::MAX);
        (outputs, local_reader, port_reader)
    }

    fn send(outputs: &mut Outputs, target: u32, value: u64) {
        let values = [crate::Value::U64(value)];
        let len = crate::tuple::HEADER_BYTES + crate::tuple::fields_len(&values);
        outputs.route_record(TaskId(target), len, |out| {
            write_record(out, TaskId(target), TaskId(1), 100, &[], &values);
        });
    }

    /// The tuples of `records`, plain or packed.
    fn values(records: &[Vec<u8>]) -> Vec<(u32, u64)> {
        records
            .iter()
            .flat_map(|record| TupleRef::members(record).unwrap())
            .map(|view| (view.dest_task().0, view.get_u64(0).unwrap()))
            .collect()
    }

    #[test]
    fn records_follow_their_task_s_route_and_those_without_one_are_dropped() {
        let (mut outputs, mut local_reader, mut port_reader) = outputs(4096);
        send(&mut outputs, 1, 10);
        send(&mut outputs, 2, 20);
        send(&mut outputs, 3, 30);
        send(&mut outputs, 99, 990);
        outputs.local.publish();
        outputs.publish_all();
        assert_eq!(values(&records(&mut local_reader)), [(1, 10)]);
        assert_eq!(values(&records(&mut port_reader)), [(2, 20)]);
        assert_eq!(outputs.records_sent, 2, "dropped records are not counted");
        assert!(!outputs.is_backlogged());
    }

    /// Sends `values` in one run, the `i`th to `targets[i]`, `packed` where it pays.
    fn send_run(outputs: &mut Outputs, targets: &[u32], values: &[u64], packed: bool) {
        let tasks: Vec<TaskId> = targets.iter().map(|&task| TaskId(task)).collect();
        let len = crate::tuple::HEADER_BYTES + crate::tuple::fields_len(&[values[0]]);
        outputs.route_run(
            &tasks,
            len,
            |index, out| write_record(out, tasks[index], TaskId(1), 100, &[], &[values[index]]),
            packed.then_some(|index: usize, out: &mut [u8]| {
                crate::tuple::write_fields(&[values[index]], out);
            }),
        );
    }

    #[test]
    fn an_untracked_run_for_one_task_shares_one_packed_record() {
        let (mut outputs, mut local_reader, mut port_reader) = outputs(4096);
        send_run(
            &mut outputs,
            &[2, 2, 2, 1, 1, 1, 2],
            &[20, 21, 22, 10, 11, 12, 23],
            true,
        );
        outputs.local.publish();
        outputs.publish_all();
        // Each ring's list holds its own tuples only, so task 2's four are one stretch.
        let port = records(&mut port_reader);
        assert_eq!(port.len(), 1);
        assert_eq!(values(&port), [(2, 20), (2, 21), (2, 22), (2, 23)]);
        let local = records(&mut local_reader);
        assert_eq!(local.len(), 1);
        assert_eq!(values(&local), [(1, 10), (1, 11), (1, 12)]);
        assert!(TupleRef::parse(&local[0]).is_err(), "the record is packed");
        assert_eq!(outputs.records_sent, 2, "records, not tuples");
    }

    #[test]
    fn a_run_that_alternates_between_tasks_is_not_packed() {
        let (local, _) = output(4096);
        let (port, mut port_reader) = output(4096);
        let routes = [Route::Nowhere, Route::Port(0), Route::Port(0)];
        let mut outputs = Outputs::new(routes.into(), vec![port], local, usize::MAX);
        send_run(&mut outputs, &[1, 2, 1, 2, 1, 1], &[0, 1, 2, 3, 4, 5], true);
        outputs.publish_all();
        let port = records(&mut port_reader);
        assert_eq!(
            port.len(),
            6,
            "five stretches in six tuples save too little"
        );
        assert_eq!(
            values(&port),
            [(1, 0), (2, 1), (1, 2), (2, 3), (1, 4), (1, 5)]
        );
        // Two stretches in five: a packed record of four, and a plain one.
        send_run(&mut outputs, &[1, 1, 1, 1, 2], &[6, 7, 8, 9, 10], true);
        outputs.publish_all();
        let port = records(&mut port_reader);
        assert_eq!(port.len(), 2);
        assert!(TupleRef::parse(&port[0]).is_err(), "the first is packed");
        assert!(
            TupleRef::parse(&port[1]).is_ok(),
            "a stretch of one stays plain"
        );
        assert_eq!(values(&port), [(1, 6), (1, 7), (1, 8), (1, 9), (2, 10)]);
    }

    #[test]
    fn a_packed_run_of_two_tasks_that_finds_the_ring_full_keeps_each_task_s_order() {
        let (mut outputs, _, mut port_reader) = outputs(256);
        let routes = [Route::Nowhere, Route::Local, Route::Port(0), Route::Port(0)];
        outputs.ring_keys = routes.iter().map(|&route| ring_key(route)).collect();
        outputs.routes = routes.into();
        let sent: Vec<u64> = (0..96).collect();
        for chunk in sent.chunks(32) {
            // Stretches of four for each task.
            let targets: Vec<u32> = chunk
                .iter()
                .map(|&value| 2 + (value / 4 % 2) as u32)
                .collect();
            send_run(&mut outputs, &targets, chunk, true);
        }
        assert!(
            outputs.is_backlogged(),
            "96 tuples overflow a 256-byte ring"
        );
        let arrived = drain(&mut outputs, &mut port_reader, sent.len());
        for task in [2, 3] {
            let mine: Vec<u64> = arrived
                .iter()
                .filter(|(to, _)| *to == task)
                .map(|&(_, value)| value)
                .collect();
            let expected: Vec<u64> = sent
                .iter()
                .copied()
                .filter(|value| 2 + (value / 4 % 2) as u32 == task)
                .collect();
            assert_eq!(mine, expected, "task {task}: every tuple, in order");
        }
    }

    #[test]
    fn a_run_sends_each_ring_its_records_in_order_as_single_records_would() {
        let (mut outputs, mut local_reader, mut port_reader) = outputs(4096);
        send_run(
            &mut outputs,
            &[2, 1, 2, 3, 1, 2, 99],
            &[20, 10, 21, 30, 11, 22, 990],
            false,
        );
        send_run(&mut outputs, &[1, 1], &[12, 13], false);
        outputs.local.publish();
        outputs.publish_all();
        assert_eq!(
            values(&records(&mut local_reader)),
            [(1, 10), (1, 11), (1, 12), (1, 13)]
        );
        assert_eq!(
            values(&records(&mut port_reader)),
            [(2, 20), (2, 21), (2, 22)]
        );
        assert_eq!(outputs.records_sent, 7, "dropped records are not counted");
    }

    /// Publishes and flushes `outputs` until its backlog is gone and `count` tuples came
    /// out of `reader`; returns them.
    fn drain(
        outputs: &mut Outputs,
        reader: &mut squall_ringbuf::record::RecordConsumer,
        count: usize,
    ) -> Vec<(u32, u64)> {
        let mut arrived = Vec::new();
        while outputs.is_backlogged() || arrived.len() < count {
            outputs.publish_all();
            arrived.extend(values(&records(reader)));
            outputs.flush_overflow();
        }
        arrived
    }

    #[test]
    fn a_run_that_does_not_fit_at_once_backlogs_and_keeps_its_order() {
        for (packed, tuples, chunk) in [(false, 40, 8), (true, 80, 16)] {
            let (mut outputs, _, mut port_reader) = outputs(256);
            let sent: Vec<u64> = (0..tuples).collect();
            for values in sent.chunks(chunk) {
                send_run(&mut outputs, &vec![2; chunk], values, packed);
            }
            assert!(
                outputs.is_backlogged(),
                "{tuples} tuples overflow a 256-byte ring"
            );
            assert_eq!(
                drain(&mut outputs, &mut port_reader, sent.len()),
                sent.iter().map(|&value| (2, value)).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_run_to_more_rings_than_it_groups_goes_record_by_record() {
        let capacity = 4096;
        let (local, mut local_reader) = output(capacity);
        let mut ports = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..RUN_RINGS + 1 {
            let (port, reader) = output(capacity);
            ports.push(port);
            readers.push(reader);
        }
        let mut routes = vec![Route::Nowhere, Route::Local];
        routes.extend((0..=RUN_RINGS as u16).map(Route::Port));
        let mut outputs = Outputs::new(routes.into(), ports, local, usize::MAX);
        let targets: Vec<u32> = (1..=RUN_RINGS as u32 + 2).chain([1, 2]).collect();
        let sent: Vec<u64> = (0..targets.len() as u64).collect();
        send_run(&mut outputs, &targets, &sent, true);
        outputs.local.publish();
        outputs.publish_all();
        assert_eq!(
            values(&records(&mut local_reader)),
            [(1, 0), (1, RUN_RINGS as u64 + 2)]
        );
        assert_eq!(
            values(&records(&mut readers[0])),
            [(2, 1), (2, RUN_RINGS as u64 + 3)]
        );
        for (port, reader) in readers.iter_mut().enumerate().skip(1) {
            let task = port as u32 + 2;
            assert_eq!(values(&records(reader)), [(task, u64::from(task) - 1)]);
        }
    }

    #[test]
    fn a_run_to_a_port_past_those_it_tells_apart_goes_record_by_record() {
        let (local, _) = output(1024);
        let mut ports = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..RING_KEYS {
            let (port, reader) = output(1024);
            ports.push(port);
            readers.push(reader);
        }
        let mut routes = vec![Route::Nowhere, Route::Local];
        routes.extend((0..RING_KEYS as u16).map(Route::Port));
        let mut outputs = Outputs::new(routes.into(), ports, local, usize::MAX);
        // Port 62 would map to the key of nowhere, port 63 past the keys.
        let (near, far) = (NO_RING as u32 + 1, NO_RING as u32 + 2);
        send_run(&mut outputs, &[near, far, near], &[1, 2, 3], true);
        outputs.publish_all();
        assert_eq!(
            values(&records(&mut readers[NO_RING - 1])),
            [(near, 1), (near, 3)]
        );
        assert_eq!(values(&records(&mut readers[NO_RING])), [(far, 2)]);
    }

    #[test]
    fn a_full_port_backlogs_the_thread_until_its_overflow_is_flushed() {
        let (mut outputs, _, mut port_reader) = outputs(256);
        let mut sent = 0;
        while !outputs.is_backlogged() {
            send(&mut outputs, 2, sent);
            sent += 1;
        }
        // Three more wait behind the first that overflowed, in order.
        for _ in 0..3 {
            send(&mut outputs, 2, sent);
            sent += 1;
        }
        assert!(outputs.is_locally_backlogged());
        assert!(outputs.stops_reading(), "a local backlog stops reading");
        assert_eq!(outputs.congested_peers(), 0, "no peer is involved");
        assert!(outputs.max_record() <= 256);

        let mut arrived = Vec::new();
        while outputs.is_backlogged() || arrived.len() < sent as usize {
            outputs.publish_all();
            let batch = records(&mut port_reader);
            arrived.extend(values(&batch));
            outputs.flush_overflow();
        }
        assert_eq!(
            arrived,
            (0..sent).map(|value| (2, value)).collect::<Vec<_>>(),
            "every record, in order"
        );
        assert!(!outputs.stops_reading());
        assert_eq!(outputs.records_sent, sent);
        assert!(!outputs.flush_overflow(), "nothing left to move");
    }
}
