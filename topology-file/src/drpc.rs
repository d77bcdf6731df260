//! The DRPC components a topology file can name: the `drpc` spout, and the `drpc_aggregate`,
//! `drpc_return` and `publish` bolts (see `docs/drpc.md`).

use std::sync::Arc;

use serde::Deserialize;
use squall_drpc::{
    Aggregation, ClusterSecret, DrpcAggregateBolt, DrpcKey, DrpcServers, DrpcSpout, PublishBolt,
    ReturnResultsBolt, SpoutShape,
};

use crate::registry::{BoltFactory, BuiltinArgs, ComponentRegistry, SpoutFactory};

/// What DRPC components use when their params name no servers, and the secret they
/// authenticate with.
#[derive(Debug, Clone, Default)]
pub struct DrpcDefaults {
    /// Servers for components whose params name none.
    pub servers: Vec<String>,
    /// The cluster secret; when absent, the key is found in the environment as the
    /// topology is built ([`DrpcKey::from_environment`]: the cluster secret in local mode,
    /// the topology's worker key on a cluster).
    pub secret: Option<ClusterSecret>,
}

impl DrpcDefaults {
    fn servers(
        &self,
        args: &BuiltinArgs<'_>,
        named: Option<Vec<String>>,
    ) -> Result<DrpcServers, String> {
        let addresses = named.unwrap_or_else(|| self.servers.clone());
        if addresses.is_empty() {
            return Err(format!(
                "component {:?} names no DRPC servers: set params.servers, or run it with \
                 `squall local --drpc HOST:PORT`",
                args.component
            ));
        }
        // Without a secret given, the key is found when the component starts, in the
        // process that runs it: a cluster's worker holds its topology's key, the process
        // that only describes the topology (`squall submit`) holds none.
        let key = match &self.secret {
            Some(secret) => DrpcKey::cluster(secret.clone()),
            None => DrpcKey::from_environment_at_start(),
        };
        DrpcServers::with_key(addresses, key)
            .map_err(|error| format!("component {:?}: {error}", args.component))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpoutParams {
    function: String,
    #[serde(default)]
    servers: Option<Vec<String>>,
    #[serde(default)]
    linear: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnParams {
    #[serde(default)]
    servers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishParams {
    stream: String,
    #[serde(default)]
    servers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateParams {
    aggregate: String,
    #[serde(default = "value_field")]
    field: usize,
}

fn value_field() -> usize {
    1
}

/// Adds (or replaces) the DRPC components of `registry`, with `defaults`.
pub fn register_drpc(registry: &mut ComponentRegistry, defaults: DrpcDefaults) {
    let defaults = Arc::new(defaults);
    let spout_defaults = defaults.clone();
    registry.add_spout(
        "drpc",
        "the requests of a DRPC function: [args, return-info], or with linear: true [id, args] \
         on `args` and [id, return-info] on `finish`",
        move |args| {
            let params: SpoutParams = args.params()?;
            squall_drpc::protocol::check_function(&params.function)
                .map_err(|reason| format!("params.function: {reason}"))?;
            let servers = spout_defaults.servers(args, params.servers)?;
            let shape = if params.linear {
                SpoutShape::Linear
            } else {
                SpoutShape::Plain
            };
            let factory: SpoutFactory = Arc::new(move || {
                Box::new(DrpcSpout::new(&params.function, servers.clone(), shape))
            });
            Ok(factory)
        },
    );
    let publish_defaults = defaults.clone();
    registry.add_bolt(
        "publish",
        "publishes each tuple, as a JSON array of its values, on stream <topology>/<stream> \
         of the DRPC servers, for their subscribers (at most once; the oldest dropped when a \
         server falls behind)",
        move |args| {
            let params: PublishParams = args.params()?;
            squall_drpc::protocol::check_stream_part("stream name", &params.stream)
                .map_err(|reason| format!("params.stream: {reason}"))?;
            let servers = publish_defaults.servers(args, params.servers)?;
            let factory: BoltFactory = Arc::new(move || {
                Box::new(
                    PublishBolt::new(&params.stream, servers.clone())
                        .expect("the stream name was checked"),
                )
            });
            Ok(factory)
        },
    );
    registry.add_bolt(
        "drpc_return",
        "sends [result, return-info] to the DRPC server holding the request",
        move |args| {
            let params: ReturnParams = args.params()?;
            let servers = defaults.servers(args, params.servers)?;
            let factory: BoltFactory =
                Arc::new(move || Box::new(ReturnResultsBolt::new(servers.clone())));
            Ok(factory)
        },
    );
    registry.add_bolt(
        "drpc_aggregate",
        "folds [id, value] tuples per DRPC request (count, count-distinct, sum, distinct); \
         answers [result, return-info] at the request's finish",
        |args| {
            let params: AggregateParams = args.params()?;
            let aggregation = Aggregation::parse(&params.aggregate)?;
            let field = params.field;
            let factory: BoltFactory =
                Arc::new(move || Box::new(DrpcAggregateBolt::new(aggregation, field)));
            Ok(factory)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Overrides, TopologyFile};

    const FILE: &str = "\
name: reach
spouts:
  - {id: requests, builtin: drpc, params: {function: reach, linear: true}}
bolts:
  - {id: distinct, builtin: drpc_aggregate, params: {aggregate: AGGREGATE}}
  - {id: return, builtin: drpc_return}
streams:
  - {from: requests, to: distinct, grouping: {type: fields, args: [id], streamId: args}}
  - {from: requests, to: distinct, grouping: {type: fields, args: [id], streamId: finish}}
  - {from: distinct, to: return, grouping: shuffle}
";

    /// Builds the file `text` with DRPC components using `defaults`.
    fn build_text(text: &str, name: &str, defaults: DrpcDefaults) -> Result<(), String> {
        let file = TopologyFile::parse(text, name, std::path::Path::new("."))
            .map_err(|error| error.to_string())?;
        let mut registry = ComponentRegistry::with_builtins();
        registry.with_drpc(defaults);
        file.build_with(&Overrides::default(), &registry)
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    fn build(aggregate: &str, defaults: DrpcDefaults) -> Result<(), String> {
        build_text(
            &FILE.replace("AGGREGATE", aggregate),
            "reach.yaml",
            defaults,
        )
    }

    fn local_defaults() -> DrpcDefaults {
        DrpcDefaults {
            servers: vec!["127.0.0.1:3772".to_owned()],
            secret: Some(ClusterSecret::new(*b"0123456789abcdef0123").unwrap()),
        }
    }

    #[test]
    fn a_linear_drpc_file_builds_with_servers() {
        build("count-distinct", local_defaults()).unwrap();
    }

    fn build_publish(params: &str, defaults: DrpcDefaults) -> Result<(), String> {
        let text = format!(
            "name: trending\nspouts:\n  - {{id: words, builtin: words, params: {{rate: 10}}}}\n\
             bolts:\n  - {{id: out, builtin: publish, params: {params}}}\n\
             streams:\n  - {{from: words, to: out, grouping: shuffle}}\n"
        );
        build_text(&text, "trending.yaml", defaults)
    }

    #[test]
    fn a_publish_bolt_builds_and_its_bad_params_are_named() {
        build_publish("{stream: trending}", local_defaults()).unwrap();
        build_publish(
            "{stream: trending, servers: [\"drpc1:3772\"]}",
            DrpcDefaults {
                secret: local_defaults().secret,
                ..DrpcDefaults::default()
            },
        )
        .unwrap();
        let error = build_publish("{stream: \"a/b\"}", local_defaults()).unwrap_err();
        assert!(
            error.contains("params.stream: the stream name \"a/b\""),
            "{error}"
        );
        let error = build_publish("{}", local_defaults()).unwrap_err();
        assert!(error.contains("stream"), "{error}");
        let error = build_publish("{stream: s}", DrpcDefaults::default()).unwrap_err();
        assert!(
            error.contains("component \"out\" names no DRPC servers"),
            "{error}"
        );
    }

    #[test]
    fn missing_servers_and_bad_params_are_named() {
        let error = build("count-distinct", DrpcDefaults::default()).unwrap_err();
        assert!(
            error.contains(
                "component \"requests\" names no DRPC servers: set params.servers, or run it \
                 with `squall local --drpc HOST:PORT`"
            ),
            "{error}"
        );
        let error = build("average", local_defaults()).unwrap_err();
        assert!(
            error.contains("unknown DRPC aggregation \"average\""),
            "{error}"
        );
        let defaults = DrpcDefaults {
            servers: vec!["no-port".to_owned()],
            ..local_defaults()
        };
        let error = build("count", defaults).unwrap_err();
        assert!(
            error.contains("DRPC server address \"no-port\" is not host:port"),
            "{error}"
        );
    }
}
