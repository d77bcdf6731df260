//! The identity a cluster's daemons and clients present to ZooKeeper, and the ACL that
//! keeps the cluster's znodes to that identity.
//!
//! ZooKeeper's `digest` scheme identifies a session by `user:password`; a znode created
//! with the `auth` ACL (ZooKeeper's `CREATOR_ALL_ACL`) grants every right to the identity
//! that created it and nothing to anyone else. The password is derived from the cluster
//! secret, so every holder of the secret — and nobody else — is the same identity, and no
//! other setting has to be kept in step across machines.

use std::fmt;

use zookeeper_client as zk;

use crate::secret::Secret;

/// The digest user name of every Squall cluster; clusters on one ensemble differ by their
/// secrets (hence passwords) and roots.
pub const ZOOKEEPER_USER: &str = "squall";

/// The HKDF `info` of the ZooKeeper password: a use of the secret of its own.
const PASSWORD_INFO: &[u8] = b"squall zookeeper digest password v1";

/// A `digest` identity: `user:password`. Its `Debug` output never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkIdentity {
    user: String,
    password: String,
}

impl ZkIdentity {
    /// The identity of the cluster whose secret is `secret`: user [`ZOOKEEPER_USER`],
    /// password the hex of `HKDF-SHA-256(secret, info = "squall zookeeper digest password v1")`.
    pub fn from_secret(secret: &Secret) -> Self {
        let key = secret.derive_key(PASSWORD_INFO);
        Self {
            user: ZOOKEEPER_USER.to_owned(),
            password: key.iter().map(|byte| format!("{byte:02x}")).collect(),
        }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// What the session sends with the `digest` scheme: `user:password`.
    pub(crate) fn credentials(&self) -> Vec<u8> {
        self.digest_credentials().into_bytes()
    }

    /// `user:password`, as `zkCli.sh`'s `addauth digest` takes it. Whoever has it has
    /// every right on the cluster's znodes.
    pub fn digest_credentials(&self) -> String {
        format!("{}:{}", self.user, self.password)
    }

    /// Whether `acl` keeps a znode to a `digest` identity of this user alone, with every
    /// right: what [`creator_only`] gives a node this identity creates.
    ///
    /// The password's hash is not compared: a node whose only entry names this user with
    /// another password cannot be changed by this identity anyway.
    pub(crate) fn is_private(&self, acl: &[zk::Acl]) -> bool {
        match acl {
            [entry] => {
                entry.scheme() == "digest"
                    && entry.permission() == zk::Permission::ALL
                    && entry
                        .id()
                        .strip_prefix(self.user.as_str())
                        .is_some_and(|rest| rest.starts_with(':'))
            }
            _ => false,
        }
    }
}

impl fmt::Debug for ZkIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZkIdentity(digest {}:<redacted>)", self.user)
    }
}

/// The ACL of every znode the cluster creates or tightens: all rights to the creating
/// session's identity, none to anyone else.
pub(crate) const fn creator_only() -> zk::Acls<'static> {
    zk::Acls::creator_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text, "test").unwrap()
    }

    #[test]
    fn the_identity_follows_the_secret_and_hides_the_password() {
        let identity = ZkIdentity::from_secret(&secret("0123456789abcdef0123"));
        assert_eq!(
            identity,
            ZkIdentity::from_secret(&secret("0123456789abcdef0123"))
        );
        assert_ne!(
            identity,
            ZkIdentity::from_secret(&secret("0123456789abcdef0124"))
        );
        assert_eq!(identity.user(), "squall");
        let credentials = String::from_utf8(identity.credentials()).unwrap();
        let password = credentials.strip_prefix("squall:").unwrap();
        assert_eq!(password.len(), 64);
        assert!(password.bytes().all(|byte| byte.is_ascii_hexdigit()));
        // The password is not the secret, nor the key of another use of it.
        assert!(!password.contains("0123456789abcdef"));
        let other_use = secret("0123456789abcdef0123").derive_key(b"squall something else");
        let other_hex: String = other_use.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_ne!(password, other_hex);
        let shown = format!("{identity:?}");
        assert_eq!(shown, "ZkIdentity(digest squall:<redacted>)");
        assert!(!shown.contains(password));
    }

    #[test]
    fn only_a_single_full_digest_entry_of_the_user_is_private() {
        let identity = ZkIdentity::from_secret(&secret("0123456789abcdef0123"));
        let ours = zk::Acl::new(
            zk::Permission::ALL,
            zk::AuthId::new("digest", "squall:x0Ajx3cXNmcvX8zbP4zeQ6v4Mbk="),
        );
        assert!(identity.is_private(std::slice::from_ref(&ours)));
        let refused = [
            vec![],
            vec![zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())],
            vec![
                ours.clone(),
                zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
            ],
            vec![zk::Acl::new(
                zk::Permission::READ,
                zk::AuthId::new("digest", "squall:x0Ajx3cXNmcvX8zbP4zeQ6v4Mbk="),
            )],
            vec![zk::Acl::new(
                zk::Permission::ALL,
                zk::AuthId::new("digest", "squaller:x0Ajx3cXNmcvX8zbP4zeQ6v4Mbk="),
            )],
            vec![zk::Acl::new(
                zk::Permission::ALL,
                zk::AuthId::new("ip", "127.0.0.1"),
            )],
        ];
        for acl in refused {
            assert!(!identity.is_private(&acl), "{acl:?}");
        }
    }
}
