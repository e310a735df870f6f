//! Accounts from `/etc/passwd`: whose rootless engine this is, whose `--user` manager runs a
//! unit, and as whom a tool that drives that engine must run.

use std::path::PathBuf;

use crate::config::DockerHost;
use crate::docker::Engine;

/// One account of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home directory.
    pub home: PathBuf,
}

impl Account {
    /// The account of a login name or uid.
    pub fn lookup(user: &str) -> Result<Self, String> {
        let passwd = std::fs::read_to_string("/etc/passwd")
            .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
        find(&passwd, user).ok_or_else(|| format!("no user {user} in /etc/passwd"))
    }

    /// The account a rootless engine runs as (the owner of its socket); `None` for a rootful
    /// engine. A rootless engine on another host has no account here: an error.
    pub fn engine_owner(engine: &Engine) -> Result<Option<Self>, String> {
        if !engine.identity().rootless {
            return Ok(None);
        }
        match engine.endpoint() {
            DockerHost::Unix(path) => {
                let uid = std::fs::metadata(path)
                    .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Self::lookup(&uid.to_string()).map(Some)
            }
            DockerHost::Tcp(_) | DockerHost::Ssh(_) => Err(format!(
                "the rootless engine at {} runs on another host: its user cannot be reached \
                 from here",
                engine.endpoint()
            )),
        }
    }

    /// Runs `cmd` as this account, with its own home and runtime directory (the environment a
    /// login of that user has), unless this process already is that user. Root's own XDG
    /// directories are not passed on: the user's tools would read root's configuration.
    pub fn run_as(&self, cmd: &mut tokio::process::Command) {
        if rustix::process::geteuid().as_raw() == self.uid {
            return;
        }
        cmd.uid(self.uid)
            .gid(self.gid)
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("XDG_RUNTIME_DIR", format!("/run/user/{}", self.uid))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
    }
}

/// The line of `user` (a login name or a uid) in the text of `/etc/passwd`.
fn find(passwd: &str, user: &str) -> Option<Account> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let (name, uid, gid) = (f.first()?, f.get(2)?, f.get(3)?);
        if *name != user && *uid != user {
            return None;
        }
        Some(Account {
            name: (*name).to_owned(),
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            home: PathBuf::from(f.get(5).copied().unwrap_or_default()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_found_by_name_or_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      alice:x:1001:1002:Alice:/home/alice:/bin/sh\n";
        let alice = Account {
            name: "alice".into(),
            uid: 1001,
            gid: 1002,
            home: "/home/alice".into(),
        };
        assert_eq!(find(passwd, "alice"), Some(alice.clone()));
        assert_eq!(find(passwd, "1001"), Some(alice));
        assert_eq!(find(passwd, "1002"), None, "a gid is not a uid");
        assert_eq!(find(passwd, "bob"), None);
        assert_eq!(find("broken:x:notanumber:0::/:/bin/sh\n", "broken"), None);
    }
}
