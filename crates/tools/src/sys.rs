//! The crate's only unsafe code: how a child is tied to visorsim's life
//! (`PR_SET_PDEATHSIG`, set between fork and exec) and how its process
//! group is killed. std offers `Command::process_group` but neither of
//! these; each unsafe block carries its SAFETY note.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Starts `command`'s program in a process group of its own (so the whole
/// group, forks included, can be killed at its time limit) that is killed
/// with SIGKILL when the thread that started it dies, visorsim included.
pub(crate) fn contain(command: &mut Command) {
    let parent = std::process::id();
    command.process_group(0);
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: prctl, getppid and _exit are
    // plain system calls, and it allocates nothing (an OS error is a code,
    // not a box).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no
            // signal will ever come, so do not start the program at all.
            if libc::getppid() as u32 != parent {
                libc::_exit(127);
            }
            Ok(())
        });
    }
}

/// Sends SIGKILL to the process group led by `pid` (a child started by
/// [`contain`]). A group already gone is not an error.
pub(crate) fn kill_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else { return };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions; a negative pid names
    // a process group, and the group is one this process created.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}
