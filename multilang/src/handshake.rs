//! The configuration and context a subprocess gets in its handshake, in Storm's shape.

use serde_json::{Map as JsonMap, Value as JsonValue, json};

use squall_core::context::TopologyContext;
use squall_core::grouping::Grouping;

use super::window_bolt::{WINDOW_FIELDS, WINDOW_STREAM};

/// The topology configuration under Storm's key names, overridden by the task's free-form
/// settings (the topology's, then its component's).
pub(crate) fn conf(context: &TopologyContext) -> JsonMap<String, JsonValue> {
    let topology = context.topology();
    let config = topology.config();
    let mut conf = JsonMap::new();
    conf.insert("topology.name".into(), topology.name().into());
    conf.insert("topology.workers".into(), config.workers.into());
    conf.insert(
        "topology.acker.executors".into(),
        topology
            .acker()
            .map_or(0, |acker| acker.task_count())
            .into(),
    );
    if let Some(pending) = config.max_spout_pending {
        conf.insert("topology.max.spout.pending".into(), pending.into());
    }
    conf.insert(
        "topology.message.timeout.secs".into(),
        config.message_timeout.as_secs().into(),
    );
    if let Some(every) = context.component().config().tick_frequency {
        conf.insert("topology.tick.tuple.freq.secs".into(), seconds(every));
    }
    conf.insert("topology.debug".into(), false.into());
    for (key, value) in context.config() {
        conf.insert(key.clone(), value.clone());
    }
    conf
}

/// Whole seconds as an integer, else as a float.
pub(crate) fn seconds(duration: std::time::Duration) -> JsonValue {
    if duration.subsec_nanos() == 0 {
        duration.as_secs().into()
    } else {
        duration.as_secs_f64().into()
    }
}

fn grouping_json(grouping: &Grouping) -> JsonValue {
    match grouping.key_fields() {
        Some(fields) => json!({"type": grouping.name(), "fields": fields}),
        None => json!({"type": grouping.name()}),
    }
}

/// The context: task id, component id, every task's component, and this component's
/// outputs and inputs with their fields and groupings; a `windowed` bolt's inputs are its
/// window tuples.
pub(crate) fn context(context: &TopologyContext, windowed: bool) -> JsonValue {
    let topology = context.topology();
    let components = topology.components();
    let mut task_components = JsonMap::new();
    for (task, component) in context.task_components() {
        task_components.insert(task.0.to_string(), component.into());
    }
    let mut streams = Vec::new();
    let mut output_fields = JsonMap::new();
    let mut targets = JsonMap::new();
    for id in context.component().outputs() {
        let Some(stream) = topology.stream(*id) else {
            continue;
        };
        streams.push(JsonValue::from(stream.name.clone()));
        output_fields.insert(stream.name.clone(), json!(stream.fields));
        let mut by_target = JsonMap::new();
        for subscriber in &stream.subscribers {
            by_target.insert(
                components[subscriber.component].id().to_owned(),
                grouping_json(&subscriber.grouping.grouping),
            );
        }
        targets.insert(stream.name.clone(), by_target.into());
    }
    let mut source_groupings = JsonMap::new();
    let mut source_fields = JsonMap::new();
    for input in context.component().inputs() {
        let (Some(source), Some(stream)) =
            (components.get(input.source), topology.stream(input.stream))
        else {
            continue;
        };
        let groupings = source_groupings
            .entry(source.id().to_owned())
            .or_insert_with(|| JsonValue::Object(JsonMap::new()));
        if let JsonValue::Object(groupings) = groupings {
            groupings.insert(stream.name.clone(), grouping_json(&input.grouping.grouping));
        }
        let fields = source_fields
            .entry(source.id().to_owned())
            .or_insert_with(|| JsonValue::Object(JsonMap::new()));
        if let JsonValue::Object(fields) = fields {
            fields.insert(stream.name.clone(), json!(stream.fields));
        }
    }
    if windowed {
        let mut window = JsonMap::new();
        window.insert(WINDOW_STREAM.to_owned(), json!(WINDOW_FIELDS));
        source_fields.insert(WINDOW_STREAM.to_owned(), window.into());
    }
    json!({
        "taskid": context.task_id().0,
        "componentid": context.component_id(),
        "task->component": task_components,
        "streams": streams,
        "stream->outputfields": output_fields,
        "stream->target->grouping": targets,
        "source->stream->grouping": source_groupings,
        "source->stream->fields": source_fields,
    })
}
