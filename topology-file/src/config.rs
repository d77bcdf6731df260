//! Settings under Storm's key names, applied to a [`TopologyConfig`]. Every setting, known or
//! not, is also kept as a free-form one, so components (and subprocesses, in their
//! handshake) see them all.

use std::time::Duration;

use serde_json::{Map as JsonMap, Value as JsonValue};

use squall_core::WaitStrategyKind;
use squall_core::config::TopologyConfig;
use squall_multilang::{HEARTBEAT_TIMEOUT_KEY, STORM_SUBPROCESS_TIMEOUT_KEY};

/// Worker processes.
pub const WORKERS_KEY: &str = "topology.workers";
/// Acker tasks (0 turns tracking off).
pub const ACKERS_KEY: &str = "topology.acker.executors";
/// Most tracked trees in flight per spout task.
pub const MAX_SPOUT_PENDING_KEY: &str = "topology.max.spout.pending";
/// Seconds before a tree in flight fails.
pub const MESSAGE_TIMEOUT_KEY: &str = "topology.message.timeout.secs";
/// Seconds between tick tuples (topology-wide for every bolt, or for one component).
pub const TICK_KEY: &str = "topology.tick.tuple.freq.secs";
/// How idle executors wait: `busy-spin`, `spin-yield` or `spin-park`.
pub const WAIT_STRATEGY_KEY: &str = "squall.wait.strategy";

/// What is wrong with a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettingError {
    pub(crate) key: String,
    pub(crate) message: String,
}

fn positive_integer(key: &str, value: &JsonValue, minimum: u64) -> Result<u64, SettingError> {
    value
        .as_u64()
        .filter(|number| *number >= minimum)
        .ok_or_else(|| SettingError {
            key: key.to_owned(),
            message: format!("must be an integer of at least {minimum}, found {value}"),
        })
}

/// A positive number of seconds.
pub(crate) fn seconds(key: &str, value: &JsonValue) -> Result<Duration, SettingError> {
    value
        .as_f64()
        .filter(|secs| *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| SettingError {
            key: key.to_owned(),
            message: format!("must be a positive number of seconds, found {value}"),
        })
}

/// The topology configuration the settings describe.
pub(crate) fn topology_config(
    settings: &JsonMap<String, JsonValue>,
) -> Result<TopologyConfig, SettingError> {
    let mut config = TopologyConfig::default();
    for (key, value) in settings {
        match key.as_str() {
            WORKERS_KEY => {
                config.workers =
                    usize::try_from(positive_integer(key, value, 1)?).unwrap_or(usize::MAX);
            }
            ACKERS_KEY => {
                config.ackers =
                    Some(usize::try_from(positive_integer(key, value, 0)?).unwrap_or(usize::MAX));
            }
            MAX_SPOUT_PENDING_KEY => {
                let pending = positive_integer(key, value, 1)?;
                config.max_spout_pending =
                    Some(u32::try_from(pending).map_err(|_| SettingError {
                        key: key.clone(),
                        message: format!("must be at most {}, found {value}", u32::MAX),
                    })?);
            }
            MESSAGE_TIMEOUT_KEY => config.message_timeout = seconds(key, value)?,
            TICK_KEY | STORM_SUBPROCESS_TIMEOUT_KEY | HEARTBEAT_TIMEOUT_KEY => {
                seconds(key, value)?;
            }
            WAIT_STRATEGY_KEY => {
                let name = value.as_str().unwrap_or_default();
                config.wait_strategy =
                    name.parse::<WaitStrategyKind>()
                        .map_err(|error| SettingError {
                            key: key.clone(),
                            message: format!("{error} (found {value})"),
                        })?;
            }
            _ => {}
        }
        config.user.insert(key.clone(), value.clone());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_keys_set_the_config() {
        let settings: JsonMap<String, JsonValue> = serde_json::from_str(
            r#"{"topology.workers": 2, "topology.acker.executors": 0,
                "topology.max.spout.pending": 500, "topology.message.timeout.secs": 12.5,
                "squall.wait.strategy": "busy-spin", "app.greeting": "hi"}"#,
        )
        .unwrap();
        let config = topology_config(&settings).unwrap();
        assert_eq!(config.workers, 2);
        assert_eq!(config.ackers, Some(0));
        assert_eq!(config.max_spout_pending, Some(500));
        assert_eq!(config.message_timeout, Duration::from_millis(12_500));
        assert_eq!(config.wait_strategy, WaitStrategyKind::BusySpin);
        assert_eq!(config.user["app.greeting"], "hi");
        assert_eq!(config.user["topology.workers"], 2);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            (r#"{"topology.workers": 0}"#, WORKERS_KEY),
            (
                r#"{"topology.max.spout.pending": "lots"}"#,
                MAX_SPOUT_PENDING_KEY,
            ),
            (
                r#"{"topology.message.timeout.secs": -1}"#,
                MESSAGE_TIMEOUT_KEY,
            ),
            (r#"{"squall.wait.strategy": "nap"}"#, WAIT_STRATEGY_KEY),
        ] {
            let settings: JsonMap<String, JsonValue> = serde_json::from_str(text).unwrap();
            let error = topology_config(&settings).unwrap_err();
            assert_eq!(error.key, key, "{error:?}");
        }
    }
}
