//! Users and groups from `/etc/passwd` and `/etc/group` (no NSS, no libc):
//! enough for `cmd.*`'s `runas`/`group` and the `username`/`groupname` grains.

use std::path::{Path, PathBuf};

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: String,
}

fn passwd_entries(root: &Path) -> Vec<User> {
    let text = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            match f.as_slice() {
                [name, _, uid, gid, _, home, shell, ..] => Some(User {
                    name: (*name).to_owned(),
                    uid: uid.parse().ok()?,
                    gid: gid.parse().ok()?,
                    home: PathBuf::from(home),
                    shell: (*shell).to_owned(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// The user called `name`.
pub(crate) fn user_by_name(root: &Path, name: &str) -> Option<User> {
    passwd_entries(root).into_iter().find(|u| u.name == name)
}

/// The user with id `uid`.
pub(crate) fn user_by_uid(root: &Path, uid: u32) -> Option<User> {
    passwd_entries(root).into_iter().find(|u| u.uid == uid)
}

fn group_entries(root: &Path) -> Vec<(String, u32)> {
    let text = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            let _password = f.next()?;
            let gid = f.next()?.parse().ok()?;
            Some((name.to_owned(), gid))
        })
        .collect()
}

/// The id of the group called `name`.
pub(crate) fn gid_by_name(root: &Path, name: &str) -> Option<u32> {
    group_entries(root)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, gid)| gid)
}

/// The name of group `gid`.
pub(crate) fn group_name(root: &Path, gid: u32) -> Option<String> {
    group_entries(root)
        .into_iter()
        .find(|(_, g)| *g == gid)
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passwd_and_group() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nbad line\nbob:x:1000:100::/home/bob:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nusers:x:100:bob\n").unwrap();
        let bob = user_by_name(dir.path(), "bob").unwrap();
        assert_eq!((bob.uid, bob.gid), (1000, 100));
        assert_eq!(bob.home, PathBuf::from("/home/bob"));
        assert_eq!(user_by_uid(dir.path(), 0).unwrap().name, "root");
        assert_eq!(gid_by_name(dir.path(), "users"), Some(100));
        assert_eq!(group_name(dir.path(), 0).as_deref(), Some("root"));
        assert!(user_by_name(dir.path(), "nobody").is_none());
    }
}
