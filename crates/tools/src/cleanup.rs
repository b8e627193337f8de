//! What must not outlive an interrupted visorsim: the temporary files and
//! directories of a conversion, and the external programs still running.
//!
//! A temporary held by a [`tempfile`] value is removed when the value is
//! dropped, and a program past its limit is killed by the runner; but a
//! SIGINT or SIGTERM ends the process without unwinding, so neither
//! happens. This module keeps a process-wide register of both:
//!
//! - [`remove_on_signal`] registers a path (a file, or a directory removed
//!   with its contents) for as long as the returned [`Registered`] lives;
//! - the runner registers each child's process group while it runs
//!   ([`kill_on_signal`]; every program is started in a group of its own,
//!   see the crate documentation);
//! - [`install_signal_handler`] (called once by the CLI) starts a thread
//!   that, on SIGINT, SIGTERM or SIGHUP, kills every registered group,
//!   removes every registered path, and exits with `128 + signal`, as the
//!   default action's status reads in a shell.
//!
//! A SIGKILL cannot be caught: then the children still die with visorsim
//! (each is started with `PR_SET_PDEATHSIG`), but a temporary of that
//! moment stays behind (named `*.visorsim.tmp` or `visorsim-*`).
//!
//! Without the handler (a library user, a test) registering costs a lock
//! and nothing else happens on a signal.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Something registered for clean-up on a signal.
#[derive(Debug)]
enum Entry {
    /// A file or directory to remove.
    Path(PathBuf),
    /// The process group of a running child (its pid, which leads it).
    Group(u32),
}

#[derive(Default)]
struct Register {
    next: u64,
    entries: BTreeMap<u64, Entry>,
}

fn register() -> MutexGuard<'static, Register> {
    static REGISTER: OnceLock<Mutex<Register>> = OnceLock::new();
    // A panic while holding the lock leaves the map consistent.
    REGISTER.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn add(entry: Entry) -> Registered {
    let mut register = register();
    let id = register.next;
    register.next += 1;
    register.entries.insert(id, entry);
    Registered { id }
}

/// A registration: the entry is forgotten (not cleaned up) when this is
/// dropped, so drop it once the path is renamed into place or removed, or
/// the child has been reaped.
#[derive(Debug)]
#[must_use = "the registration ends when this is dropped"]
pub struct Registered {
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        register().entries.remove(&self.id);
    }
}

/// Registers `path` (a file, or a directory with everything in it) to be
/// removed if visorsim is interrupted while the returned value lives.
pub fn remove_on_signal(path: &Path) -> Registered {
    add(Entry::Path(path.to_owned()))
}

/// Registers the process group led by `pid` to be killed if visorsim is
/// interrupted while the returned value lives.
pub(crate) fn kill_on_signal(pid: u32) -> Registered {
    add(Entry::Group(pid))
}

/// The paths registered now (for tests and messages).
pub fn registered_paths() -> Vec<PathBuf> {
    register()
        .entries
        .values()
        .filter_map(|e| match e {
            Entry::Path(p) => Some(p.clone()),
            Entry::Group(_) => None,
        })
        .collect()
}

/// Kills every registered process group, then removes every registered
/// path (children first, so none writes to a path after its removal).
/// Entries stay registered; what could not be removed is skipped.
pub fn clean_up_now() {
    let register = register();
    for entry in register.entries.values() {
        if let Entry::Group(pid) = entry {
            crate::sys::kill_group(*pid);
        }
    }
    remove_paths(&register);
}

fn remove_paths(register: &Register) {
    for entry in register.entries.values() {
        if let Entry::Path(path) = entry {
            let _ = remove(path);
        }
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Installs the handler for SIGINT, SIGTERM and SIGHUP: a thread that
/// cleans up ([`clean_up_now`]) and exits with status `128 + signal`.
/// Installing it twice is harmless (the second call does nothing).
pub fn install_signal_handler() -> io::Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("visorsim-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            clean_up_now();
            std::process::exit(128 + signal);
        }
    })?;
    let _ = INSTALLED.set(());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_paths_are_removed_and_forgotten_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.visorsim.tmp");
        let sub = dir.path().join("visorsim-input.x");
        fs::write(&file, b"partial").unwrap();
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("disk.img"), b"raw").unwrap();
        let kept = dir.path().join("kept");
        fs::write(&kept, b"x").unwrap();

        let a = remove_on_signal(&file);
        let b = remove_on_signal(&sub);
        let gone = remove_on_signal(&kept);
        drop(gone);
        assert!(registered_paths().contains(&file) && registered_paths().contains(&sub));
        assert!(!registered_paths().contains(&kept));

        // The paths only: the runner's tests in this binary have children
        // registered that `clean_up_now` would kill.
        remove_paths(&register());
        assert!(!file.exists() && !sub.exists(), "registered paths removed");
        assert!(kept.exists(), "a dropped registration is not cleaned up");
        // Cleaning up again (nothing left) is harmless.
        remove_paths(&register());
        drop((a, b));
        assert!(!registered_paths().contains(&file));
    }
}
