//! Injects each fault of a drill and measures how long the cluster takes to recover from
//! it: until its state is consistent again and the topology processes new messages.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::drill::args::Fault;
use crate::drill::local_cluster::signal;
use crate::drill::probe::Expectation;
use crate::drill::report::FaultResult;
use crate::drill::session::{Recovery, Session};

/// Injects `fault` and waits for the recovery; `outage` is how long ZooKeeper stays down.
///
/// # Errors
/// When the fault cannot be injected at all (no worker to kill, a refused request).
pub fn inject(
    session: &mut Session,
    fault: Fault,
    outage: Duration,
) -> anyhow::Result<FaultResult> {
    let bound = fault.bound();
    let (action, detail, recovery) = match fault {
        Fault::WorkerKill => worker_kill(session, bound)?,
        Fault::HostLoss => host_loss(session, bound)?,
        Fault::LeaderKill => leader_kill(session, bound)?,
        Fault::ZooKeeperOutage => zookeeper_outage(session, bound, outage)?,
        Fault::Rebalance => rebalance(session, bound)?,
        Fault::DeactivateActivate => deactivate_activate(session, bound)?,
    };
    Ok(result(fault.name(), action, bound, detail, recovery))
}

/// A result from its parts.
pub fn result(
    fault: &str,
    action: String,
    bound: Duration,
    detail: Option<String>,
    recovery: Recovery,
) -> FaultResult {
    FaultResult {
        fault: fault.to_owned(),
        action,
        bound,
        recovery: recovery.time,
        detail,
        problem: recovery.problem,
    }
}

type Outcome = (String, Option<String>, Recovery);

/// The id of the running tracked topology.
fn topology_id(session: &Session) -> anyhow::Result<String> {
    Ok(session
        .client
        .status(&session.topology)
        .with_context(|| format!("cannot look up topology {}", session.topology))?
        .record
        .id)
}

fn worker_kill(session: &mut Session, bound: Duration) -> anyhow::Result<Outcome> {
    let id = topology_id(session)?;
    let local = session.local()?;
    let victim = local
        .all_workers()
        .into_iter()
        .find(|worker| worker.topology_id == id)
        .context("no worker of the topology runs on this machine")?;
    let killed = Instant::now();
    signal(victim.pid, rustix::process::Signal::KILL, true);
    let expected = Expectation {
        killed_pid: Some(victim.pid),
        ..session.healthy()
    };
    let recovery = session.await_recovery(killed, &expected, bound);
    Ok((
        format!(
            "SIGKILL worker pid {} (host{}:{}); its supervisor restarts it",
            victim.pid, victim.host, victim.port
        ),
        None,
        recovery,
    ))
}

fn host_loss(session: &mut Session, bound: Duration) -> anyhow::Result<Outcome> {
    let id = topology_id(session)?;
    let local = session.local()?;
    let victim = local
        .all_workers()
        .into_iter()
        .find(|worker| worker.topology_id == id)
        .context("no worker of the topology runs on this machine")?;
    let supervisor = local.supervisors[victim.host].config.supervisor.id();
    let processes = 1 + local.workers_of(victim.host).len();
    let killed = Instant::now();
    local.kill_host(victim.host)?;
    let cut = if local.hosts.is_some() {
        "link down, then "
    } else {
        ""
    };
    let expected = Expectation {
        lost_supervisor: Some(supervisor.clone()),
        ..session.healthy()
    };
    let recovery = session.await_recovery(killed, &expected, bound);
    Ok((
        format!(
            "host {supervisor} lost: {cut}SIGKILL its supervisor and workers ({processes} \
             processes); its work moves to the other hosts"
        ),
        None,
        recovery,
    ))
}

fn leader_kill(session: &mut Session, bound: Duration) -> anyhow::Result<Outcome> {
    let leader = session.client.leader().context("no nimbus leads")?;
    let local = session.local()?;
    let index = local
        .nimbus_index(&leader.id)
        .with_context(|| format!("the leader {} is not a nimbus of the drill", leader.id))?;
    let killed = Instant::now();
    local.nimbuses[index].kill();
    let expected = Expectation {
        killed_leader: Some(leader.id.clone()),
        ..session.healthy()
    };
    let recovery = session.await_recovery(killed, &expected, bound);
    // The cluster gets its standby back for the faults that follow.
    session.local()?.start_nimbus(index)?;
    Ok((
        format!(
            "SIGKILL the leader nimbus {}; a standby takes over (the killed one is then \
             restarted as a standby)",
            leader.id
        ),
        None,
        recovery,
    ))
}

fn zookeeper_outage(
    session: &mut Session,
    bound: Duration,
    outage: Duration,
) -> anyhow::Result<Outcome> {
    session.local()?.zookeeper.stop();
    let stopped = Instant::now();
    let mut windows = 0;
    let mut acking = 0;
    let mut last = session.progress();
    while stopped.elapsed() < outage {
        std::thread::sleep(Duration::from_secs(1).min(outage.saturating_sub(stopped.elapsed())));
        let now = session.progress();
        windows += 1;
        if now > last {
            acking += 1;
        }
        last = now;
    }
    session.local()?.zookeeper.resume()?;
    let restarted = Instant::now();
    let recovery = session.await_recovery(restarted, &session.healthy(), bound);
    Ok((
        format!(
            "ZooKeeper stopped for {:.0} s, then restarted; recovery counts from the restart",
            outage.as_secs_f64()
        ),
        Some(format!(
            "messages acked in {acking} of {windows} one-second windows of the outage"
        )),
        recovery,
    ))
}

fn rebalance(session: &mut Session, bound: Duration) -> anyhow::Result<Outcome> {
    let from = session.workers;
    let to = from.saturating_sub(1).max(1);
    let version = session
        .view()
        .map_err(anyhow::Error::msg)?
        .version
        .context("the topology is not scheduled")?;
    let requested = Instant::now();
    session
        .client
        .rebalance(&session.topology, Some(to), BTreeMap::new(), Some(0))
        .context("rebalance refused")?;
    session.workers = to;
    let expected = Expectation {
        newer_than: Some(version),
        ..session.healthy()
    };
    let recovery = session.await_recovery(requested, &expected, bound);
    Ok((
        format!("rebalance from {from} to {to} workers (no wait)"),
        None,
        recovery,
    ))
}

fn deactivate_activate(session: &mut Session, bound: Duration) -> anyhow::Result<Outcome> {
    session
        .client
        .deactivate(&session.topology)
        .context("deactivate refused")?;
    session.active = false;
    let paused = session.await_quiet(Duration::from_secs(1), Duration::from_secs(15));
    let inactive = session
        .view()
        .and_then(|view| view.check(&session.healthy()))
        .err();
    let detail = match (paused, inactive) {
        (Some(after), None) => format!(
            "deactivated: acks stopped {:.2} s after the request",
            after.as_secs_f64()
        ),
        (None, _) => "deactivated: acks went on for 15 s".to_owned(),
        (_, Some(problem)) => format!("deactivated, but {problem}"),
    };
    let activated = Instant::now();
    session
        .client
        .activate(&session.topology)
        .context("activate refused")?;
    session.active = true;
    let mut recovery = session.await_recovery(activated, &session.healthy(), bound);
    if paused.is_none() {
        // A pause that does not stop the spouts is a failed drill even if activation works.
        recovery = Recovery {
            time: None,
            problem: Some("deactivate did not stop the spouts".into()),
        };
    }
    Ok((
        "deactivate, wait for the acks to stop, then activate; recovery counts from activate"
            .into(),
        Some(detail),
        recovery,
    ))
}
