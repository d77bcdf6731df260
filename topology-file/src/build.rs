//! Turning a parsed file into a [`Topology`]: checks that need the whole file, each error
//! naming its key and line, then the topology builder's own validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as JsonValue;

use super::Overrides;
use super::config::{TICK_KEY, seconds, topology_config};
use super::error::{FilePlace, TopologyFileError};
use super::locate::{KeyPath, line_of};
use super::registry::{
    BoltFactory, BuiltinArgs, ComponentRegistry, ReplayableSpoutFactory, SpoutFactory,
    StatefulBoltFactory, bolt_of, spout_of,
};
use super::schema::{ComponentDef, FileDef, GroupingType, RestartDef, ShellDef, StreamDef};
use squall_core::grouping::Grouping;
use squall_core::topology::{Topology, TopologyBuilder};
use squall_core::window::{Extent, WindowSpec};
use squall_multilang::{
    ARTIFACT_DIR_KEY, HEARTBEAT_TIMEOUT_KEY, RestartPolicy, ShellBolt, ShellSpec, ShellSpout,
    ShellWindowBolt,
};

/// The two kinds of components, as the file lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Spout,
    Bolt,
}

impl Kind {
    pub(crate) fn section(self) -> &'static str {
        match self {
            Kind::Spout => "spouts",
            Kind::Bolt => "bolts",
        }
    }
}

/// What runs a component.
enum Body {
    Shell(Arc<ShellSpec>),
    Spout(SpoutFactory),
    Bolt(BoltFactory),
    Replayable(ReplayableSpoutFactory),
    Stateful(StatefulBoltFactory),
}

/// One subscription, checked.
struct Subscription {
    source: String,
    stream: String,
    grouping: Grouping,
}

/// A file being built.
pub(crate) struct Build<'a> {
    pub(crate) def: &'a FileDef,
    pub(crate) text: &'a str,
    pub(crate) file: &'a str,
    /// The file's directory: the base of relative paths when no artifact directory is set.
    pub(crate) file_dir: &'a Path,
    pub(crate) registry: &'a ComponentRegistry,
}

impl Build<'_> {
    fn invalid(&self, path: &KeyPath, message: impl Into<String>) -> TopologyFileError {
        TopologyFileError::Invalid {
            place: FilePlace {
                file: self.file.to_owned(),
                line: line_of(self.text, path),
                key: Some(path.to_string()),
            },
            message: message.into(),
        }
    }

    fn component_path(kind: Kind, index: usize) -> KeyPath {
        KeyPath::default().key(kind.section()).index(index)
    }

    fn components(&self) -> impl Iterator<Item = (Kind, usize, &ComponentDef)> {
        let spouts = self
            .def
            .spouts
            .iter()
            .enumerate()
            .map(|(i, c)| (Kind::Spout, i, c));
        let bolts = self
            .def
            .bolts
            .iter()
            .enumerate()
            .map(|(i, c)| (Kind::Bolt, i, c));
        spouts.chain(bolts)
    }

    pub(crate) fn build(&self, overrides: &Overrides) -> Result<Arc<Topology>, TopologyFileError> {
        let mut settings = self.def.config.clone();
        for (key, value) in &overrides.config {
            settings.insert(key.clone(), value.clone());
        }
        if let Some(dir) = &overrides.artifact_dir {
            settings.insert(
                ARTIFACT_DIR_KEY.to_owned(),
                dir.to_string_lossy().into_owned().into(),
            );
        }
        let base_dir = match settings.get(ARTIFACT_DIR_KEY) {
            Some(JsonValue::String(dir)) => PathBuf::from(dir),
            _ => self.file_dir.to_owned(),
        };
        let config = topology_config(&settings).map_err(|error| {
            self.invalid(
                &KeyPath::default().key("config").key(&error.key),
                error.message,
            )
        })?;
        let topology_tick = match settings.get(TICK_KEY) {
            Some(value) => Some(seconds(TICK_KEY, value).map_err(|error| {
                self.invalid(
                    &KeyPath::default().key("config").key(TICK_KEY),
                    error.message,
                )
            })?),
            None => None,
        };
        self.check_ids()?;
        let mut inputs = self.subscriptions()?;
        let mut builder = TopologyBuilder::new();
        if let Some(checkpoint) = &self.def.checkpoint {
            let checkpointing = checkpoint.checkpointing().map_err(|(key, message)| {
                self.invalid(&KeyPath::default().key("checkpoint").key(key), message)
            })?;
            builder.checkpointing(checkpointing);
        }
        for (kind, index, component) in self.components() {
            let path = Self::component_path(kind, index);
            let body = self.body(kind, &path, component, &base_dir)?;
            let tick = self.component_tick(&path, component)?;
            let tasks = component.tasks.unwrap_or(component.parallelism);
            match body {
                Body::Shell(spec) if kind == Kind::Spout => {
                    let mut declarer = builder
                        .set_spout(
                            &component.id,
                            move || ShellSpout::shared(Arc::clone(&spec)),
                            component.parallelism,
                        )
                        .tasks(tasks);
                    for (key, value) in &component.config {
                        declarer = declarer.set(key, value.clone());
                    }
                }
                Body::Spout(factory) => {
                    let mut declarer = builder
                        .set_spout(
                            &component.id,
                            move || spout_of(&factory),
                            component.parallelism,
                        )
                        .tasks(tasks);
                    for (key, value) in &component.config {
                        declarer = declarer.set(key, value.clone());
                    }
                }
                Body::Replayable(factory) => {
                    let mut declarer = builder
                        .set_replayable_spout(
                            &component.id,
                            move || factory(),
                            component.parallelism,
                        )
                        .tasks(tasks);
                    for (key, value) in &component.config {
                        declarer = declarer.set(key, value.clone());
                    }
                }
                body => {
                    let window = self.window(&path, component)?;
                    // A windowed bolt's ticks move its windows' clock; they are not the
                    // subprocess's to see.
                    let windowed = window.is_some();
                    let in_state = component.window.as_ref().is_some_and(|def| def.state);
                    let mut declarer = match (body, window) {
                        (Body::Shell(spec), Some(window)) if in_state => builder
                            .set_state_backed_windowed_bolt(
                                &component.id,
                                move || ShellWindowBolt::shared(Arc::clone(&spec)),
                                component.parallelism,
                                &window,
                            ),
                        (Body::Shell(spec), Some(window)) => builder.set_windowed_bolt(
                            &component.id,
                            move || ShellWindowBolt::shared(Arc::clone(&spec)),
                            component.parallelism,
                            &window,
                        ),
                        (Body::Shell(spec), None) => builder.set_bolt(
                            &component.id,
                            move || ShellBolt::shared(Arc::clone(&spec)),
                            component.parallelism,
                        ),
                        (Body::Bolt(factory), _) => builder.set_bolt(
                            &component.id,
                            move || bolt_of(&factory),
                            component.parallelism,
                        ),
                        (Body::Stateful(factory), _) => builder.set_stateful_bolt(
                            &component.id,
                            move || factory(),
                            component.parallelism,
                        ),
                        (Body::Spout(_) | Body::Replayable(_), _) => {
                            unreachable!("handled above")
                        }
                    }
                    .tasks(tasks);
                    for (key, value) in &component.config {
                        declarer = declarer.set(key, value.clone());
                    }
                    if let Some(every) = tick.or(topology_tick)
                        && !windowed
                    {
                        declarer = declarer.tick_frequency(every);
                    }
                    if component.auto_ack {
                        declarer = declarer.auto_ack();
                    }
                    for input in inputs.remove(&component.id).unwrap_or_default() {
                        declarer =
                            declarer.grouping_on(&input.source, &input.stream, input.grouping);
                    }
                }
            }
        }
        let name = overrides.name.as_deref().unwrap_or(&self.def.name);
        builder
            .build(name, config)
            .map_err(|source| TopologyFileError::Topology {
                file: self.file.to_owned(),
                source: Box::new(source),
            })
    }

    fn check_ids(&self) -> Result<(), TopologyFileError> {
        let mut seen: BTreeMap<&str, KeyPath> = BTreeMap::new();
        for (kind, index, component) in self.components() {
            let path = Self::component_path(kind, index).key("id");
            if component.id.is_empty() || component.id.starts_with("__") {
                return Err(self.invalid(
                    &path,
                    format!("{:?} is not a component id: ids are not empty and do not start with \"__\"", component.id),
                ));
            }
            if let Some(first) = seen.insert(&component.id, path.clone()) {
                return Err(self.invalid(
                    &path,
                    format!("component id {:?} is already used by {first}", component.id),
                ));
            }
        }
        Ok(())
    }

    fn kind_of(&self, id: &str) -> Option<Kind> {
        self.components()
            .find(|(_, _, component)| component.id == id)
            .map(|(kind, _, _)| kind)
    }

    fn ids(&self, kind: Option<Kind>) -> String {
        let ids: Vec<&str> = self
            .components()
            .filter(|(k, _, _)| kind.is_none_or(|kind| *k == kind))
            .map(|(_, _, component)| component.id.as_str())
            .collect();
        ids.join(", ")
    }

    /// The subscriptions of each bolt, from the `streams` section.
    fn subscriptions(&self) -> Result<BTreeMap<String, Vec<Subscription>>, TopologyFileError> {
        let mut inputs: BTreeMap<String, Vec<Subscription>> = BTreeMap::new();
        for (index, stream) in self.def.streams.iter().enumerate() {
            let path = KeyPath::default().key("streams").index(index);
            if self.kind_of(&stream.from).is_none() {
                return Err(self.invalid(
                    &path.key("from"),
                    format!(
                        "no component is called {:?} (the components: {})",
                        stream.from,
                        self.ids(None)
                    ),
                ));
            }
            if self.kind_of(&stream.to) != Some(Kind::Bolt) {
                return Err(self.invalid(
                    &path.key("to"),
                    format!(
                        "no bolt is called {:?} (the bolts: {})",
                        stream.to,
                        self.ids(Some(Kind::Bolt))
                    ),
                ));
            }
            let grouping = self.grouping(&path, stream)?;
            inputs
                .entry(stream.to.clone())
                .or_default()
                .push(Subscription {
                    source: stream.from.clone(),
                    stream: stream
                        .grouping
                        .0
                        .stream
                        .clone()
                        .unwrap_or_else(|| squall_core::DEFAULT_STREAM.to_owned()),
                    grouping,
                });
        }
        Ok(inputs)
    }

    fn grouping(&self, path: &KeyPath, stream: &StreamDef) -> Result<Grouping, TopologyFileError> {
        let spec = &stream.grouping.0;
        let args_path = path.clone().key("grouping").key("args");
        if spec.kind.takes_fields() && spec.args.is_empty() {
            return Err(self.invalid(
                &path.clone().key("grouping"),
                "a fields or partial_key grouping needs the key fields in `args`",
            ));
        }
        if !spec.kind.takes_fields() && !spec.args.is_empty() {
            return Err(self.invalid(
                &args_path,
                "only fields and partial_key groupings take `args`",
            ));
        }
        let fields = spec.args.clone();
        Ok(match spec.kind {
            GroupingType::Shuffle => Grouping::Shuffle,
            GroupingType::Fields => Grouping::Fields(fields),
            GroupingType::All => Grouping::All,
            GroupingType::Global => Grouping::Global,
            GroupingType::None => Grouping::None,
            GroupingType::Direct => Grouping::Direct,
            GroupingType::LocalOrShuffle => Grouping::LocalOrShuffle,
            GroupingType::PartialKey => Grouping::PartialKey(fields),
        })
    }

    fn component_tick(
        &self,
        path: &KeyPath,
        component: &ComponentDef,
    ) -> Result<Option<Duration>, TopologyFileError> {
        for key in [HEARTBEAT_TIMEOUT_KEY, TICK_KEY] {
            if let Some(value) = component.config.get(key) {
                let every = seconds(key, value).map_err(|error| {
                    self.invalid(&path.clone().key("config").key(key), error.message)
                })?;
                if key == TICK_KEY {
                    return Ok(Some(every));
                }
            }
        }
        Ok(None)
    }

    /// The window of a shell bolt, checked.
    fn window(
        &self,
        path: &KeyPath,
        component: &ComponentDef,
    ) -> Result<Option<WindowSpec>, TopologyFileError> {
        let Some(def) = &component.window else {
            return Ok(None);
        };
        let here = path.clone().key("window");
        let invalid = |message: String| self.invalid(&here, message);
        if component.shell.is_none() {
            return Err(invalid(
                "window applies to shell bolts (their subprocess receives whole windows); \
                 Rust windowed bolts use TopologyBuilder::set_windowed_bolt"
                    .to_owned(),
            ));
        }
        let secs = |what: &str, secs: f64| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|duration| !duration.is_zero())
                .ok_or_else(|| invalid(format!("{what} must be a positive number of seconds")))
        };
        let length = match (def.count, def.secs) {
            (Some(count), None) => Extent::Count(count),
            (None, Some(length)) => Extent::Time(secs("secs", length)?),
            _ => {
                return Err(invalid(
                    "give the window's length as count (tuples) or secs, one of them".to_owned(),
                ));
            }
        };
        let spec = match (def.slide_count, def.slide_secs) {
            (None, None) => WindowSpec::tumbling(length),
            (Some(count), None) => WindowSpec::sliding(length, Extent::Count(count)),
            (None, Some(slide)) => {
                WindowSpec::sliding(length, Extent::Time(secs("slide_secs", slide)?))
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give slide_count or slide_secs, not both".to_owned(),
                ));
            }
        };
        let mut spec = spec.map_err(|error| invalid(error.to_string()))?;
        match (&def.time_field, def.lag_secs) {
            (Some(field), lag) => {
                let lag = match lag {
                    Some(0.0) | None => Duration::ZERO,
                    Some(lag) => secs("lag_secs", lag)?,
                };
                spec = spec
                    .with_event_time(field, lag)
                    .map_err(|error| invalid(error.to_string()))?;
            }
            (None, Some(_)) => {
                return Err(invalid("lag_secs needs time_field (event time)".to_owned()));
            }
            (None, None) => {}
        }
        match (&def.late_stream, def.late_fields.is_empty()) {
            (Some(stream), false) => {
                let fields: Vec<&str> = def.late_fields.iter().map(String::as_str).collect();
                spec = spec
                    .with_late_stream(stream, &fields)
                    .map_err(|error| invalid(error.to_string()))?;
            }
            (Some(_), true) => {
                return Err(invalid(
                    "late_stream needs late_fields, the fields its tuples carry (the input's)"
                        .to_owned(),
                ));
            }
            (None, false) => {
                return Err(invalid("late_fields needs late_stream".to_owned()));
            }
            (None, true) => {}
        }
        Ok(Some(spec))
    }

    fn body(
        &self,
        kind: Kind,
        path: &KeyPath,
        component: &ComponentDef,
        base_dir: &Path,
    ) -> Result<Body, TopologyFileError> {
        if component.window.is_some() && kind == Kind::Spout {
            return Err(self.invalid(
                &path.clone().key("window"),
                "window applies to shell bolts, not spouts",
            ));
        }
        if component.auto_ack && (kind == Kind::Spout || component.shell.is_some()) {
            return Err(self.invalid(
                &path.clone().key("auto_ack"),
                "auto_ack applies to builtin bolts only (a shell bolt's subprocess acks its inputs)",
            ));
        }
        match (&component.shell, &component.builtin) {
            (Some(shell), None) => {
                if !component.params.is_empty() {
                    return Err(self.invalid(
                        &path.clone().key("params"),
                        "params are for builtin components; a shell component gets its settings from `config`",
                    ));
                }
                Ok(Body::Shell(Arc::new(
                    self.shell_spec(path, component, shell)?,
                )))
            }
            (None, Some(name)) => {
                if !component.outputs.is_empty() {
                    return Err(self.invalid(
                        &path.clone().key("outputs"),
                        "a builtin component declares its own outputs; `outputs` is for shell components",
                    ));
                }
                let args = BuiltinArgs {
                    component: &component.id,
                    params: &component.params,
                    base_dir,
                    tasks: component.tasks.unwrap_or(component.parallelism),
                };
                let checkpointed = self.def.checkpoint.is_some();
                let replayable = || {
                    self.registry
                        .replayable_spout_maker(name)
                        .map(|maker| maker(&args).map(Body::Replayable))
                };
                let made = match kind {
                    Kind::Spout if checkpointed => replayable().or_else(|| {
                        self.registry
                            .spout_maker(name)
                            .map(|maker| maker(&args).map(Body::Spout))
                    }),
                    Kind::Spout => self
                        .registry
                        .spout_maker(name)
                        .map(|maker| maker(&args).map(Body::Spout))
                        .or_else(replayable),
                    Kind::Bolt => self
                        .registry
                        .bolt_maker(name)
                        .map(|maker| maker(&args).map(Body::Bolt))
                        .or_else(|| {
                            self.registry
                                .stateful_bolt_maker(name)
                                .map(|maker| maker(&args).map(Body::Stateful))
                        }),
                };
                match made {
                    Some(made) => {
                        made.map_err(|message| self.invalid(&path.clone().key("params"), message))
                    }
                    None => {
                        let (what, names): (&str, Vec<&str>) = match kind {
                            Kind::Spout => {
                                ("spout", self.registry.spouts().map(|(n, _)| n).collect())
                            }
                            Kind::Bolt => ("bolt", self.registry.bolts().map(|(n, _)| n).collect()),
                        };
                        Err(self.invalid(
                            &path.clone().key("builtin"),
                            format!(
                                "no builtin {what} is called {name:?} (the builtin {what}s: {})",
                                names.join(", ")
                            ),
                        ))
                    }
                }
            }
            (Some(_), Some(_)) => Err(self.invalid(
                path,
                format!(
                    "{:?} has both `shell` and `builtin`: give one",
                    component.id
                ),
            )),
            (None, None) => Err(self.invalid(
                path,
                format!(
                    "{:?} has neither `shell` nor `builtin`: give one",
                    component.id
                ),
            )),
        }
    }

    fn shell_spec(
        &self,
        path: &KeyPath,
        component: &ComponentDef,
        shell: &ShellDef,
    ) -> Result<ShellSpec, TopologyFileError> {
        if shell.command.trim().is_empty() {
            return Err(self.invalid(
                &path.clone().key("shell").key("command"),
                "the command is empty",
            ));
        }
        let mut spec =
            ShellSpec::new(shell.command.clone(), shell.args.clone()).base_dir(self.file_dir);
        if let Some(dir) = &shell.cwd {
            spec = spec.working_dir(dir.clone());
        }
        if let Some(dir) = &shell.resources {
            spec = spec.resources_dir(dir.clone());
        }
        for (key, value) in &shell.env {
            spec = spec.env(key.clone(), value.clone());
        }
        spec = spec.restart(match shell.restart {
            RestartDef::Always => RestartPolicy::Always,
            RestartDef::Never => RestartPolicy::Never,
            RestartDef::Limited {
                max_restarts,
                within_secs,
            } => RestartPolicy::Limited {
                max_restarts,
                within: Duration::from_secs_f64(within_secs),
            },
        });
        for (index, output) in component.outputs.iter().enumerate() {
            if output.fields.iter().any(String::is_empty) {
                return Err(self.invalid(
                    &path.clone().key("outputs").index(index).key("fields"),
                    "field names are not empty",
                ));
            }
            let fields: Vec<&str> = output.fields.iter().map(String::as_str).collect();
            spec = if output.direct {
                spec.output_direct_stream(&output.stream, &fields)
            } else {
                spec.output_stream(&output.stream, &fields)
            };
        }
        Ok(spec)
    }
}
