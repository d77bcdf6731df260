//! The shape of a topology file, as serde reads it. Unknown keys are errors, so a typo is
//! reported with its line instead of being ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map as JsonMap, Value as JsonValue};

/// A whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDef {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) config: JsonMap<String, JsonValue>,
    #[serde(default)]
    pub(crate) spouts: Vec<ComponentDef>,
    #[serde(default)]
    pub(crate) bolts: Vec<ComponentDef>,
    #[serde(default)]
    pub(crate) streams: Vec<StreamDef>,
    /// Further files and directories (relative to the file) the components read at run
    /// time, shipped with the file to a cluster.
    #[serde(default)]
    pub(crate) resources: Vec<PathBuf>,
    /// Checkpointed state: how often, and where.
    #[serde(default)]
    pub(crate) checkpoint: Option<crate::stateful::CheckpointDef>,
}

/// A spout or bolt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComponentDef {
    pub(crate) id: String,
    #[serde(default = "one")]
    pub(crate) parallelism: usize,
    #[serde(default)]
    pub(crate) tasks: Option<usize>,
    #[serde(default)]
    pub(crate) shell: Option<ShellDef>,
    #[serde(default)]
    pub(crate) builtin: Option<String>,
    #[serde(default)]
    pub(crate) params: JsonMap<String, JsonValue>,
    #[serde(default)]
    pub(crate) outputs: Vec<OutputDef>,
    #[serde(default)]
    pub(crate) config: JsonMap<String, JsonValue>,
    #[serde(default)]
    pub(crate) auto_ack: bool,
    /// Shell bolts: the subprocess receives whole windows.
    #[serde(default)]
    pub(crate) window: Option<WindowDef>,
}

/// A window: its length and slide by count or in seconds, and event time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowDef {
    #[serde(default)]
    pub(crate) count: Option<usize>,
    #[serde(default)]
    pub(crate) secs: Option<f64>,
    #[serde(default)]
    pub(crate) slide_count: Option<usize>,
    #[serde(default)]
    pub(crate) slide_secs: Option<f64>,
    /// Event time from this field; processing time when absent.
    #[serde(default)]
    pub(crate) time_field: Option<String>,
    #[serde(default)]
    pub(crate) lag_secs: Option<f64>,
    /// Late tuples go to this stream, declared with `late_fields`.
    #[serde(default)]
    pub(crate) late_stream: Option<String>,
    #[serde(default)]
    pub(crate) late_fields: Vec<String>,
    /// The open windows are kept in checkpointed state.
    #[serde(default)]
    pub(crate) state: bool,
}

fn one() -> usize {
    1
}

/// The command of a shell component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShellDef {
    pub(crate) command: String,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    #[serde(default)]
    pub(crate) cwd: Option<PathBuf>,
    #[serde(default)]
    pub(crate) resources: Option<PathBuf>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) restart: RestartDef,
}

/// `always`, `never`, or `{max_restarts: N, within_secs: S}`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) enum RestartDef {
    #[default]
    Always,
    Never,
    Limited {
        max_restarts: u32,
        within_secs: f64,
    },
}

impl<'de> Deserialize<'de> for RestartDef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RestartVisitor;

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Limited {
            max_restarts: u32,
            within_secs: f64,
        }

        impl<'de> Visitor<'de> for RestartVisitor {
            type Value = RestartDef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`always`, `never` or {max_restarts: N, within_secs: S}")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RestartDef, E> {
                match value {
                    "always" => Ok(RestartDef::Always),
                    "never" => Ok(RestartDef::Never),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<RestartDef, M::Error> {
                let limited = Limited::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if !(limited.within_secs.is_finite() && limited.within_secs > 0.0) {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Float(limited.within_secs),
                        &"a positive number of seconds",
                    ));
                }
                Ok(RestartDef::Limited {
                    max_restarts: limited.max_restarts,
                    within_secs: limited.within_secs,
                })
            }
        }

        deserializer.deserialize_any(RestartVisitor)
    }
}

/// One output stream of a shell component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputDef {
    #[serde(default = "default_stream")]
    pub(crate) stream: String,
    pub(crate) fields: Vec<String>,
    #[serde(default)]
    pub(crate) direct: bool,
}

fn default_stream() -> String {
    squall_core::ids::DEFAULT_STREAM.to_owned()
}

/// A subscription: `to` reads stream `grouping.streamId` of `from`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamDef {
    /// A label, as in Flux (not used).
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for Flux files, and not used")]
    pub(crate) name: Option<String>,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) grouping: GroupingDef,
}

/// The kinds of grouping, named as in Flux (any case, `-` or `_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupingType {
    Shuffle,
    Fields,
    All,
    Global,
    None,
    Direct,
    LocalOrShuffle,
    PartialKey,
}

const GROUPING_TYPES: &[&str] = &[
    "shuffle",
    "fields",
    "all",
    "global",
    "none",
    "direct",
    "local_or_shuffle",
    "partial_key",
];

impl GroupingType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "shuffle" => GroupingType::Shuffle,
            "fields" => GroupingType::Fields,
            "all" => GroupingType::All,
            "global" => GroupingType::Global,
            "none" => GroupingType::None,
            "direct" => GroupingType::Direct,
            "local_or_shuffle" => GroupingType::LocalOrShuffle,
            "partial_key" => GroupingType::PartialKey,
            _ => return None,
        })
    }

    /// Whether the grouping takes key fields in `args`.
    pub(crate) fn takes_fields(self) -> bool {
        matches!(self, GroupingType::Fields | GroupingType::PartialKey)
    }
}

impl<'de> Deserialize<'de> for GroupingType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TypeVisitor;

        impl Visitor<'_> for TypeVisitor {
            type Value = GroupingType;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a grouping type")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<GroupingType, E> {
                GroupingType::parse(name).ok_or_else(|| E::unknown_variant(name, GROUPING_TYPES))
            }
        }

        deserializer.deserialize_str(TypeVisitor)
    }
}

/// A grouping: `shuffle`, or `{type: fields, args: [word], streamId: words}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupingSpec {
    #[serde(rename = "type")]
    pub(crate) kind: GroupingType,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    #[serde(default, rename = "streamId", alias = "stream")]
    pub(crate) stream: Option<String>,
}

/// A grouping as written: its type alone, or the whole spec.
#[derive(Debug, Clone)]
pub(crate) struct GroupingDef(pub(crate) GroupingSpec);

impl<'de> Deserialize<'de> for GroupingDef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupingVisitor;

        impl<'de> Visitor<'de> for GroupingVisitor {
            type Value = GroupingDef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a grouping type (shuffle, fields, ...) or {type: ..., args: [...]}")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<GroupingDef, E> {
                let kind = GroupingType::parse(value)
                    .ok_or_else(|| E::unknown_variant(value, GROUPING_TYPES))?;
                Ok(GroupingDef(GroupingSpec {
                    kind,
                    args: Vec::new(),
                    stream: None,
                }))
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<GroupingDef, M::Error> {
                GroupingSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(GroupingDef)
            }
        }

        deserializer.deserialize_any(GroupingVisitor)
    }
}
