//! Private "hosts" on one machine: network namespaces joined by veth pairs to a bridge, each
//! with its own address, removed again when dropped. Needs root and `ip`.

use std::process::{Command, Stdio};

/// Runs `ip` with `args`; returns whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs `ip` with `args`, or says which command failed.
fn ip_checked(args: &[&str]) -> Result<(), NetnsError> {
    if ip(args) {
        Ok(())
    } else {
        Err(NetnsError(format!("`ip {}` failed", args.join(" "))))
    }
}

/// A namespace command that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up network namespaces: {0}")]
pub struct NetnsError(String);

/// Whether this process may create network namespaces (root with `ip` available).
pub fn available() -> bool {
    let name = format!("sqdrillprobe{}", std::process::id());
    let created = ip(&["netns", "add", &name]);
    if created {
        ip(&["netns", "delete", &name]);
    }
    created
}

/// Namespaces on one bridge: host `i` is namespace [`Hosts::namespace`]`(i)` with address
/// [`Hosts::address`]`(i)`; this namespace joins the bridge as [`Hosts::gateway`].
#[derive(Debug)]
pub struct Hosts {
    tag: String,
    count: usize,
    subnet: u8,
}

impl Hosts {
    /// Creates `count` hosts on a fresh bridge and gives this namespace the gateway address
    /// on it.
    ///
    /// # Errors
    /// When a command fails (not root, no bridge support); what was made is removed.
    pub fn create(count: usize) -> Result<Self, NetnsError> {
        let id = std::process::id() % 100_000;
        let hosts = Self {
            tag: format!("sqd{id}"),
            count,
            subnet: (id % 200 + 20) as u8,
        };
        hosts.build()?;
        Ok(hosts)
    }

    fn build(&self) -> Result<(), NetnsError> {
        let bridge = self.bridge();
        ip_checked(&["link", "add", "name", &bridge, "type", "bridge"])?;
        ip_checked(&["link", "set", &bridge, "up"])?;
        for host in 0..self.count {
            let namespace = self.namespace(host);
            let (outside, inside) = self.veth(host);
            let address = format!("{}/24", self.address(host));
            ip_checked(&["netns", "add", &namespace])?;
            ip_checked(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            ip_checked(&["link", "set", &inside, "netns", &namespace])?;
            ip_checked(&["link", "set", &outside, "master", &bridge])?;
            ip_checked(&["link", "set", &outside, "up"])?;
            ip_checked(&["-n", &namespace, "addr", "add", &address, "dev", &inside])?;
            ip_checked(&["-n", &namespace, "link", "set", &inside, "up"])?;
            ip_checked(&["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        let gateway = format!("{}/24", self.gateway());
        ip_checked(&["addr", "add", &gateway, "dev", &bridge])
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn veth(&self, host: usize) -> (String, String) {
        (
            format!("{}o{host}", self.tag),
            format!("{}i{host}", self.tag),
        )
    }

    /// The namespace of `host`.
    pub fn namespace(&self, host: usize) -> String {
        format!("{}ns{host}", self.tag)
    }

    /// The address of `host`.
    pub fn address(&self, host: usize) -> String {
        format!("10.214.{}.{}", self.subnet, host + 1)
    }

    /// This namespace's address on the bridge: servers listening on it (ZooKeeper, nimbus)
    /// are reachable from every host.
    pub fn gateway(&self) -> String {
        format!("10.214.{}.254", self.subnet)
    }

    /// The command prefix that runs a program on `host`.
    pub fn prefix(&self, host: usize) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.namespace(host),
        ]
    }

    /// Takes the link of `host` down (`false`: it drops off the network as a dead machine
    /// does) or up again (`true`).
    ///
    /// # Errors
    /// When `ip` fails.
    pub fn set_link(&self, host: usize, up: bool) -> Result<(), NetnsError> {
        let state = if up { "up" } else { "down" };
        ip_checked(&["link", "set", &self.veth(host).0, state])
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for host in 0..self.count {
            ip(&["netns", "delete", &self.namespace(host)]);
            ip(&["link", "delete", &self.veth(host).0]);
        }
        ip(&["link", "delete", &self.bridge()]);
    }
}
