//! A topology program with figures known in advance, for the tests of `/metrics` and the
//! REST API: the spout `numbers` emits the numbers `0..MESSAGES` once each, tracked; the
//! bolt `split` sends even numbers on stream `even` and odd ones on stream `odd`; the bolt
//! `check` takes both and panics on [`REFUSED`] with the message `check refuses 7`.

use std::process::ExitCode;
use std::sync::Arc;

use squall::{
    Bolt, BoltOutput, ComponentError, MessageId, OutputDeclarer, Spout, SpoutOutput, Topology,
    TopologyBuilder, TopologyConfig, Tuple, Value,
};

/// Numbers the spout emits.
const MESSAGES: u64 = 1000;
/// The number `check` panics on.
const REFUSED: u64 = 7;

struct Numbers {
    next: u64,
}

impl Spout for Numbers {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.next < MESSAGES {
            output.emit_with_id(&[Value::U64(self.next)], MessageId(self.next));
            self.next += 1;
        }
    }
}

struct Split;

impl Bolt for Split {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare_stream("even", &["n"]);
        declarer.declare_stream("odd", &["n"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let n = input.get_u64(0).expect("a number");
        let stream = if n.is_multiple_of(2) { "even" } else { "odd" };
        output.emit_on(stream, &[input.anchor()], &[Value::U64(n)]);
        output.ack(input);
    }
}

struct Check;

impl Bolt for Check {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let n = input.get_u64(0).expect("a number");
        assert!(n != REFUSED, "check refuses {n}");
        output.ack(input);
    }
}

fn build(_args: &[String]) -> Result<Arc<Topology>, ComponentError> {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("numbers", || Numbers { next: 0 }, 1);
    builder
        .set_bolt("split", || Split, 2)
        .shuffle_grouping("numbers");
    builder
        .set_bolt("check", || Check, 2)
        .grouping_on("split", "even", squall::Grouping::Shuffle)
        .grouping_on("split", "odd", squall::Grouping::Shuffle);
    Ok(builder.build("watched", TopologyConfig::default().with_workers(2))?)
}

fn main() -> ExitCode {
    squall::app::main(build)
}
