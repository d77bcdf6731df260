//! The Prometheus HTTP service-discovery list (`http_sd_configs`) of every `/metrics`
//! endpoint of a cluster: nimbuses, supervisors and workers.

use serde_json::{Value, json};

use super::view::ClusterView;

/// The target groups: one per endpoint, with labels saying what it is.
pub fn targets(view: &ClusterView, nimbus_endpoints: &[(String, String)]) -> Value {
    let mut groups = Vec::new();
    for (id, endpoint) in nimbus_endpoints {
        groups.push(json!({
            "targets": [endpoint],
            "labels": { "squall_role": "nimbus", "squall_nimbus": id },
        }));
    }
    for supervisor in &view.supervisors {
        if let Some(endpoint) = &supervisor.info.metrics_endpoint {
            groups.push(json!({
                "targets": [endpoint],
                "labels": {
                    "squall_role": "supervisor",
                    "squall_supervisor": supervisor.info.id,
                    "host": supervisor.info.host,
                },
            }));
        }
    }
    for topology in &view.topologies {
        for worker in &topology.workers {
            let Some(endpoint) = worker
                .heartbeat
                .as_ref()
                .and_then(|beat| beat.metrics_endpoint.as_ref())
            else {
                continue;
            };
            groups.push(json!({
                "targets": [endpoint],
                "labels": {
                    "squall_role": "worker",
                    "squall_supervisor": worker.supervisor,
                    "topology": topology.name,
                    "topology_id": topology.id,
                    "host": worker.host,
                    "port": worker.port.to_string(),
                },
            }));
        }
    }
    Value::Array(groups)
}
