//! Per-emitter routing state of one subscription: picks target tasks for each tuple.

use std::fmt;

use super::hash::{SECOND_CANDIDATE_SEED, TargetIndexer, key_hash, multi_key_hash};
use super::{CustomGrouping, EmittedFields, Grouping};
use crate::ids::TaskId;
use crate::topology::KeyedGrouping;
use crate::tuple::FieldEncoder;

/// Routing state of one (emitting task, subscription) pair.
///
/// `repr(u8)` gives the variants a plain one-byte tag, which is cheaper to branch on per
/// tuple than a tag folded into a field's unused values.
#[repr(u8)]
pub(crate) enum Router {
    /// Round-robin over a fixed random order of the targets.
    Shuffle { order: Box<[TaskId]>, next: usize },
    /// Hash of the key fields.
    Fields {
        targets: Box<[TaskId]>,
        key: Box<[usize]>,
        indexer: TargetIndexer,
    },
    /// Every target.
    All { targets: Box<[TaskId]> },
    /// One fixed target.
    Global { target: TaskId },
    /// The emitter names the target, which must be one of `targets`.
    Direct { targets: Box<[TaskId]> },
    /// Two candidates by two hashes of the key, the one this emitter sent fewer tuples to.
    PartialKey {
        targets: Box<[TaskId]>,
        key: Box<[usize]>,
        indexer: TargetIndexer,
        sent: Box<[u64]>,
    },
    /// User code.
    Custom {
        grouping: Box<dyn CustomGrouping>,
        allowed: Box<[TaskId]>,
        chosen: Vec<TaskId>,
    },
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Router::Shuffle { .. } => "Shuffle",
            Router::Fields { .. } => "Fields",
            Router::All { .. } => "All",
            Router::Global { .. } => "Global",
            Router::Direct { .. } => "Direct",
            Router::PartialKey { .. } => "PartialKey",
            Router::Custom { .. } => "Custom",
        };
        f.write_str(name)
    }
}

/// Where a router gets the key of the tuple being emitted.
pub(crate) trait KeySource {
    /// The fields hash (see [`super::hash`]) of the key fields `key`, with `seed`.
    fn key_hash(&mut self, key: &[usize], seed: u64) -> u64;

    /// Every field, encoded (for custom groupings).
    fn encoded(&mut self) -> &FieldEncoder;
}

impl KeySource for FieldEncoder {
    #[inline]
    fn key_hash(&mut self, key: &[usize], seed: u64) -> u64 {
        match key {
            [single] if seed == 0 => key_hash(self.field(*single)),
            _ => multi_key_hash(key.iter().map(|index| self.field(*index)), seed),
        }
    }

    fn encoded(&mut self) -> &FieldEncoder {
        self
    }
}

/// Why a tuple could not be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// A custom grouping chose a task that does not subscribe.
    CustomChoseStranger(TaskId),
}

impl Router {
    /// The router of `emitter` for a subscriber whose tasks are `targets` (ascending), of
    /// which `local_targets` run in the emitter's worker.
    pub(crate) fn new(
        grouping: &KeyedGrouping,
        emitter: TaskId,
        targets: &[TaskId],
        local_targets: &[TaskId],
        rng: &mut fastrand::Rng,
    ) -> Self {
        let boxed = |tasks: &[TaskId]| tasks.to_vec().into_boxed_slice();
        let shuffled = |tasks: &[TaskId], rng: &mut fastrand::Rng| {
            let mut order = tasks.to_vec();
            rng.shuffle(&mut order);
            let next = rng.usize(..order.len().max(1));
            match order[..] {
                // One task: every tuple goes to it, without keeping a position.
                [only] => Router::Global { target: only },
                _ => Router::Shuffle {
                    order: order.into_boxed_slice(),
                    next,
                },
            }
        };
        match &grouping.grouping {
            Grouping::Shuffle | Grouping::None => shuffled(targets, rng),
            Grouping::LocalOrShuffle if !local_targets.is_empty() => shuffled(local_targets, rng),
            Grouping::LocalOrShuffle => shuffled(targets, rng),
            Grouping::Fields(_) => Router::Fields {
                targets: boxed(targets),
                key: grouping.key.clone().into_boxed_slice(),
                indexer: TargetIndexer::new(targets.len()),
            },
            Grouping::All => Router::All {
                targets: boxed(targets),
            },
            Grouping::Global => Router::Global { target: targets[0] },
            Grouping::Direct => Router::Direct {
                targets: boxed(targets),
            },
            Grouping::PartialKey(_) => Router::PartialKey {
                targets: boxed(targets),
                key: grouping.key.clone().into_boxed_slice(),
                indexer: TargetIndexer::new(targets.len()),
                sent: vec![0; targets.len()].into_boxed_slice(),
            },
            Grouping::Custom(factory) => {
                let mut custom = factory();
                custom.prepare(emitter, targets);
                Router::Custom {
                    grouping: custom,
                    allowed: boxed(targets),
                    chosen: Vec::with_capacity(targets.len()),
                }
            }
        }
    }

    /// The one target of a grouping that picks one task per tuple: `Some(Some(task))`, or
    /// `Some(None)` when a direct emit names a task outside this subscriber; `None` for the
    /// groupings that may pick several (all, custom), which go through [`route`](Self::route).
    #[inline(always)]
    pub(crate) fn route_one<K: KeySource>(
        &mut self,
        fields: &mut K,
        direct: Option<TaskId>,
    ) -> Option<Option<TaskId>> {
        Some(match self {
            Router::Shuffle { order, next } => {
                let target = order[*next];
                *next += 1;
                if *next == order.len() {
                    *next = 0;
                }
                Some(target)
            }
            Router::Fields {
                targets,
                key,
                indexer,
            } => Some(targets[indexer.index(fields.key_hash(key, 0))]),
            Router::Global { target } => Some(*target),
            Router::Direct { targets } => direct.filter(|task| targets.binary_search(task).is_ok()),
            Router::PartialKey { .. } | Router::All { .. } | Router::Custom { .. } => return None,
        })
    }

    /// Whether [`route_one`](Self::route_one) picks a task for every tuple emitted without a
    /// direct task.
    pub(crate) fn picks_one(&self) -> bool {
        matches!(
            self,
            Router::Shuffle { .. } | Router::Fields { .. } | Router::Global { .. }
        )
    }

    /// Appends the targets of the tuple whose fields are in `fields`; `direct` is the task an
    /// `emit_direct` named.
    #[inline]
    pub(crate) fn route<K: KeySource>(
        &mut self,
        fields: &mut K,
        direct: Option<TaskId>,
        out: &mut Vec<TaskId>,
    ) -> Result<(), RouteError> {
        match self {
            Router::Shuffle { order, next } => {
                out.push(order[*next]);
                *next += 1;
                if *next == order.len() {
                    *next = 0;
                }
            }
            Router::Fields {
                targets,
                key,
                indexer,
            } => {
                let hash = fields.key_hash(key, 0);
                out.push(targets[indexer.index(hash)]);
            }
            Router::All { targets } => out.extend_from_slice(targets),
            Router::Global { target } => out.push(*target),
            Router::Direct { targets } => {
                if let Some(task) = direct
                    && targets.binary_search(&task).is_ok()
                {
                    out.push(task);
                }
            }
            Router::PartialKey {
                targets,
                key,
                indexer,
                sent,
            } => {
                let first = indexer.index(fields.key_hash(key, 0));
                let second = indexer.index(fields.key_hash(key, SECOND_CANDIDATE_SEED));
                let pick = if sent[second] < sent[first] {
                    second
                } else {
                    first
                };
                sent[pick] += 1;
                out.push(targets[pick]);
            }
            Router::Custom {
                grouping,
                allowed,
                chosen,
            } => {
                chosen.clear();
                grouping.choose_tasks(EmittedFields::new(fields.encoded()), chosen);
                for task in chosen.iter() {
                    if allowed.binary_search(task).is_err() {
                        return Err(RouteError::CustomChoseStranger(*task));
                    }
                    out.push(*task);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn keyed(grouping: Grouping, key: &[usize]) -> KeyedGrouping {
        KeyedGrouping {
            grouping,
            key: key.to_vec(),
        }
    }

    fn tasks(ids: &[u32]) -> Vec<TaskId> {
        ids.iter().copied().map(TaskId).collect()
    }

    /// The ids of the tasks `router` picks for each value.
    fn route_many(router: &mut Router, values: impl Iterator<Item = u64>) -> Vec<u32> {
        let mut encoder = FieldEncoder::default();
        let mut out = Vec::new();
        for value in values {
            encoder.encode(&[Value::U64(value)]);
            router.route(&mut encoder, None, &mut out).unwrap();
        }
        out.into_iter().map(|task| task.0).collect()
    }

    #[test]
    fn shuffle_gives_each_task_an_equal_share_within_one_over_any_window() {
        let targets = [3, 4, 5, 6, 7];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut router = Router::new(
            &keyed(Grouping::Shuffle, &[]),
            TaskId(1),
            &tasks(&targets),
            &[],
            &mut rng,
        );
        let routed = route_many(&mut router, 0..1000);
        for window_len in [targets.len(), 3 * targets.len(), 7 * targets.len()] {
            for window in routed.windows(window_len) {
                for task in targets {
                    let count = window.iter().filter(|t| **t == task).count();
                    let share = window_len / targets.len();
                    assert!(
                        count.abs_diff(share) <= 1,
                        "task {task}: {count} of {window_len}"
                    );
                }
            }
        }
    }

    #[test]
    fn fields_sends_equal_keys_to_one_task_and_spreads_keys() {
        let targets = [10, 11, 12, 13];
        let mut rng = fastrand::Rng::with_seed(1);
        let mut router = Router::new(
            &keyed(Grouping::Fields(vec!["k".into()]), &[0]),
            TaskId(1),
            &tasks(&targets),
            &[],
            &mut rng,
        );
        let first = route_many(&mut router, 0..4000);
        let second = route_many(&mut router, 0..4000);
        assert_eq!(first, second, "same key, same task");
        for task in targets {
            let share = first.iter().filter(|t| **t == task).count();
            assert!(
                (800..1200).contains(&share),
                "task {task} got {share} of 4000 keys"
            );
        }
    }

    #[test]
    fn partial_key_splits_a_hot_key_over_two_tasks() {
        let targets = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut rng = fastrand::Rng::with_seed(1);
        let mut router = Router::new(
            &keyed(Grouping::PartialKey(vec!["k".into()]), &[0]),
            TaskId(1),
            &tasks(&targets),
            &[],
            &mut rng,
        );
        let routed = route_many(&mut router, std::iter::repeat_n(42, 1000));
        let mut used: Vec<u32> = routed.clone();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len(), 2, "a hot key uses exactly its two candidates");
        let first = routed.iter().filter(|t| **t == used[0]).count();
        assert_eq!(
            first, 500,
            "load-aware: the two candidates share the key evenly"
        );
    }

    #[test]
    fn local_or_shuffle_prefers_local_tasks() {
        let mut rng = fastrand::Rng::with_seed(1);
        let grouping = keyed(Grouping::LocalOrShuffle, &[]);
        let mut local = Router::new(
            &grouping,
            TaskId(1),
            &tasks(&[1, 2, 3, 4]),
            &tasks(&[2, 4]),
            &mut rng,
        );
        assert!(
            route_many(&mut local, 0..100)
                .iter()
                .all(|t| *t == 2 || *t == 4)
        );
        let mut remote = Router::new(&grouping, TaskId(1), &tasks(&[1, 2, 3, 4]), &[], &mut rng);
        let mut used = route_many(&mut remote, 0..100);
        used.sort_unstable();
        used.dedup();
        assert_eq!(used, [1, 2, 3, 4]);
    }

    #[test]
    fn all_global_and_direct() {
        let mut rng = fastrand::Rng::with_seed(1);
        let targets = [4, 5, 6];
        let mut all = Router::new(
            &keyed(Grouping::All, &[]),
            TaskId(1),
            &tasks(&targets),
            &[],
            &mut rng,
        );
        assert_eq!(route_many(&mut all, 0..2), [4, 5, 6, 4, 5, 6]);
        let mut global = Router::new(
            &keyed(Grouping::Global, &[]),
            TaskId(1),
            &tasks(&targets),
            &[],
            &mut rng,
        );
        assert_eq!(route_many(&mut global, 0..3), [4, 4, 4]);
        let mut direct = Router::new(
            &keyed(Grouping::Direct, &[]),
            TaskId(1),
            &tasks(&targets),
            &[],
            &mut rng,
        );
        let mut encoder = FieldEncoder::default();
        let mut out = Vec::new();
        direct
            .route(&mut encoder, Some(TaskId(5)), &mut out)
            .unwrap();
        direct
            .route(&mut encoder, Some(TaskId(9)), &mut out)
            .unwrap();
        assert_eq!(
            out,
            [TaskId(5)],
            "a task outside the subscriber gets nothing from this router"
        );
    }
}
