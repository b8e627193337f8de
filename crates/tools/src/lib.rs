//! External programs for visorsim, through `std::process`: `qemu-img`
//! ([`QemuImg`]: export and import vmdk, qcow2 and vhdx),
//! `qemu-system-x86_64` ([`qemu_system`]: boot the chosen bank's kernel
//! and modules on a real x86 machine emulator), `fsck.fat`
//! ([`fsck_fat`]: is a FAT volume sound?) and `sgdisk` ([`sgdisk`]: is a
//! GPT sound?).
//!
//! visorsim reimplements none of these formats' checkers or converters; it
//! runs the Debian tools that support engineers trust, and this crate is the
//! only place that does. It depends on no visorsim crate.
//!
//! Every program is run the same way, by one runner:
//! - **Found first.** A name is looked up on `PATH` (a path is used as it
//!   is); a missing program is an error naming the Debian package that
//!   provides it ([`ToolError::Missing`], [`QemuError::ToolMissing`]).
//! - **Never interactive, never translated.** stdin is `/dev/null` and
//!   `LC_ALL=C`, so the output parsed here is the English one, the same on
//!   every host. (`fsck.fat` gets `LC_ALL=C.UTF-8`, still untranslated: in
//!   plain `C` it escapes every non-ASCII character of the file names it
//!   reports, `"boot.cfg\u{ffff}"` coming out as `"boot.cfg:F--"`.)
//! - **Time-limited.** Each call has a limit (generous by default:
//!   [`qemu_img::DEFAULT_TIMEOUT`], [`fsck_fat::DEFAULT_TIMEOUT`],
//!   [`sgdisk::DEFAULT_TIMEOUT`], [`qemu_system::DEFAULT_TIMEOUT`]; each
//!   tool has `with_timeout`). A program
//!   still running at the limit is killed, and the call returns
//!   [`ToolError::TimedOut`] (or [`QemuError::TimedOut`]) naming the
//!   command, instead of hanging the test or the CLI.
//! - **Contained.** Each program runs in a process group of its own, which
//!   is killed whole at the limit (a shell script's children too), and
//!   with `PR_SET_PDEATHSIG` it dies with visorsim, so no orphan keeps
//!   writing; on SIGINT or SIGTERM the CLI's handler ([`cleanup`]) kills
//!   the running groups and removes the registered temporaries.
//! - **Errors say what to do**: the command line (shell-quoted, so it can be
//!   rerun by hand) and the program's stderr.

pub mod cleanup;
pub mod fsck_fat;
pub mod qemu_img;
pub mod qemu_system;
pub mod sgdisk;
// The crate denies unsafe code; this module (pre-exec and kill) is the one exception.
#[allow(unsafe_code)]
mod sys;

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub use fsck_fat::{finding_class, FsckFat, FsckOutput, FsckReport};
pub use qemu_img::{CheckReport, ImageFormat, ImageInfo, QemuError, QemuImg, PACKAGE, PROGRAM_ENV, TIMEOUT_ENV};
pub use sgdisk::{Sgdisk, SgdiskReport};

/// Most of a program's stderr kept in an error message.
const STDERR_LIMIT: usize = 4096;

/// An error running `fsck.fat` or `sgdisk` (qemu-img has [`QemuError`]).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program could not be started because it does not exist.
    #[error(
        "{program} not found{}: install the Debian package {package} (apt-get install {package})",
        if .program.contains('/') { "" } else { " on PATH" }
    )]
    Missing {
        /// The program as it was looked up (`fsck.fat`, or the path given).
        program: String,
        /// The Debian package that provides it.
        package: String,
    },

    /// The program ran past its time limit and was killed.
    #[error("Command `{command}` timed out after {} and was killed", seconds(*.limit))]
    TimedOut {
        /// The command line, shell-quoted.
        command: String,
        /// The limit it ran past.
        limit: Duration,
    },

    /// The program ran and exited in a way that gives no answer.
    #[error("Command `{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line, shell-quoted.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr (trimmed, at most a few KiB).
        stderr: String,
    },

    /// Reading or writing a file (or starting the program) failed.
    #[error("I/O error on {}", .path.display())]
    Io {
        /// The file (or program) concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl ToolError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> ToolError {
        ToolError::Io { path: path.into(), source }
    }

    /// `Failed`, for `program args` that exited with `out.status`.
    pub(crate) fn failed(program: &Path, args: &[OsString], out: &Output) -> ToolError {
        ToolError::Failed { command: command_line(program, args), status: out.status, stderr: stderr_text(out) }
    }
}

/// `limit` for a message: `30 s`, or `0.25 s` below a second.
fn seconds(limit: Duration) -> String {
    if limit.subsec_nanos() == 0 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{} s", limit.as_secs_f64())
    }
}

/// The locale programs run in: untranslated messages.
pub(crate) const LOCALE: &str = "C";

/// One run of an external program: `program` (a name looked up on `PATH`,
/// or a path) with `args`, stdin null, `LC_ALL=locale` (normally
/// [`LOCALE`]), killed at `limit`.
pub(crate) struct Run<'a> {
    pub program: &'a Path,
    pub package: &'a str,
    pub args: &'a [OsString],
    pub locale: &'a str,
    pub limit: Duration,
}

impl Run<'_> {
    /// Runs the program to completion and captures its output, whatever
    /// its exit status. Fails only when it cannot be started (missing:
    /// [`ToolError::Missing`]) or runs past the limit (it is then killed:
    /// [`ToolError::TimedOut`]).
    pub fn output(&self) -> Result<Output, ToolError> {
        let missing =
            || ToolError::Missing { program: self.program.display().to_string(), package: self.package.to_owned() };
        let resolved = resolve(self.program).ok_or_else(missing)?;
        let mut command = Command::new(&resolved);
        sys::contain(&mut command);
        let child = command
            .args(self.args)
            .env("LC_ALL", self.locale)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => missing(),
                _ => ToolError::io(self.program, e),
            })?;
        let _group = cleanup::kill_on_signal(child.id());
        wait_with_limit(child, self.limit)
            .map_err(|e| ToolError::io(self.program, e))?
            .ok_or_else(|| ToolError::TimedOut { command: self.command_line(), limit: self.limit })
    }

    /// The command line, shell-quoted, for messages.
    pub fn command_line(&self) -> String {
        command_line(self.program, self.args)
    }
}

/// Where `program` is: itself when it contains a `/`, else the first
/// executable file of that name in a directory of `PATH`.
pub(crate) fn resolve(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().is_empty() {
        return None;
    }
    if program.as_os_str().to_string_lossy().contains('/') {
        // Used as it is: starting it says what is wrong with it.
        return Some(program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Waits for `child` at most `limit`, collecting stdout and stderr on
/// threads (so a chatty child never blocks on a full pipe). `None` when the
/// limit passed: the child's process group (it leads one: [`sys::contain`])
/// has then been killed and the child reaped. A grandchild that keeps the
/// pipes open cannot stretch the wait past the limit either.
fn wait_with_limit(mut child: Child, limit: Duration) -> io::Result<Option<Output>> {
    let deadline = Instant::now() + limit;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().map(|s| spawn_reader(s, 0, tx.clone()));
    let stderr = child.stderr.take().map(|s| spawn_reader(s, 1, tx));
    let pipes = usize::from(stdout.is_some()) + usize::from(stderr.is_some());

    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let now = Instant::now();
        if now >= deadline {
            // It may have exited just now; kill fails then, wait reaps it.
            // Its group goes too: a script's own children, forks of the tool.
            sys::kill_group(child.id());
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    };

    let mut streams = [Vec::new(), Vec::new()];
    for _ in 0..pipes {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((index, bytes)) => streams[index] = bytes?,
            Err(_) => return Ok(None),
        }
    }
    let [stdout, stderr] = streams;
    Ok(Some(Output { status, stdout, stderr }))
}

type Chunk = (usize, io::Result<Vec<u8>>);

fn spawn_reader(mut stream: impl Read + Send + 'static, index: usize, tx: mpsc::Sender<Chunk>) {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let result = stream.read_to_end(&mut bytes).map(|_| bytes);
        let _ = tx.send((index, result));
    });
}

/// `program args`, each shell-quoted.
pub(crate) fn command_line(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A program's stderr for a message: trimmed, at most a few KiB.
pub(crate) fn stderr_text(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut stderr = stderr.trim().to_owned();
    if stderr.len() > STDERR_LIMIT {
        let mut cut = STDERR_LIMIT;
        while !stderr.is_char_boundary(cut) {
            cut -= 1;
        }
        stderr.truncate(cut);
        stderr.push_str(" [...]");
    }
    stderr
}

/// `arg` quoted for a POSIX shell, unquoted when that is safe.
pub(crate) fn shell_quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(program: &str, args: &[&str], limit: Duration) -> Result<Output, ToolError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        Run { program: Path::new(program), package: "coreutils", args: &args, locale: LOCALE, limit }.output()
    }

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        assert_eq!(shell_quote(OsStr::new("--output=json")), "--output=json");
        assert_eq!(shell_quote(OsStr::new("/tmp/a b.img")), "'/tmp/a b.img'");
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_quote(OsStr::new("")), "''");
        let args = [OsString::from("-n"), OsString::from("a b")];
        assert_eq!(command_line(Path::new("fsck.fat"), &args), "fsck.fat -n 'a b'");
    }

    #[test]
    fn output_and_status_are_captured_with_stdin_null_and_lc_all_c() {
        let out =
            run("sh", &["-c", "echo out; echo err >&2; echo $LC_ALL; cat; exit 3"], Duration::from_secs(30)).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nC\n", "stdin is empty");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    }

    #[test]
    fn a_large_output_does_not_block_the_child() {
        let out =
            run("sh", &["-c", "head -c 1000000 /dev/zero; head -c 300000 /dev/zero >&2"], Duration::from_secs(30))
                .unwrap();
        assert!(out.status.success());
        assert_eq!((out.stdout.len(), out.stderr.len()), (1_000_000, 300_000));
    }

    #[test]
    fn a_program_past_its_limit_is_killed_and_named() {
        let started = Instant::now();
        let err = run("sleep", &["30"], Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "killed at the limit: {:?}", started.elapsed());
        let ToolError::TimedOut { ref command, limit } = err else { panic!("{err:?}") };
        assert_eq!(command, "sleep 30");
        assert_eq!(limit, Duration::from_millis(200));
        assert_eq!(err.to_string(), "Command `sleep 30` timed out after 0.2 s and was killed");
        // A grandchild holding the pipes open does not stretch the wait.
        let started = Instant::now();
        let err = run("sh", &["-c", "sleep 5 & echo started"], Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ToolError::TimedOut { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[test]
    fn the_whole_process_group_is_killed_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let err = run("sh", &["-c", &script], Duration::from_millis(500)).unwrap_err();
        assert!(matches!(err, ToolError::TimedOut { .. }), "{err:?}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let proc_dir = Path::new("/proc").join(pid.trim());
        // The orphan is reaped by whoever adopts it; give that a moment.
        let gone = (0..200).any(|_| {
            let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
            let dead = state.is_empty() || state.split_whitespace().nth(2) == Some("Z");
            if !dead {
                thread::sleep(Duration::from_millis(10));
            }
            dead
        });
        assert!(gone, "the script's sleep {} survived its group's kill", pid.trim());
    }

    #[test]
    fn a_missing_program_names_the_package() {
        let err = run("visorsim-no-such-tool", &[], Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "visorsim-no-such-tool not found on PATH: install the Debian package coreutils (apt-get install coreutils)"
        );
        let err = run("/nonexistent/tool", &[], Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ToolError::Missing { .. }), "{err:?}");
        assert!(err.to_string().starts_with("/nonexistent/tool not found: install"), "{err}");
    }

    #[test]
    fn limits_are_printed_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
