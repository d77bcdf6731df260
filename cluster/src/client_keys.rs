//! Named client keys and their roles: who may do what through nimbus's API, in the spirit
//! of Storm's `nimbus.admins` and `topology.users`.
//!
//! The cluster secret is the admin key of every cluster. `nimbus.client_keys` may name a
//! TOML file listing more keys, each with a name, a [`Role`] and a file holding its secret
//! (owner-only, like the cluster secret's file):
//!
//! ```toml
//! [[key]]
//! name = "ops-view"
//! role = "viewer"
//! secret_file = "keys/ops-view"   # relative to this file's directory
//!
//! [[key]]
//! name = "ci"
//! role = "submitter"
//! secret_file = "/etc/squall/keys/ci"
//! ```
//!
//! A client using a named key sends its name with each request and proves the request with
//! that key's secret; nimbus answers with proofs made with the same key. Nimbus reads the
//! file again for each such request, so keys are added, removed and rotated without a
//! restart.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::protocol::Request;
use super::secret::Secret;

/// Longest key name, in bytes.
pub const MAX_KEY_NAME_LEN: usize = 64;

/// What a client key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only: `list` and `status`.
    Viewer,
    /// A viewer that also submits topologies, and kills, activates, deactivates and
    /// rebalances the topologies it submitted itself.
    Submitter,
    /// Everything, on every topology (the cluster secret's role).
    Admin,
}

impl Role {
    /// Its name as the keys file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Submitter => "submitter",
            Self::Admin => "admin",
        }
    }

    /// The least role a request needs. Managing a topology also needs its ownership below
    /// admin ([`Caller::may_manage`]); downloading artifacts is for daemons, which hold the
    /// cluster secret.
    pub fn least_for(request: &Request) -> Self {
        match request {
            Request::List | Request::Status { .. } => Self::Viewer,
            Request::Submit { .. }
            | Request::Kill { .. }
            | Request::Activate { .. }
            | Request::Deactivate { .. }
            | Request::Rebalance { .. } => Self::Submitter,
            Request::FetchArtifact { .. } => Self::Admin,
        }
    }

    /// `"submitter or admin"`: the roles at least as strong as this one.
    fn and_above(self) -> String {
        let names: Vec<&str> = [Self::Viewer, Self::Submitter, Self::Admin]
            .into_iter()
            .filter(|role| *role >= self)
            .map(Self::name)
            .collect();
        names.join(" or ")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who sent an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name; `None` for the cluster secret.
    pub key: Option<String>,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// The holder of the cluster secret.
    pub fn cluster_secret() -> Self {
        Self {
            key: None,
            role: Role::Admin,
        }
    }

    /// How refusals name the caller.
    fn describe(&self) -> String {
        match &self.key {
            Some(name) => format!("key '{name}'"),
            None => "the cluster secret".to_owned(),
        }
    }

    /// Whether the caller's role admits `request` at all.
    ///
    /// # Errors
    /// The refusal, naming the caller's role and the roles the request needs.
    pub fn authorize(&self, request: &Request) -> Result<(), String> {
        let needed = Role::least_for(request);
        if self.role >= needed {
            return Ok(());
        }
        Err(format!(
            "{} has role {}; {} needs {}",
            self.describe(),
            self.role,
            request.kind(),
            needed.and_above()
        ))
    }

    /// Whether the caller may `action` the topology `name` submitted by `submitted_by`
    /// (`None`: by the cluster secret, or before client keys existed).
    ///
    /// # Errors
    /// The refusal, naming the caller's role and what it lacks.
    pub fn may_manage(
        &self,
        action: &str,
        name: &str,
        submitted_by: Option<&str>,
    ) -> Result<(), String> {
        let owns = self.key.is_some() && self.key.as_deref() == submitted_by;
        if self.role == Role::Admin || (self.role == Role::Submitter && owns) {
            return Ok(());
        }
        Err(format!(
            "{} has role {}; {action} of topology {name:?} needs admin, or the submitter key \
             that submitted it",
            self.describe(),
            self.role,
        ))
    }
}

/// One key of the keys file.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// Its role.
    pub role: Role,
    /// Its secret.
    pub secret: Secret,
}

/// Why the keys file is unusable.
#[derive(Debug, thiserror::Error)]
#[error("the client keys file {path} is unusable: {problem}")]
pub struct ClientKeysError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

/// The keys file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    key: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    role: Role,
    secret_file: PathBuf,
}

/// The keys of a keys file, by name.
#[derive(Debug, Clone, Default)]
pub struct ClientKeys {
    keys: BTreeMap<String, ClientKey>,
}

impl ClientKeys {
    /// Reads the keys file at `path` and every secret file it names (relative ones from the
    /// keys file's directory).
    ///
    /// # Errors
    /// When a file cannot be read, the keys file is not valid, a name is invalid or taken
    /// twice, or a secret file is unusable (open to others, too short).
    pub fn read(path: &Path) -> Result<Self, ClientKeysError> {
        let unusable = |problem: String| ClientKeysError {
            path: path.to_owned(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|error| unusable(error.to_string()))?;
        let file: KeysFile = toml::from_str(&text).map_err(|error| unusable(error.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut keys = BTreeMap::new();
        for entry in file.key {
            check_key_name(&entry.name).map_err(|problem| unusable(problem.clone()))?;
            let secret = Secret::read_as(&base.join(&entry.secret_file), "client key")
                .map_err(|error| unusable(format!("key '{}': {error}", entry.name)))?;
            let key = ClientKey {
                role: entry.role,
                secret,
            };
            if keys.insert(entry.name.clone(), key).is_some() {
                return Err(unusable(format!("key '{}' is listed twice", entry.name)));
            }
        }
        Ok(Self { keys })
    }

    /// The key called `name`.
    pub fn get(&self, name: &str) -> Option<&ClientKey> {
        self.keys.get(name)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Checks a key name: 1 to [`MAX_KEY_NAME_LEN`] letters, digits, `_`, `-` or `.`.
///
/// # Errors
/// Why the name is not one.
pub fn check_key_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_KEY_NAME_LEN
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "key name {name:?} must be 1 to {MAX_KEY_NAME_LEN} letters, digits, '_', '-' or '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn kill() -> Request {
        Request::Kill {
            name: "wc".into(),
            wait_secs: None,
        }
    }

    fn every_request() -> Vec<Request> {
        vec![
            Request::List,
            Request::Status { name: "wc".into() },
            kill(),
            Request::Activate { name: "wc".into() },
            Request::Deactivate { name: "wc".into() },
            Request::Rebalance {
                name: "wc".into(),
                workers: None,
                parallelism: BTreeMap::new(),
                wait_secs: None,
            },
            Request::FetchArtifact { digest: "0".into() },
        ]
    }

    fn named(name: &str, role: Role) -> Caller {
        Caller {
            key: Some(name.to_owned()),
            role,
        }
    }

    #[test]
    fn the_role_table() {
        let admitted = |role: Role| -> Vec<&'static str> {
            every_request()
                .iter()
                .filter(|request| named("k", role).authorize(request).is_ok())
                .map(Request::kind)
                .collect()
        };
        assert_eq!(admitted(Role::Viewer), ["list", "status"]);
        assert_eq!(
            admitted(Role::Submitter),
            [
                "list",
                "status",
                "kill",
                "activate",
                "deactivate",
                "rebalance"
            ]
        );
        assert_eq!(admitted(Role::Admin).len(), every_request().len());
        assert!(Caller::cluster_secret().authorize(&kill()).is_ok());
        assert_eq!(
            named("ops-view", Role::Viewer)
                .authorize(&kill())
                .unwrap_err(),
            "key 'ops-view' has role viewer; kill needs submitter or admin"
        );
        assert_eq!(
            named("ci", Role::Submitter)
                .authorize(&Request::FetchArtifact { digest: "0".into() })
                .unwrap_err(),
            "key 'ci' has role submitter; fetch_artifact needs admin"
        );
    }

    #[test]
    fn submitters_manage_only_their_own_topologies() {
        let ci = named("ci", Role::Submitter);
        assert!(ci.may_manage("kill", "wc", Some("ci")).is_ok());
        assert_eq!(
            ci.may_manage("kill", "wc", Some("other")).unwrap_err(),
            "key 'ci' has role submitter; kill of topology \"wc\" needs admin, or the \
             submitter key that submitted it"
        );
        // Topologies submitted with the cluster secret, or before keys existed, have no
        // submitting key: only admins manage them.
        assert!(ci.may_manage("kill", "wc", None).is_err());
        assert!(
            Caller::cluster_secret()
                .may_manage("kill", "wc", None)
                .is_ok()
        );
        assert!(
            named("root", Role::Admin)
                .may_manage("rebalance", "wc", Some("ci"))
                .is_ok()
        );
        // A viewer that somehow owned a topology still manages nothing.
        assert!(
            named("ci", Role::Viewer)
                .may_manage("kill", "wc", Some("ci"))
                .is_err()
        );
    }

    fn private_file(path: &Path, contents: &str) {
        std::fs::write(path, contents).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn keys_files_are_read_with_their_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        private_file(&dir.path().join("keys/view"), "view-key-0123456789\n");
        let absolute = dir.path().join("ci");
        private_file(&absolute, "ci-key-0123456789abcdef");
        let path = dir.path().join("clients.toml");
        std::fs::write(
            &path,
            format!(
                "[[key]]\nname = \"ops-view\"\nrole = \"viewer\"\nsecret_file = \"keys/view\"\n\n\
                 [[key]]\nname = \"ci\"\nrole = \"submitter\"\nsecret_file = \"{}\"\n",
                absolute.display()
            ),
        )
        .unwrap();
        let keys = ClientKeys::read(&path).unwrap();
        assert_eq!(keys.len(), 2);
        let view = keys.get("ops-view").unwrap();
        assert_eq!(view.role, Role::Viewer);
        assert_eq!(view.secret.env_value(), "view-key-0123456789");
        assert_eq!(keys.get("ci").unwrap().role, Role::Submitter);
        assert!(keys.get("nobody").is_none());
        std::fs::write(&path, "").unwrap();
        assert!(ClientKeys::read(&path).unwrap().is_empty());
    }

    #[test]
    fn bad_keys_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.toml");
        private_file(&dir.path().join("k"), "0123456789abcdef0123");
        let problem = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let error = ClientKeys::read(&path).unwrap_err().to_string();
            let prefix = format!("the client keys file {} is unusable: ", path.display());
            assert!(error.starts_with(&prefix), "{error}");
            error[prefix.len()..].to_owned()
        };
        let entry = |name: &str, role: &str, file: &str| {
            format!("[[key]]\nname = \"{name}\"\nrole = \"{role}\"\nsecret_file = \"{file}\"\n")
        };
        let unknown_role = problem(&entry("a", "operator", "k"));
        assert!(
            unknown_role.contains("unknown variant `operator`")
                && unknown_role.contains("viewer")
                && unknown_role.contains("submitter")
                && unknown_role.contains("admin"),
            "{unknown_role}"
        );
        assert!(
            problem("[[key]]\nname = \"a\"\nrole = \"admin\"\n").contains("secret_file"),
            "a missing secret file is named"
        );
        assert_eq!(
            problem(&entry("a b", "viewer", "k")),
            "key name \"a b\" must be 1 to 64 letters, digits, '_', '-' or '.'"
        );
        assert_eq!(
            problem(&(entry("a", "viewer", "k") + &entry("a", "admin", "k"))),
            "key 'a' is listed twice"
        );
        let missing = problem(&entry("a", "viewer", "absent"));
        assert!(
            missing.starts_with("key 'a': cannot read") && missing.contains("absent"),
            "{missing}"
        );
        std::fs::set_permissions(dir.path().join("k"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let open = problem(&entry("a", "viewer", "k"));
        assert!(
            open.starts_with("key 'a': ") && open.contains("chmod 600"),
            "{open}"
        );
        std::fs::remove_file(&path).unwrap();
        let error = ClientKeys::read(&path).unwrap_err().to_string();
        assert!(error.contains("No such file"), "{error}");
    }
}
