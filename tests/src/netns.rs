//! Private "hosts" for tests: network namespaces joined by veth pairs to a bridge, each with
//! its own address, removed again when the guard is dropped. Needs root and `ip`.

use std::process::Command;

/// Runs `ip` with `args`; returns whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs `ip` with `args` for clean-up, where a device may already be gone with its
/// namespace.
fn ip_quietly(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status();
}

/// Whether this process may create network namespaces (root with `ip` available).
pub fn available() -> bool {
    let name = format!("sqprobe{}", std::process::id());
    let created = ip(&["netns", "add", &name]);
    if created {
        ip(&["netns", "delete", &name]);
    }
    created
}

/// A set of namespaces on one bridge: host `i` is namespace [`Hosts::namespace`]`(i)` with
/// address [`Hosts::address`]`(i)`.
#[derive(Debug)]
pub struct Hosts {
    tag: String,
    count: usize,
    subnet: u8,
}

impl Hosts {
    /// Creates `count` hosts on a fresh bridge.
    ///
    /// # Panics
    /// When a command fails (not root, no bridge support).
    pub fn create(count: usize) -> Self {
        let id = std::process::id() % 100_000;
        let tag = format!("sq{id}");
        let subnet = (id % 200 + 20) as u8;
        let hosts = Self { tag, count, subnet };
        let bridge = hosts.bridge();
        assert!(
            ip(&["link", "add", "name", &bridge, "type", "bridge"]),
            "creating bridge {bridge}"
        );
        assert!(ip(&["link", "set", &bridge, "up"]));
        for host in 0..count {
            let namespace = hosts.namespace(host);
            let (outside, inside) = hosts.veth(host);
            assert!(
                ip(&["netns", "add", &namespace]),
                "creating namespace {namespace}"
            );
            assert!(ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside
            ]));
            assert!(ip(&["link", "set", &inside, "netns", &namespace]));
            assert!(ip(&["link", "set", &outside, "master", &bridge]));
            assert!(ip(&["link", "set", &outside, "up"]));
            let address = format!("{}/24", hosts.address(host));
            assert!(ip(&[
                "-n", &namespace, "addr", "add", &address, "dev", &inside
            ]));
            assert!(ip(&["-n", &namespace, "link", "set", &inside, "up"]));
            assert!(ip(&["-n", &namespace, "link", "set", "lo", "up"]));
        }
        hosts
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
        format!("10.213.{}.{}", self.subnet, host + 1)
    }

    /// The address this (the root) namespace has on the hosts' bridge once
    /// [`join_bridge`](Self::join_bridge) was called: servers listening on it (ZooKeeper,
    /// nimbus) are reachable from every host.
    pub fn gateway(&self) -> String {
        format!("10.213.{}.254", self.subnet)
    }

    /// Gives this namespace the [`gateway`](Self::gateway) address on the bridge.
    ///
    /// # Panics
    /// When the address cannot be added.
    pub fn join_bridge(&self) {
        let address = format!("{}/24", self.gateway());
        assert!(
            ip(&["addr", "add", &address, "dev", &self.bridge()]),
            "adding {address} to the bridge"
        );
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

    /// Takes the link of `host` down (`false`) or up again (`true`).
    pub fn set_link(&self, host: usize, up: bool) {
        let (outside, _) = self.veth(host);
        assert!(ip(&[
            "link",
            "set",
            &outside,
            if up { "up" } else { "down" }
        ]));
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for host in 0..self.count {
            ip_quietly(&["netns", "delete", &self.namespace(host)]);
            ip_quietly(&["link", "delete", &self.veth(host).0]);
        }
        ip_quietly(&["link", "delete", &self.bridge()]);
    }
}
