//! Output stream declarations.

use crate::ids::DEFAULT_STREAM;

/// One declared output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDecl {
    /// The stream's name, unique within its component.
    pub name: String,
    /// Field names, in tuple order.
    pub fields: Vec<String>,
    /// Whether emitters pick the receiving task (`emit_direct`); such a stream accepts only
    /// direct subscriptions.
    pub direct: bool,
}

/// Where a component declares the streams it emits.
#[derive(Debug, Default, Clone)]
pub struct OutputDeclarer {
    pub(crate) streams: Vec<StreamDecl>,
}

impl OutputDeclarer {
    /// Declares the default stream with these fields.
    pub fn declare(&mut self, fields: &[&str]) -> &mut Self {
        self.declare_stream(DEFAULT_STREAM, fields)
    }

    /// Declares a named stream.
    pub fn declare_stream(&mut self, name: &str, fields: &[&str]) -> &mut Self {
        self.push(name, fields, false)
    }

    /// Declares a direct stream: emitters choose the receiving task.
    pub fn declare_direct_stream(&mut self, name: &str, fields: &[&str]) -> &mut Self {
        self.push(name, fields, true)
    }

    fn push(&mut self, name: &str, fields: &[&str], direct: bool) -> &mut Self {
        self.streams.push(StreamDecl {
            name: name.to_owned(),
            fields: fields.iter().map(|field| (*field).to_owned()).collect(),
            direct,
        });
        self
    }

    /// The streams declared so far.
    pub fn streams(&self) -> &[StreamDecl] {
        &self.streams
    }
}
