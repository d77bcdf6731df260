//! Where a request's answer goes: Storm's return-info, a JSON string that travels with the
//! request through the topology (`{"id":"17","host":"drpc1","port":3772}`).

use serde::{Deserialize, Serialize};
use squall_core::ValueRef;

/// The server holding a request, and the request's id there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnInfo {
    /// The server's request id, decimal (a string, as Storm's).
    pub id: String,
    /// The server's host, as the spout reached it.
    pub host: String,
    /// The server's port.
    pub port: u16,
}

impl ReturnInfo {
    /// The return-info of request `request` on the server at `server` (`host:port`).
    ///
    /// # Errors
    /// When `server` is not `host:port`.
    pub fn new(request: u64, server: &str) -> Result<Self, String> {
        let (host, port) = split_server(server)?;
        Ok(Self {
            id: request.to_string(),
            host: host.to_owned(),
            port,
        })
    }

    /// The JSON text carried in tuples.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("return-info serializes")
    }

    /// Parses the JSON text of a tuple field.
    ///
    /// # Errors
    /// A description naming the text when it is not a return-info.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text)
            .map_err(|error| format!("{text:?} is not a DRPC return-info: {error}"))
    }

    /// The request id as the server numbers it.
    ///
    /// # Errors
    /// When it is not a decimal number.
    pub fn request(&self) -> Result<u64, String> {
        self.id
            .parse()
            .map_err(|_| format!("return-info id {:?} is not a request number", self.id))
    }

    /// `host:port` of the server.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `host` and `port` of `host:port` (IPv6 hosts in brackets).
///
/// # Errors
/// A description naming the address when it has no valid port.
pub fn split_server(server: &str) -> Result<(&str, u16), String> {
    let (host, port) = server
        .rsplit_once(':')
        .ok_or_else(|| format!("DRPC server address {server:?} is not host:port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("DRPC server address {server:?} has no valid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("DRPC server address {server:?} has no host"));
    }
    Ok((host, port))
}

/// A tuple field as the text of an answer: strings as they are, numbers and booleans in
/// decimal, anything else in its debug form.
pub fn value_text(value: &ValueRef<'_>) -> String {
    match value {
        ValueRef::Str(text) => (*text).to_owned(),
        ValueRef::U64(n) => n.to_string(),
        ValueRef::I64(n) => n.to_string(),
        ValueRef::F64(n) => n.to_string(),
        ValueRef::Bool(b) => b.to_string(),
        ValueRef::Null => String::new(),
        ValueRef::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => format!("{:?}", other.to_owned_value()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn return_info_is_storms_json() {
        let info = ReturnInfo::new(17, "drpc1:3772").unwrap();
        assert_eq!(info.to_json(), r#"{"id":"17","host":"drpc1","port":3772}"#);
        assert_eq!(ReturnInfo::parse(&info.to_json()).unwrap(), info);
        assert_eq!(info.request().unwrap(), 17);
        assert_eq!(info.server(), "drpc1:3772");
        assert_eq!(
            ReturnInfo::new(1, "[::1]:3772").unwrap().server(),
            "[::1]:3772"
        );
    }

    #[test]
    fn bad_addresses_and_return_infos_are_named() {
        assert_eq!(
            ReturnInfo::new(1, "drpc1").unwrap_err(),
            "DRPC server address \"drpc1\" is not host:port"
        );
        assert_eq!(
            ReturnInfo::new(1, "drpc1:x").unwrap_err(),
            "DRPC server address \"drpc1:x\" has no valid port"
        );
        assert!(
            ReturnInfo::parse("{}")
                .unwrap_err()
                .starts_with("\"{}\" is not a DRPC return-info")
        );
        let info = ReturnInfo {
            id: "x".into(),
            host: "h".into(),
            port: 1,
        };
        assert_eq!(
            info.request().unwrap_err(),
            "return-info id \"x\" is not a request number"
        );
    }

    proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in ".{0,80}") {
            if let Ok(info) = ReturnInfo::parse(&text) {
                let _ = info.request();
                let _ = info.server();
            }
            let _ = split_server(&text);
        }
    }
}
