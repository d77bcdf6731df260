//! Minimal components for the engine's own unit tests.

use crate::{Bolt, BoltOutput, OutputDeclarer, Spout, SpoutOutput, Tuple};

/// A spout that declares a default stream and never emits.
#[derive(Debug, Default)]
pub(crate) struct NullSpout {
    fields: Vec<&'static str>,
}

impl NullSpout {
    pub(crate) fn declaring(fields: &[&'static str]) -> Self {
        Self {
            fields: fields.to_vec(),
        }
    }
}

impl Spout for NullSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&self.fields);
    }

    fn next_tuple(&mut self, _output: &mut SpoutOutput<'_>) {}
}

/// A bolt that drops everything, optionally declaring a default stream.
#[derive(Debug, Default)]
pub(crate) struct NullBolt;

/// A [`NullBolt`] that declares a default stream.
#[derive(Debug)]
pub(crate) struct DeclaringNullBolt(Vec<&'static str>);

impl NullBolt {
    pub(crate) fn declaring(fields: &[&'static str]) -> DeclaringNullBolt {
        DeclaringNullBolt(fields.to_vec())
    }
}

impl Bolt for NullBolt {
    fn execute(&mut self, _input: &Tuple<'_>, _output: &mut BoltOutput<'_>) {}
}

impl Bolt for DeclaringNullBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&self.0);
    }

    fn execute(&mut self, _input: &Tuple<'_>, _output: &mut BoltOutput<'_>) {}
}
