//! Checkpointed state in topology files: the `checkpoint` section (interval and backend),
//! and the built-in stateful bolts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value as JsonValue;

use super::components::FieldRef;
use super::connectors::REDIS_ENV;
use super::registry::{ComponentRegistry, StatefulBoltFactory};
use squall_connectors::RedisBackend;
use squall_core::component::ComponentError;
use squall_core::context::TopologyContext;
use squall_core::runtime::{BoltOutput, Tuple};
use squall_core::state::{Checkpointing, EmbeddedBackend, KeyValueState, StatefulBolt};
use squall_core::topology::OutputDeclarer;
use squall_core::value::{OwnedValue, ValueRef};

/// Where checkpoints are kept, as the file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BackendKind {
    /// One redb file per task on the worker's host.
    #[default]
    Embedded,
    /// A Redis server.
    Redis,
}

/// The `checkpoint` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckpointDef {
    /// Seconds between checkpoints (default 1).
    #[serde(default)]
    pub(crate) interval_secs: Option<f64>,
    #[serde(default)]
    pub(crate) backend: BackendKind,
    /// Embedded: the directory of the state files (default `$SQUALL_STATE_DIR`, or
    /// `squall-state` in the system's temporary directory).
    #[serde(default)]
    pub(crate) dir: Option<PathBuf>,
    /// Redis: the server (default `$SQUALL_REDIS`).
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// Redis: the prefix of the state's keys (default `squall-state`).
    #[serde(default)]
    pub(crate) prefix: Option<String>,
}

impl CheckpointDef {
    /// The checkpointing it describes, or what is wrong with it (the key and the problem).
    pub(crate) fn checkpointing(&self) -> Result<Checkpointing, (&'static str, String)> {
        let interval = match self.interval_secs {
            None => Duration::from_secs(1),
            Some(secs) => Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|interval| !interval.is_zero())
                .ok_or((
                    "interval_secs",
                    "must be a positive number of seconds".to_owned(),
                ))?,
        };
        let backend: Arc<dyn squall_core::state::StateBackend> = match self.backend {
            BackendKind::Embedded => {
                if self.url.is_some() || self.prefix.is_some() {
                    return Err((
                        "backend",
                        "url and prefix are for the redis backend; the embedded one takes dir"
                            .to_owned(),
                    ));
                }
                match &self.dir {
                    Some(dir) => Arc::new(EmbeddedBackend::new(dir)),
                    None => Arc::new(EmbeddedBackend::from_env()),
                }
            }
            BackendKind::Redis => {
                if self.dir.is_some() {
                    return Err((
                        "dir",
                        "dir is for the embedded backend; the redis one takes url and prefix"
                            .to_owned(),
                    ));
                }
                let url = self
                    .url
                    .clone()
                    .or_else(|| std::env::var(REDIS_ENV).ok().filter(|url| !url.is_empty()))
                    .ok_or((
                        "url",
                        format!(
                            "the redis backend needs url, or the environment variable {REDIS_ENV}"
                        ),
                    ))?;
                let prefix = self.prefix.as_deref().unwrap_or("squall-state");
                Arc::new(
                    RedisBackend::new(&url, prefix).map_err(|error| ("url", error.to_string()))?,
                )
            }
        };
        Ok(Checkpointing { interval, backend })
    }
}

/// Counts its inputs by the value of one field, in checkpointed state; emits `[key,
/// count]` anchored to the input (unless `emit` is off), and acks it.
#[derive(Debug)]
pub struct StatefulFieldCountBolt {
    field: FieldRef,
    key_name: String,
    emit: bool,
    reported_missing: bool,
}

impl StatefulFieldCountBolt {
    /// Counts by `field`; emits `[key_name, "count"]` tuples when `emit`.
    pub fn new(field: FieldRef, key_name: &str, emit: bool) -> Self {
        Self {
            field,
            key_name: key_name.to_owned(),
            emit,
            reported_missing: false,
        }
    }
}

/// The bytes a value is counted under: strings as they are, other values as they print.
fn key_bytes(value: &ValueRef<'_>) -> Vec<u8> {
    match value {
        ValueRef::Str(text) => text.as_bytes().to_vec(),
        ValueRef::Bytes(bytes) => bytes.to_vec(),
        ValueRef::U64(v) => v.to_string().into_bytes(),
        ValueRef::I64(v) => v.to_string().into_bytes(),
        ValueRef::Bool(v) => v.to_string().into_bytes(),
        ValueRef::F64(v) => v.to_string().into_bytes(),
        ValueRef::Null => b"null".to_vec(),
        other => format!("{:?}", other.to_owned_value()).into_bytes(),
    }
}

impl StatefulBolt for StatefulFieldCountBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        if self.emit {
            declarer.declare(&[self.key_name.as_str(), "count"]);
        }
    }

    fn prepare(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    ) {
        let Some(key) = self.field.value_of(input) else {
            if !self.reported_missing {
                self.reported_missing = true;
                output.report_error(format!(
                    "tuples on stream {:?} of {:?} have no field {:?}; they fail",
                    input.source_stream(),
                    input.source_component(),
                    self.field
                ));
            }
            output.fail(input);
            return;
        };
        let count = state.add_u64(&key_bytes(&key), 1);
        if self.emit
            && let Err(error) = output.try_emit(
                squall_core::DEFAULT_STREAM,
                &[input.anchor()],
                None,
                &[key.to_owned_value(), OwnedValue::U64(count)],
            )
        {
            output.report_error(format!("cannot emit a count: {error}"));
        }
        output.ack(input);
    }
}

/// Params of `stateful_count`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatefulCountParams {
    /// A field name or position.
    #[serde(default)]
    field: Option<JsonValue>,
    #[serde(default = "yes")]
    emit: bool,
}

fn yes() -> bool {
    true
}

/// The field a counting bolt counts by, and the name of its key field.
pub(crate) fn field_ref(field: Option<&JsonValue>) -> Result<(FieldRef, String), String> {
    match field {
        None => Ok((FieldRef::Index(0), "key".to_owned())),
        Some(JsonValue::String(name)) => Ok((FieldRef::Name(name.clone()), name.clone())),
        Some(other) => match other.as_u64().and_then(|i| usize::try_from(i).ok()) {
            Some(index) => Ok((FieldRef::Index(index), "key".to_owned())),
            None => Err(format!(
                "field must be a field name or a position (0, 1, ...), found {other}"
            )),
        },
    }
}

/// Adds the built-in stateful bolts to `registry`.
pub(crate) fn register_stateful(registry: &mut ComponentRegistry) {
    registry.add_stateful_bolt(
        "stateful_count",
        "counts tuples by a field in checkpointed state (exactly once with replayable \
         sources); emits [key, count]",
        |args| {
            let params: StatefulCountParams = args.params()?;
            let (field, key_name) = field_ref(params.field.as_ref())?;
            let factory: StatefulBoltFactory = Arc::new(move || {
                Box::new(StatefulFieldCountBolt::new(
                    field.clone(),
                    &key_name,
                    params.emit,
                ))
            });
            Ok(factory)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(yaml: &str) -> CheckpointDef {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn a_checkpoint_section_gives_its_interval_and_backend() {
        let checkpointing = def("{interval_secs: 0.25, dir: /tmp/x}")
            .checkpointing()
            .unwrap();
        assert_eq!(checkpointing.interval, Duration::from_millis(250));
        let checkpointing = def("{backend: redis, url: 'redis://127.0.0.1:1'}")
            .checkpointing()
            .unwrap();
        assert_eq!(checkpointing.interval, Duration::from_secs(1));
    }

    #[test]
    fn a_wrong_checkpoint_section_names_the_key() {
        assert_eq!(
            def("{interval_secs: 0}").checkpointing().unwrap_err().0,
            "interval_secs"
        );
        assert_eq!(
            def("{backend: redis, dir: /tmp}")
                .checkpointing()
                .unwrap_err()
                .0,
            "dir"
        );
        assert_eq!(
            def("{url: 'redis://x'}").checkpointing().unwrap_err().0,
            "backend"
        );
        assert_eq!(
            def("{backend: redis, url: 'http://x'}")
                .checkpointing()
                .unwrap_err()
                .0,
            "url"
        );
    }
}
