//! The return bolt (Storm's `ReturnResults`): takes `[result, return-info]` and sends the
//! result to the DRPC server holding the request.

use std::collections::HashMap;
use std::time::Duration;

use squall_core::component::Bolt;
use squall_core::runtime::{BoltOutput, Tuple};

use crate::link::{Link, LinkError};
use crate::protocol::ToServer;
use crate::return_info::{ReturnInfo, split_server, value_text};
use crate::spout::DrpcServers;

/// Sends each result to its server; the input is acked once the result is sent and failed
/// when it cannot be (the request then fails at its server, or times out there).
///
/// Only the configured servers are written to: a return-info naming another address is
/// refused, so a tuple cannot make the topology connect anywhere.
#[derive(Debug)]
pub struct ReturnResultsBolt {
    servers: DrpcServers,
    links: HashMap<String, Link>,
}

impl ReturnResultsBolt {
    fn resolve_key(&mut self) -> Result<(), String> {
        self.servers.key = self.servers.key.resolve()?;
        Ok(())
    }

    /// Returns results to `servers`.
    pub fn new(servers: DrpcServers) -> Self {
        Self {
            servers,
            links: HashMap::new(),
        }
    }

    fn configured(&self, server: &str) -> Option<String> {
        let wanted = split_server(server).ok()?;
        self.servers
            .addresses
            .iter()
            .find(|address| split_server(address).ok() == Some(wanted))
            .cloned()
    }

    fn send(&mut self, server: &str, message: &ToServer) -> Result<(), LinkError> {
        // One retry on a fresh connection: the server may have restarted since the last send.
        for attempt in 0..2 {
            if !self.links.contains_key(server) {
                let link = Link::connect(server, &self.servers.key, Duration::from_secs(2))?;
                self.links.insert(server.to_owned(), link);
            }
            let link = self.links.get_mut(server).expect("just connected");
            match link.send(message) {
                Ok(()) => return Ok(()),
                Err(error) => {
                    self.links.remove(server);
                    if attempt == 1 {
                        return Err(error);
                    }
                }
            }
        }
        Ok(())
    }

    fn answer(&mut self, input: &Tuple<'_>) -> Result<(), String> {
        let result = input
            .get(0)
            .map(|value| value_text(&value))
            .map_err(|error| format!("the result field: {error}"))?;
        let info = input
            .get_str(1)
            .map_err(|error| format!("the return-info field: {error}"))?;
        let info = ReturnInfo::parse(info)?;
        let request = info.request()?;
        let server = self.configured(&info.server()).ok_or_else(|| {
            format!(
                "return-info names {}, which is not a configured DRPC server",
                info.server()
            )
        })?;
        self.send(&server, &ToServer::Result { request, result })
            .map_err(|error| error.to_string())
    }
}

impl Bolt for ReturnResultsBolt {
    fn prepare(
        &mut self,
        _context: &squall_core::context::TopologyContext,
    ) -> Result<(), squall_core::component::ComponentError> {
        Ok(self.resolve_key()?)
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        match self.answer(input) {
            Ok(()) => output.ack(input),
            Err(reason) => {
                tracing::warn!(%reason, "DRPC result not returned");
                output.report_error(format!("DRPC result not returned: {reason}"));
                output.fail(input);
            }
        }
    }
}
