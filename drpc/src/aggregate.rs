//! The final step of a linear DRPC topology: folds the tuples of each request into one
//! answer, and emits it when the spout says the request's tuples are all processed.
//!
//! Storm's linear DRPC learns that a request is complete by counting tuples between tasks
//! (its `CoordinatedBolt`). Squall uses the acker instead: the spout's `ack` for a request's
//! tree means every tuple of it, anchored down the chain, has been processed here, so the
//! spout then emits the request's id on its `finish` stream, grouped by id to this bolt.
//! The chain's bolts must therefore anchor what they emit (the linear builder makes them
//! `auto_ack`, which does).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use squall_core::component::Bolt;
use squall_core::runtime::{BoltOutput, Tuple};
use squall_core::topology::OutputDeclarer;
use squall_core::value::ValueRef;

use crate::return_info::value_text;
use crate::spout::FINISH_STREAM;

/// How the values of one request become its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// How many tuples arrived.
    Count,
    /// How many distinct values arrived.
    CountDistinct,
    /// The sum of the (numeric) values.
    Sum,
    /// The distinct values, sorted, joined by commas.
    Distinct,
}

impl Aggregation {
    /// The aggregation a topology file names: `count`, `count-distinct`, `sum` or
    /// `distinct`.
    ///
    /// # Errors
    /// A description naming the choices.
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "count" => Aggregation::Count,
            "count-distinct" => Aggregation::CountDistinct,
            "sum" => Aggregation::Sum,
            "distinct" => Aggregation::Distinct,
            other => {
                return Err(format!(
                    "unknown DRPC aggregation {other:?} (expected count, count-distinct, sum or distinct)"
                ));
            }
        })
    }
}

/// One request's partial answer.
#[derive(Debug)]
enum Partial {
    Count(u64),
    Distinct(BTreeSet<String>),
    Sum {
        integer: i128,
        float: f64,
        floats: bool,
    },
}

impl Partial {
    fn new(aggregation: Aggregation) -> Self {
        match aggregation {
            Aggregation::Count => Partial::Count(0),
            Aggregation::CountDistinct | Aggregation::Distinct => {
                Partial::Distinct(BTreeSet::new())
            }
            Aggregation::Sum => Partial::Sum {
                integer: 0,
                float: 0.0,
                floats: false,
            },
        }
    }

    fn add(&mut self, value: &ValueRef<'_>) -> Result<(), String> {
        match self {
            Partial::Count(count) => *count += 1,
            Partial::Distinct(values) => {
                values.insert(value_text(value));
            }
            Partial::Sum {
                integer,
                float,
                floats,
            } => match *value {
                ValueRef::U64(n) => *integer += i128::from(n),
                ValueRef::I64(n) => *integer += i128::from(n),
                ValueRef::F64(n) => {
                    *float += n;
                    *floats = true;
                }
                ValueRef::Str(text) => {
                    if let Ok(n) = text.parse::<i64>() {
                        *integer += i128::from(n);
                    } else if let Ok(n) = text.parse::<f64>() {
                        *float += n;
                        *floats = true;
                    } else {
                        return Err(format!("cannot sum {text:?}: not a number"));
                    }
                }
                ref other => {
                    return Err(format!(
                        "cannot sum a value of type {}",
                        other.value_type().name()
                    ));
                }
            },
        }
        Ok(())
    }

    fn finish(self, aggregation: Aggregation) -> String {
        match self {
            Partial::Count(count) => count.to_string(),
            Partial::Distinct(values) if aggregation == Aggregation::CountDistinct => {
                values.len().to_string()
            }
            Partial::Distinct(values) => values.into_iter().collect::<Vec<_>>().join(","),
            Partial::Sum {
                integer,
                float,
                floats,
            } => {
                if floats {
                    (integer as f64 + float).to_string()
                } else {
                    integer.to_string()
                }
            }
        }
    }
}

/// Folds `[id, ..., value, ...]` tuples by id and emits `[result, return-info]` when the
/// `finish` stream names the id.
#[derive(Debug)]
pub struct DrpcAggregateBolt {
    aggregation: Aggregation,
    value_field: usize,
    partials: HashMap<String, (Instant, Partial)>,
    stale_after: Duration,
    executed: u64,
}

impl DrpcAggregateBolt {
    /// Aggregates field `value_field` of the chain's tuples (field 0 is the request id).
    pub fn new(aggregation: Aggregation, value_field: usize) -> Self {
        Self {
            aggregation,
            value_field,
            partials: HashMap::new(),
            stale_after: Duration::from_secs(600),
            executed: 0,
        }
    }

    /// Partial answers of requests that never finish (their tree failed) are dropped this
    /// long after their first tuple. Default 10 minutes.
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.stale_after = after;
        self
    }

    fn forget_stale(&mut self) {
        let now = Instant::now();
        let stale_after = self.stale_after;
        self.partials
            .retain(|_, (first, _)| now.duration_since(*first) < stale_after);
    }

    fn fold(&mut self, input: &Tuple<'_>) -> Result<(), String> {
        let id = input
            .get_str(0)
            .map_err(|error| format!("the request id (field 0): {error}"))?;
        let value = input
            .get(self.value_field)
            .map_err(|error| format!("the value (field {}): {error}", self.value_field))?;
        let aggregation = self.aggregation;
        let (_, partial) = self
            .partials
            .entry(id.to_owned())
            .or_insert_with(|| (Instant::now(), Partial::new(aggregation)));
        partial.add(&value)
    }
}

impl Bolt for DrpcAggregateBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["result", "return-info"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.executed += 1;
        if self.executed.is_multiple_of(4096) {
            self.forget_stale();
        }
        if input.source_stream() == FINISH_STREAM {
            let (Ok(id), Ok(return_info)) = (input.get_str(0), input.get_str(1)) else {
                output.report_error("a DRPC finish tuple is not [id, return-info]");
                output.fail(input);
                return;
            };
            let partial = self
                .partials
                .remove(id)
                .map_or_else(|| Partial::new(self.aggregation), |(_, partial)| partial);
            let result = partial.finish(self.aggregation);
            output.emit_anchored(input, &[result.as_str().into(), return_info.into()]);
            output.ack(input);
            return;
        }
        match self.fold(input) {
            Ok(()) => output.ack(input),
            Err(reason) => {
                output.report_error(format!("DRPC aggregation: {reason}"));
                output.fail(input);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(aggregation: Aggregation, values: &[ValueRef<'_>]) -> String {
        let mut partial = Partial::new(aggregation);
        for value in values {
            partial.add(value).unwrap();
        }
        partial.finish(aggregation)
    }

    #[test]
    fn aggregations_fold_values() {
        let values = [ValueRef::Str("b"), ValueRef::Str("a"), ValueRef::Str("b")];
        assert_eq!(fold(Aggregation::Count, &values), "3");
        assert_eq!(fold(Aggregation::CountDistinct, &values), "2");
        assert_eq!(fold(Aggregation::Distinct, &values), "a,b");
        assert_eq!(
            fold(
                Aggregation::Sum,
                &[ValueRef::U64(2), ValueRef::I64(-5), ValueRef::Str("10")]
            ),
            "7"
        );
        assert_eq!(
            fold(Aggregation::Sum, &[ValueRef::U64(2), ValueRef::F64(0.5)]),
            "2.5"
        );
        assert_eq!(fold(Aggregation::CountDistinct, &[]), "0");
    }

    #[test]
    fn bad_values_and_names_are_named() {
        let mut partial = Partial::new(Aggregation::Sum);
        assert_eq!(
            partial.add(&ValueRef::Str("x")).unwrap_err(),
            "cannot sum \"x\": not a number"
        );
        assert_eq!(
            Aggregation::parse("avg").unwrap_err(),
            "unknown DRPC aggregation \"avg\" (expected count, count-distinct, sum or distinct)"
        );
        assert_eq!(
            Aggregation::parse("count-distinct").unwrap(),
            Aggregation::CountDistinct
        );
    }
}
