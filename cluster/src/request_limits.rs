//! Bounds on the numbers a request carries. Requests come from anyone holding the secret,
//! including scripts with typos: a wait of `u64::MAX` seconds or a component of 200
//! million executors must be refused with the limit named, never wrap around or be
//! allocated.

use crate::plan::TopologyDescription;

/// The most tasks (and so executors) one component may have; the engine refuses more
/// when it builds a topology.
pub use squall_core::topology::MAX_TASKS_PER_COMPONENT;

/// The moment `wait_secs` seconds after `now_ms`, in ms since the epoch.
///
/// # Errors
/// When the sum does not fit in 64 bits.
pub fn deadline_after(now_ms: u64, wait_secs: u64) -> Result<u64, String> {
    wait_secs
        .checked_mul(1000)
        .and_then(|wait_ms| now_ms.checked_add(wait_ms))
        .ok_or_else(|| format!("a wait of {wait_secs} s is beyond any clock; give fewer seconds"))
}

/// Checks one component's task count and executor count against
/// [`MAX_TASKS_PER_COMPONENT`] and each other.
///
/// # Errors
/// Naming the component and the limit it exceeds.
pub fn check_component(id: &str, tasks: usize, executors: usize) -> Result<(), String> {
    if tasks > MAX_TASKS_PER_COMPONENT || executors > MAX_TASKS_PER_COMPONENT {
        return Err(format!(
            "component {id:?} asks for {} tasks, more than the limit of \
             {MAX_TASKS_PER_COMPONENT} per component",
            tasks.max(executors)
        ));
    }
    if executors == 0 || executors > tasks {
        return Err(format!(
            "component {id:?} has {tasks} tasks, so it can run on 1 to {tasks} executors, \
             not {executors}"
        ));
    }
    Ok(())
}

/// The total number of executors of `description` when each component runs
/// `executors_of(component)` executors, every component within its limits.
///
/// # Errors
/// The first component out of bounds, or a total that does not fit a `usize`.
pub fn total_executors(
    description: &TopologyDescription,
    executors_of: impl Fn(&str, usize) -> usize,
) -> Result<usize, String> {
    description
        .components
        .iter()
        .try_fold(0usize, |total, component| {
            let executors = executors_of(&component.id, component.parallelism);
            check_component(&component.id, component.tasks, executors)?;
            total
                .checked_add(executors)
                .ok_or_else(|| "the topology's executors cannot be counted".to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ComponentDescription;

    #[test]
    fn deadlines_never_wrap() {
        assert_eq!(deadline_after(1_000, 5), Ok(6_000));
        assert_eq!(
            deadline_after(1_000, u64::MAX),
            Err(format!(
                "a wait of {} s is beyond any clock; give fewer seconds",
                u64::MAX
            ))
        );
        assert!(deadline_after(u64::MAX - 10, 1).is_err());
    }

    #[test]
    fn components_stay_within_the_cap() {
        assert_eq!(check_component("count", 4, 2), Ok(()));
        assert_eq!(
            check_component("count", 200_000_000, 1),
            Err(
                "component \"count\" asks for 200000000 tasks, more than the limit of 65536 per component"
                    .to_owned()
            )
        );
        assert!(check_component("count", 4, 200_000_000).is_err());
        assert!(check_component("count", 4, 0).is_err());
        assert!(check_component("count", 4, 5).is_err());
    }

    #[test]
    fn totals_are_checked() {
        let component = |id: &str, parallelism, tasks| ComponentDescription {
            id: id.to_owned(),
            kind: "bolt".to_owned(),
            parallelism,
            tasks,
            inputs: Vec::new(),
        };
        let description = TopologyDescription {
            name: "wc".into(),
            workers: 1,
            components: vec![component("a", 2, 4), component("b", 1, 1)],
            executor_components: vec![0, 0, 1],
            message_timeout_ms: 30_000,
        };
        assert_eq!(total_executors(&description, |_, own| own), Ok(3));
        assert_eq!(
            total_executors(&description, |id, own| if id == "a" { 4 } else { own }),
            Ok(5)
        );
        assert!(total_executors(&description, |_, _| usize::MAX).is_err());
    }
}
