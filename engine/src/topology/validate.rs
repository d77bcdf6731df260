//! Turning declarations into a [`Topology`], or an error that names what is wrong.

use std::collections::{HashMap, HashSet};

use super::builder::{ComponentDecl, Factory, TopologyBuilder};
use super::error::TopologyError;
use super::model::{
    Component, ComponentKind, ExecutorSpec, Input, KeyedGrouping, StreamInfo, Subscriber, Topology,
};
use crate::config::{ComponentConfig, TopologyConfig};
use crate::grouping::Grouping;
use crate::ids::{ACKER_COMPONENT, StreamId, TICK_STREAM};
use crate::tuple::MAX_FIELDS;

/// The most tasks one component may have: every task gets queues and state in every
/// worker that runs it, so a mistyped `parallelism: 200000000` must be refused, not
/// allocated.
pub const MAX_TASKS_PER_COMPONENT: usize = 65_536;

/// Smallest ring between two executor threads.
const MIN_RING_BYTES: usize = 4096;

pub(super) fn validate(
    name: &str,
    builder: TopologyBuilder,
    config: TopologyConfig,
) -> Result<Topology, TopologyError> {
    check_name(name)?;
    check_config(&config)?;
    let mut decls = builder.components;
    check_components(&decls)?;
    if !decls
        .iter()
        .any(|decl| matches!(decl.factory, Factory::Spout(_)))
    {
        return Err(TopologyError::NoSpouts {
            topology: name.to_owned(),
        });
    }
    decls.sort_by(|a, b| a.id.cmp(&b.id));

    let mut streams = system_streams();
    let mut components = Vec::with_capacity(decls.len() + 1);
    let mut next_task = 1u32;
    for (index, decl) in decls.iter().enumerate() {
        let mut declared: Vec<_> = decl.outputs.streams.iter().collect();
        declared.sort_by(|a, b| a.name.cmp(&b.name));
        let mut outputs = Vec::with_capacity(declared.len());
        for stream in declared {
            let id = stream_id(streams.len())?;
            outputs.push(id);
            streams.push(StreamInfo {
                id,
                component: Some(index),
                name: stream.name.clone(),
                fields: stream.fields.clone(),
                direct: stream.direct,
                subscribers: Vec::new(),
            });
        }
        let tasks = decl.tasks.unwrap_or(decl.parallelism);
        let first = next_task;
        next_task = task_after(first, tasks)?;
        components.push(Component {
            index,
            id: decl.id.clone(),
            kind: match decl.factory {
                Factory::Spout(_) => ComponentKind::Spout,
                Factory::Bolt(_) => ComponentKind::Bolt,
            },
            factory: None,
            parallelism: decl.parallelism,
            tasks: first..next_task,
            outputs,
            inputs: Vec::new(),
            config: decl.config.clone(),
        });
    }

    let index_of: HashMap<&str, usize> = decls
        .iter()
        .enumerate()
        .map(|(index, decl)| (decl.id.as_str(), index))
        .collect();
    for (index, decl) in decls.iter().enumerate() {
        let mut seen = HashSet::new();
        for input in &decl.inputs {
            let source = *index_of.get(input.source.as_str()).ok_or_else(|| {
                TopologyError::UnknownComponent {
                    component: decl.id.clone(),
                    source_component: input.source.clone(),
                }
            })?;
            let stream = components[source]
                .outputs
                .iter()
                .map(|id| &streams[usize::from(id.0)])
                .find(|stream| stream.name == input.stream)
                .ok_or_else(|| TopologyError::UnknownStream {
                    component: decl.id.clone(),
                    source_component: input.source.clone(),
                    stream: input.stream.clone(),
                    declared: decls[source]
                        .outputs
                        .streams
                        .iter()
                        .map(|stream| stream.name.clone())
                        .collect(),
                })?;
            if !seen.insert(stream.id) {
                return Err(TopologyError::DuplicateSubscription {
                    component: decl.id.clone(),
                    source_component: input.source.clone(),
                    stream: input.stream.clone(),
                });
            }
            let grouping = resolve_grouping(decl, input.grouping.clone(), stream, &input.source)?;
            let stream_id = stream.id;
            streams[usize::from(stream_id.0)]
                .subscribers
                .push(Subscriber {
                    component: index,
                    grouping: grouping.clone(),
                });
            components[index].inputs.push(Input {
                source,
                stream: stream_id,
                grouping,
            });
        }
    }
    for (component, decl) in components.iter_mut().zip(decls) {
        component.factory = Some(decl.factory);
    }

    let ackers = config.acker_count();
    if ackers > MAX_TASKS_PER_COMPONENT {
        return Err(TopologyError::TooManyTasks {
            component: ACKER_COMPONENT.to_owned(),
            tasks: ackers,
            limit: MAX_TASKS_PER_COMPONENT,
        });
    }
    if ackers > 0 {
        let first = next_task;
        next_task = task_after(first, ackers)?;
        components.push(Component {
            index: components.len(),
            id: ACKER_COMPONENT.to_owned(),
            kind: ComponentKind::Acker,
            factory: None,
            parallelism: ackers,
            tasks: first..next_task,
            outputs: Vec::new(),
            inputs: Vec::new(),
            config: ComponentConfig::default(),
        });
    }

    let mut task_components = vec![u32::MAX; next_task as usize];
    for component in &components {
        for task in component.tasks.clone() {
            task_components[task as usize] = component.index as u32;
        }
    }
    let executors = components.iter().flat_map(split_into_executors).collect();
    Ok(Topology {
        name: name.to_owned(),
        config,
        components,
        streams,
        task_components,
        executors,
    })
}

fn check_name(name: &str) -> Result<(), TopologyError> {
    let valid = (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(TopologyError::InvalidTopologyName {
            name: name.to_owned(),
        })
    }
}

fn check_config(config: &TopologyConfig) -> Result<(), TopologyError> {
    let invalid = |setting, value: String, reason| {
        Err(TopologyError::InvalidConfig {
            setting,
            value,
            reason,
        })
    };
    if config.workers == 0 {
        return invalid(
            "workers",
            "0".into(),
            "a topology needs at least one worker",
        );
    }
    if config.ring_bytes < MIN_RING_BYTES {
        return invalid(
            "ring_bytes",
            config.ring_bytes.to_string(),
            "rings need at least 4096 bytes",
        );
    }
    if config.input_batch == 0 {
        return invalid("input_batch", "0".into(), "must be at least 1");
    }
    if config.spout_batch == 0 {
        return invalid("spout_batch", "0".into(), "must be at least 1");
    }
    if config.latency_sample_every == 0 {
        return invalid("latency_sample_every", "0".into(), "must be at least 1");
    }
    if config.message_timeout.is_zero() {
        return invalid("message_timeout", "0s".into(), "must be longer than zero");
    }
    if config.max_spout_pending == Some(0) {
        return invalid(
            "max_spout_pending",
            "0".into(),
            "a spout could never emit a tracked tuple; leave it unset for no limit",
        );
    }
    Ok(())
}

fn check_components(decls: &[ComponentDecl]) -> Result<(), TopologyError> {
    let mut ids = HashSet::new();
    for decl in decls {
        if decl.id.is_empty() || decl.id.starts_with("__") {
            return Err(TopologyError::InvalidComponentId {
                component: decl.id.clone(),
            });
        }
        if !ids.insert(decl.id.as_str()) {
            return Err(TopologyError::DuplicateComponent {
                component: decl.id.clone(),
            });
        }
        if decl.parallelism == 0 {
            return Err(TopologyError::ZeroParallelism {
                component: decl.id.clone(),
            });
        }
        let tasks = decl.tasks.unwrap_or(decl.parallelism);
        if tasks > MAX_TASKS_PER_COMPONENT {
            return Err(TopologyError::TooManyTasks {
                component: decl.id.clone(),
                tasks,
                limit: MAX_TASKS_PER_COMPONENT,
            });
        }
        if tasks < decl.parallelism {
            return Err(TopologyError::TooFewTasks {
                component: decl.id.clone(),
                tasks,
                executors: decl.parallelism,
            });
        }
        let mut names = HashSet::new();
        for stream in &decl.outputs.streams {
            let barrier = decl.barrier_declared && stream.name == crate::state::BARRIER_STREAM;
            if stream.name.is_empty() || (stream.name.starts_with("__") && !barrier) {
                return Err(TopologyError::InvalidStreamName {
                    component: decl.id.clone(),
                    stream: stream.name.clone(),
                });
            }
            if !names.insert(stream.name.as_str()) {
                return Err(TopologyError::DuplicateStream {
                    component: decl.id.clone(),
                    stream: stream.name.clone(),
                });
            }
            if stream.fields.len() > MAX_FIELDS {
                return Err(TopologyError::TooMany {
                    what: "fields in one stream",
                    count: stream.fields.len(),
                    limit: MAX_FIELDS,
                });
            }
            let mut fields = HashSet::new();
            for field in &stream.fields {
                if !fields.insert(field.as_str()) {
                    return Err(TopologyError::DuplicateField {
                        component: decl.id.clone(),
                        stream: stream.name.clone(),
                        field: field.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn resolve_grouping(
    subscriber: &ComponentDecl,
    grouping: Grouping,
    stream: &StreamInfo,
    source: &str,
) -> Result<KeyedGrouping, TopologyError> {
    let is_direct = matches!(grouping, Grouping::Direct);
    if is_direct && !stream.direct {
        return Err(TopologyError::DirectGroupingOnIndirectStream {
            component: subscriber.id.clone(),
            source_component: source.to_owned(),
            stream: stream.name.clone(),
        });
    }
    if !is_direct && stream.direct {
        return Err(TopologyError::IndirectGroupingOnDirectStream {
            component: subscriber.id.clone(),
            source_component: source.to_owned(),
            stream: stream.name.clone(),
            grouping: grouping.name(),
        });
    }
    let key = match grouping.key_fields() {
        None => Vec::new(),
        Some([]) => {
            return Err(TopologyError::EmptyKey {
                component: subscriber.id.clone(),
                source_component: source.to_owned(),
                stream: stream.name.clone(),
            });
        }
        Some(fields) => fields
            .iter()
            .map(|field| {
                stream
                    .field_index(field)
                    .ok_or_else(|| TopologyError::UnknownField {
                        component: subscriber.id.clone(),
                        source_component: source.to_owned(),
                        stream: stream.name.clone(),
                        field: field.clone(),
                        declared: stream.fields.clone(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(KeyedGrouping { grouping, key })
}

/// The reserved streams, numbered below [`StreamId::FIRST_USER`].
fn system_streams() -> Vec<StreamInfo> {
    let named = |id: StreamId, name: &str, fields: &[&str]| StreamInfo {
        id,
        component: None,
        name: name.to_owned(),
        fields: fields.iter().map(|field| (*field).to_owned()).collect(),
        direct: true,
        subscribers: Vec::new(),
    };
    (0..StreamId::FIRST_USER)
        .map(|id| match StreamId(id) {
            StreamId::TICK => named(StreamId::TICK, TICK_STREAM, &["frequency_ms"]),
            StreamId::ACKER_REPORTS => {
                named(StreamId::ACKER_REPORTS, "__acker_reports", &["reports"])
            }
            StreamId::TREE_VERDICTS => {
                named(StreamId::TREE_VERDICTS, "__tree_verdicts", &["verdicts"])
            }
            StreamId::LINK_LOST => named(StreamId::LINK_LOST, "__link_lost", &["workers"]),
            other => named(other, "__reserved", &[]),
        })
        .collect()
}

fn stream_id(index: usize) -> Result<StreamId, TopologyError> {
    u16::try_from(index)
        .map(StreamId)
        .map_err(|_| TopologyError::TooMany {
            what: "streams",
            count: index + 1,
            limit: usize::from(u16::MAX) - usize::from(StreamId::FIRST_USER),
        })
}

fn task_after(first: u32, tasks: usize) -> Result<u32, TopologyError> {
    u32::try_from(tasks)
        .ok()
        .and_then(|tasks| first.checked_add(tasks))
        .filter(|next| *next < u32::MAX)
        .ok_or(TopologyError::TooMany {
            what: "tasks",
            count: tasks,
            limit: u32::MAX as usize - 1,
        })
}

/// Splits a component's tasks over its executors as evenly as possible, the first executors
/// taking one extra task each when they do not divide evenly.
pub(super) fn split_into_executors(component: &Component) -> Vec<ExecutorSpec> {
    let tasks = component.tasks.len() as u32;
    let executors = component.parallelism as u32;
    let (base, extra) = (tasks / executors, tasks % executors);
    let mut start = component.tasks.start;
    (0..executors)
        .map(|executor| {
            let len = base + u32::from(executor < extra);
            let spec = ExecutorSpec {
                component: component.index,
                tasks: start..start + len,
            };
            start += len;
            spec
        })
        .collect()
}
