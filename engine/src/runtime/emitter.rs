//! The output side of an executor thread: encodes each tuple once, routes it through the
//! emitting task's groupings, and writes one record per target task into the right ring.

use std::fmt;

use super::anchor::Anchor;
use super::ports::{LocalQueue, OutputPort, Written};
use crate::grouping::router::{RouteError, Router};
use crate::ids::{StreamId, TaskId};
use crate::tuple::{EncodeValue, FieldEncoder, HEADER_BYTES, MAX_ANCHORS, write_header};

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

/// One output stream of one task: its number, shape and subscriptions.
#[derive(Debug)]
pub(crate) struct StreamRoute {
    pub(crate) id: StreamId,
    pub(crate) name: String,
    pub(crate) field_count: usize,
    pub(crate) direct: bool,
    pub(crate) routers: Vec<Router>,
}

/// How an emitted tuple joins tuple trees.
#[derive(Clone, Copy)]
pub(crate) enum Anchoring<'a> {
    /// Untracked.
    None,
    /// A new tree from a spout: one fresh edge per target, their xor accumulated here.
    Root {
        root: u64,
        edges_xor: &'a std::cell::Cell<u64>,
    },
    /// Children of these anchors: one fresh edge per (anchor, target).
    Anchors(&'a [&'a Anchor]),
}

/// Why a tuple could not be emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The task's component declares no stream of this name.
    #[error("component {component:?} declares no stream {stream:?}")]
    UnknownStream {
        /// The emitting component.
        component: String,
        /// The stream named.
        stream: String,
    },
    /// The number of values differs from the stream's declared fields.
    #[error(
        "stream {stream:?} of component {component:?} declares {declared} fields, but {given} values were emitted"
    )]
    FieldCount {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// Fields declared.
        declared: usize,
        /// Values given.
        given: usize,
    },
    /// `emit_direct` on a stream not declared direct, or `emit` on a direct stream.
    #[error("stream {stream:?} of component {component:?} is {}: use {}", if *.direct { "direct" } else { "not direct" }, if *.direct { "emit_direct" } else { "emit" })]
    DirectMismatch {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// Whether the stream is direct.
        direct: bool,
    },
    /// `emit_direct` named a task that does not subscribe to the stream.
    #[error(
        "task {task} does not subscribe to stream {stream:?} of component {component:?} with direct grouping"
    )]
    NotASubscriber {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// The task named.
        task: u32,
    },
    /// A custom grouping chose a task that does not subscribe.
    #[error(
        "custom grouping on stream {stream:?} of component {component:?} chose task {task}, which does not subscribe"
    )]
    CustomGroupingChoseStranger {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// The task chosen.
        task: u32,
    },
    /// The encoded tuple is larger than a ring record.
    #[error(
        "tuple of {len} bytes on stream {stream:?} of component {component:?} exceeds the largest record of {max} bytes; raise ring_bytes"
    )]
    TooLarge {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// Encoded size.
        len: usize,
        /// Largest record.
        max: usize,
    },
    /// More anchor pairs than a tuple can carry.
    #[error("tuple anchored to {count} tuple trees; at most {MAX_ANCHORS} fit")]
    TooManyAnchors {
        /// Distinct roots.
        count: usize,
    },
}

/// The output side of one executor thread.
pub(crate) struct Emitter {
    routes: Box<[Route]>,
    pub(crate) ports: Vec<OutputPort>,
    pub(crate) local: LocalQueue,
    fields: FieldEncoder,
    targets: Vec<u32>,
    pairs: Vec<(u64, u64)>,
    pub(crate) rng: fastrand::Rng,
    /// Largest record every port takes.
    max_record: usize,
    /// Acker task ids (empty when tracking is off).
    ackers: std::ops::Range<u32>,
    /// Records handed to ports or the local queue.
    pub(crate) records_sent: u64,
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("ports", &self.ports)
            .field("records_sent", &self.records_sent)
            .finish_non_exhaustive()
    }
}

/// Outcome of a successful emit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Emitted {
    /// Records written (one per target task).
    pub(crate) targets: usize,
}

impl Emitter {
    pub(crate) fn new(
        routes: Box<[Route]>,
        ports: Vec<OutputPort>,
        ackers: std::ops::Range<u32>,
        seed: u64,
    ) -> Self {
        let max_record = ports
            .iter()
            .map(OutputPort::max_record_len)
            .min()
            .unwrap_or(usize::MAX);
        Self {
            routes,
            ports,
            local: LocalQueue::default(),
            fields: FieldEncoder::with_capacity(256),
            targets: Vec::with_capacity(16),
            pairs: Vec::with_capacity(8),
            rng: fastrand::Rng::with_seed(seed),
            max_record,
            ackers,
            records_sent: 0,
        }
    }

    /// Whether any port has records waiting for room.
    #[inline]
    pub(crate) fn is_backlogged(&self) -> bool {
        self.ports.iter().any(OutputPort::is_backlogged)
    }

    /// Moves overflowed records into rings; returns whether any moved.
    pub(crate) fn flush_overflow(&mut self) -> bool {
        let mut moved = false;
        for port in &mut self.ports {
            if port.is_backlogged() {
                moved |= port.flush_overflow();
            }
        }
        moved
    }

    /// Publishes every port written since the last publish.
    #[inline]
    pub(crate) fn publish_all(&mut self) {
        for port in &mut self.ports {
            port.publish();
        }
    }

    /// Encodes `values` once and sends a record to every target of `stream`'s routers.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn emit<V: EncodeValue>(
        &mut self,
        component: &str,
        source: TaskId,
        stream: &mut StreamRoute,
        anchoring: Anchoring<'_>,
        direct: Option<TaskId>,
        values: &[V],
    ) -> Result<Emitted, EmitError> {
        if values.len() != stream.field_count {
            return Err(EmitError::FieldCount {
                component: component.to_owned(),
                stream: stream.name.clone(),
                declared: stream.field_count,
                given: values.len(),
            });
        }
        if direct.is_some() != stream.direct {
            return Err(EmitError::DirectMismatch {
                component: component.to_owned(),
                stream: stream.name.clone(),
                direct: stream.direct,
            });
        }
        self.fields.encode(values);
        self.targets.clear();
        let direct_task = direct.map(|task| task.0);
        for router in &mut stream.routers {
            router
                .route(&self.fields, direct_task, &mut self.targets)
                .map_err(|error| match error {
                    RouteError::CustomChoseStranger(task) => {
                        EmitError::CustomGroupingChoseStranger {
                            component: component.to_owned(),
                            stream: stream.name.clone(),
                            task,
                        }
                    }
                })?;
        }
        if let Some(task) = direct_task {
            if self.targets.is_empty() && !stream.routers.is_empty() {
                return Err(EmitError::NotASubscriber {
                    component: component.to_owned(),
                    stream: stream.name.clone(),
                    task,
                });
            }
        }
        let roots = match anchoring {
            Anchoring::None => 0,
            Anchoring::Root { .. } => 1,
            Anchoring::Anchors(anchors) => {
                let distinct = distinct_roots(anchors, &mut self.pairs);
                if distinct > MAX_ANCHORS {
                    return Err(EmitError::TooManyAnchors { count: distinct });
                }
                distinct
            }
        };
        let len = self.fields.record_len(roots);
        if len > self.max_record {
            return Err(EmitError::TooLarge {
                component: component.to_owned(),
                stream: stream.name.clone(),
                len,
                max: self.max_record,
            });
        }
        let target_count = self.targets.len();
        for index in 0..target_count {
            let target = self.targets[index];
            self.fill_pairs(anchoring);
            self.send(target, source.0, stream.id, len);
        }
        Ok(Emitted {
            targets: target_count,
        })
    }

    /// Builds the anchor pairs of one record of an emit into `self.pairs`.
    #[inline]
    fn fill_pairs(&mut self, anchoring: Anchoring<'_>) {
        self.pairs.clear();
        match anchoring {
            Anchoring::None => {}
            Anchoring::Root { root, edges_xor } => {
                let edge = self.rng.u64(..);
                edges_xor.set(edges_xor.get() ^ edge);
                self.pairs.push((root, edge));
            }
            Anchoring::Anchors(anchors) => {
                for anchor in anchors {
                    if anchor.is_untracked() {
                        continue;
                    }
                    let edge = self.rng.u64(..);
                    anchor.add_child_edge(edge);
                    for &(root, _) in anchor.pairs() {
                        match self.pairs.iter_mut().find(|(r, _)| *r == root) {
                            Some((_, value)) => *value ^= edge,
                            None => self.pairs.push((root, edge)),
                        }
                    }
                }
            }
        }
    }

    /// Writes the record (header, `self.pairs`, encoded fields) for `target`.
    #[inline]
    fn send(&mut self, target: u32, source: u32, stream: StreamId, len: usize) {
        let fields = self.fields.bytes();
        let pairs = &self.pairs;
        let field_count = self.fields.field_count();
        let fill = |out: &mut [u8]| {
            let at = write_header(out, target, source, stream.0, field_count, pairs);
            out[at..].copy_from_slice(fields);
        };
        self.records_sent += 1;
        match self
            .routes
            .get(target as usize)
            .copied()
            .unwrap_or(Route::Nowhere)
        {
            Route::Local => self.local.push_with(len, fill),
            Route::Port(port) => {
                let _: Written = self.ports[usize::from(port)].write(len, fill);
            }
            Route::Nowhere => {
                self.records_sent -= 1;
                tracing::error!(target_task = target, "no route to task; record dropped");
            }
        }
    }

    /// Sends a system record of u64 fields (acker traffic) to `target`.
    #[inline]
    pub(crate) fn send_system(
        &mut self,
        target: u32,
        source: u32,
        stream: StreamId,
        values: &[u64],
    ) {
        self.fields.encode_u64s(values);
        self.pairs.clear();
        let len = self.fields.record_len(0);
        debug_assert!(len <= HEADER_BYTES + 9 * values.len());
        self.send(target, source, stream, len);
    }

    /// The target tasks of the last emit.
    #[inline]
    pub(crate) fn last_targets(&self) -> &[u32] {
        &self.targets
    }

    /// The acker task in charge of tree `root`.
    #[inline]
    pub(crate) fn acker_of(&self, root: u64) -> Option<u32> {
        let count = self.ackers.len() as u64;
        (count > 0).then(|| self.ackers.start + (root % count) as u32)
    }

    /// Whether tuple trees are tracked.
    #[inline]
    pub(crate) fn tracking(&self) -> bool {
        !self.ackers.is_empty()
    }
}

/// Number of distinct roots over `anchors`, using `scratch` (cleared) as working space.
fn distinct_roots(anchors: &[&Anchor], scratch: &mut Vec<(u64, u64)>) -> usize {
    match anchors {
        [] => 0,
        [single] => single.pairs().len(),
        _ => {
            scratch.clear();
            for anchor in anchors {
                scratch.extend(anchor.pairs().iter().map(|&(root, _)| (root, 0)));
            }
            scratch.sort_unstable();
            scratch.dedup();
            scratch.len()
        }
    }
}
