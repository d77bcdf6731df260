//! A PostgreSQL connection made when first needed, with the statements prepared on it,
//! shared by the write and lookup stores.

use std::collections::HashMap;

use postgres::{Client, NoTls, Statement};

use crate::postgres::{classify, prepared_config};
use crate::store::StoreError;

/// One store's connection to one table.
pub(crate) struct Session {
    config: postgres::Config,
    description: String,
    client: Option<Client>,
    /// Prepared statements by size (rows, keys), for the connection in `client`.
    statements: HashMap<usize, Statement>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Session")
            .field("store", &self.description)
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with `table` over `config` (checked); it connects when first used.
    pub(crate) fn new(config: postgres::Config, table: &str) -> Self {
        let (config, hosts) = prepared_config(config);
        Self {
            config,
            description: format!("PostgreSQL table {table} at {hosts}"),
            client: None,
            statements: HashMap::new(),
        }
    }

    /// The table and its server, for errors and logs.
    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// The connection, made first if there is none.
    pub(crate) fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.is_none() {
            let client = self
                .config
                .connect(NoTls)
                .map_err(|error| classify(&error, "connecting"))?;
            self.client = Some(client);
            self.statements.clear();
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// The statement of `size` (written by `text` when it is first needed), prepared once
    /// per connection; `doing` names it in errors.
    pub(crate) fn statement(
        &mut self,
        size: usize,
        text: impl FnOnce(usize) -> String,
        doing: &str,
    ) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(&size) {
            return Ok(statement.clone());
        }
        let statement = self
            .client()?
            .prepare(&text(size))
            .map_err(|error| classify(&error, doing))?;
        self.statements.insert(size, statement.clone());
        Ok(statement)
    }

    /// A new connection in place of the one that failed, or why none could be made.
    pub(crate) fn reconnect(&mut self) -> Result<&mut Client, postgres::Error> {
        self.disconnect();
        self.client = Some(self.config.connect(NoTls)?);
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Forgets the connection and its statements.
    pub(crate) fn disconnect(&mut self) {
        self.client = None;
        self.statements.clear();
    }
}
