//! `qemu-img` through the crate's runner: export a boot-disk image to vmdk,
//! qcow2 or vhdx, import one back to raw, and inspect or check an image.
//!
//! visorsim works on raw images; support engineers receive customer boot
//! devices as vmdk (or qcow2/vhdx) and hand results back the same way. This
//! module runs the `qemu-img` binary (Debian package `qemu-utils`) rather
//! than reimplementing the formats.
//!
//! Promises:
//! - **The input is never modified.** `convert` only reads its input, and
//!   refuses to write over it; `info` and `check` open the image read-only
//!   with force-share (`-U`), so they also work on an image in use.
//! - **`convert` is atomic.** qemu-img writes to a temporary file
//!   `.NAME.XXXXXX.visorsim.tmp` beside the output (a
//!   [`tempfile::NamedTempFile`]); it is synced and renamed over the output
//!   only once qemu-img has succeeded, and removed on any failure. The
//!   output is either the old file or the complete new one.
//! - **Raw output stays sparse** (qemu-img skips zero runs by default).
//! - **File names are file names.** A relative path is passed as `./path`,
//!   so qemu-img never takes `nbd:...` or `json:{...}` for a protocol, nor
//!   `-x` for an option.
//! - **Time-limited.** Every call is killed (its whole process group)
//!   after [`QemuImg::timeout`]: [`DEFAULT_TIMEOUT`], or the seconds in
//!   `VISORSIM_QEMU_IMG_TIMEOUT` ([`TIMEOUT_ENV`]) for [`QemuImg::new`], or
//!   [`QemuImg::with_timeout`] (the CLI's `--timeout`):
//!   [`QemuError::TimedOut`], naming the command (so the file) and the
//!   limit. A convert's temporary is then removed like on any failure, and
//!   registered with [`crate::cleanup`] so a SIGINT or SIGTERM removes it
//!   too.
//! - **Damaged input is refused before it is read.** [`QemuImg::verify`]
//!   runs `qemu-img check` first: a truncated qcow2 would otherwise convert
//!   "successfully", its missing clusters read as zeros, and a backing
//!   file that is the image itself would spin `convert` until its limit.
//! - **Errors say what to do.** A missing program is
//!   [`QemuError::ToolMissing`] naming the Debian package; a failed run is
//!   [`QemuError::Failed`] with the command line (quoted so it can be rerun)
//!   and qemu-img's stderr.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

use crate::{Run, ToolError};

/// Environment variable naming the `qemu-img` program to use instead of the
/// one on `PATH`.
pub const PROGRAM_ENV: &str = "VISORSIM_QEMU_IMG";

/// The Debian package that provides `qemu-img`.
pub const PACKAGE: &str = "qemu-utils";

/// How long one `qemu-img` call may run before it is killed: generous, as
/// converting a customer's boot device takes a while (conversion time
/// follows the data: an 8 GiB disk holding 150 MB takes about a second;
/// 300 s covers tens of GB on a slow disk).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Environment variable with the time limit of one `qemu-img` call, in
/// seconds (`2`, `0.5`), for [`QemuImg::new`]: every command that converts
/// an image honours it; `import` and `export` also take `--timeout`.
pub const TIMEOUT_ENV: &str = "VISORSIM_QEMU_IMG_TIMEOUT";

/// Parses a time limit given in seconds: a positive number, decimals
/// allowed (`300`, `2`, `0.5`), at most a day.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 =
        text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds (such as 300 or 0.5)"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("{text:?}: the time limit must be more than 0 and at most 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// An error of [`QemuImg`]: what went wrong running `qemu-img`, with the
/// command, the path or the output that explains it.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The program could not be started because it does not exist.
    #[error(
        "{tool} not found{}: install the Debian package {package} (apt-get install {package})",
        if .tool.contains('/') { "" } else { " on PATH" }
    )]
    ToolMissing {
        /// The program as it was looked up (`qemu-img`, or the path given).
        tool: String,
        /// The Debian package that provides it.
        package: String,
    },

    /// The program ran and exited unsuccessfully.
    #[error("Command `{tool} {args}` failed ({status}): {stderr}")]
    Failed {
        /// The program run.
        tool: String,
        /// Its arguments, shell-quoted, so the command can be rerun by hand.
        args: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr (trimmed, at most a few KiB).
        stderr: String,
    },

    /// The program ran past its time limit and was killed.
    #[error(
        "Command `{command}` timed out after {} and was killed (the limit: --timeout SECONDS or {TIMEOUT_ENV})",
        crate::seconds(*.limit)
    )]
    TimedOut {
        /// The command line, shell-quoted.
        command: String,
        /// The limit it ran past ([`QemuImg::timeout`]).
        limit: Duration,
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

    /// The program's output was not what we expected.
    #[error("Cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed (`qemu-img info output`, `image format`...).
        what: String,
        /// What was wrong with it.
        detail: String,
    },

    /// `qemu-img check` found the image's metadata damaged: reading it
    /// would give another disk than the one it held.
    #[error(
        "{} is a damaged {format} image: qemu-img check found {corruptions} corruption(s) and {check_errors} \
         check error(s) in its metadata{}; not reading it (a copy can be repaired with `qemu-img check -r all`)",
        .path.display(),
        truncation(*.file_size, *.truncated)
    )]
    Damaged {
        /// The image.
        path: PathBuf,
        /// Its format.
        format: ImageFormat,
        /// Metadata errors that lose or corrupt data.
        corruptions: u64,
        /// Parts of the check that could not run.
        check_errors: u64,
        /// The file's size in bytes.
        file_size: u64,
        /// Whether its metadata points past the end of the file (data
        /// ending past its size, or qemu-img's "exceeding the end of the
        /// file").
        truncated: bool,
    },

    /// The request was refused before running anything.
    #[error("Refusing to run qemu-img on {}: {reason}", .path.display())]
    Refused {
        /// The image concerned.
        path: PathBuf,
        /// Why (a raw image has nothing to check; the output is the input...).
        reason: String,
    },
}

/// The part of [`QemuError::Damaged`]'s message saying the file is cut
/// short.
fn truncation(file_size: u64, truncated: bool) -> String {
    if truncated {
        format!(" (it is {file_size} bytes, and its metadata points past its end: the file is truncated)")
    } else {
        String::new()
    }
}

impl QemuError {
    fn io(path: impl Into<PathBuf>, source: io::Error) -> QemuError {
        QemuError::Io { path: path.into(), source }
    }

    fn parse(what: impl Into<String>, detail: impl Into<String>) -> QemuError {
        QemuError::Parse { what: what.into(), detail: detail.into() }
    }

    fn not_checkable(path: impl Into<PathBuf>, format: ImageFormat) -> QemuError {
        QemuError::Refused {
            path: path.into(),
            reason: format!("{format} images have no metadata that qemu-img check can verify"),
        }
    }
}

/// A disk image format visorsim can export to and import from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// A plain sector-by-sector image (sparse on disk).
    Raw,
    /// QEMU copy-on-write v2.
    Qcow2,
    /// VMware virtual disk (qemu-img's default subformat, monolithicSparse).
    Vmdk,
    /// Hyper-V virtual disk (dynamic).
    Vhdx,
}

impl ImageFormat {
    /// Every format, in a stable order.
    pub const ALL: [ImageFormat; 4] = [ImageFormat::Raw, ImageFormat::Qcow2, ImageFormat::Vmdk, ImageFormat::Vhdx];

    /// visorsim's name for the format (what `FromStr` and `Display` use).
    pub const fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Vmdk => "vmdk",
            ImageFormat::Vhdx => "vhdx",
        }
    }

    /// The name qemu-img uses for `-f` and `-O`.
    pub const fn qemu_name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Vmdk => "vmdk",
            ImageFormat::Vhdx => "vhdx",
        }
    }

    /// The format with this qemu-img name (as `qemu-img info` reports it).
    pub fn from_qemu_name(name: &str) -> Option<ImageFormat> {
        ImageFormat::ALL.into_iter().find(|f| f.qemu_name() == name)
    }

    /// The format a file name's extension names, ignoring ASCII case:
    /// `.vmdk`, `.qcow2`, `.vhdx`, and `.img` or `.raw` for raw.
    pub fn from_extension(path: &Path) -> Option<ImageFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "img" | "raw" => Some(ImageFormat::Raw),
            other => ImageFormat::ALL.into_iter().find(|f| f.name() == other && *f != ImageFormat::Raw),
        }
    }

    /// The format `head` (the first bytes of a file, at least 512 of them
    /// when the file has them) shows by its magic, without running qemu-img:
    /// qcow2 (`QFI\xfb`), vmdk (`KDMV` sparse extent, or a text descriptor
    /// starting with `# Disk DescriptorFile`), vhdx (`vhdxfile`); anything
    /// else is raw, as qemu-img's own probe would call it.
    pub fn sniff(head: &[u8]) -> ImageFormat {
        if head.starts_with(b"QFI\xfb") {
            ImageFormat::Qcow2
        } else if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") {
            ImageFormat::Vmdk
        } else if head.starts_with(b"vhdxfile") {
            ImageFormat::Vhdx
        } else {
            ImageFormat::Raw
        }
    }

    /// Whether `qemu-img check` can verify images of this format (raw has
    /// no metadata to check).
    pub const fn is_checkable(self) -> bool {
        !matches!(self, ImageFormat::Raw)
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ImageFormat {
    type Err = QemuError;

    /// Parses `raw`, `qcow2`, `vmdk` or `vhdx`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<ImageFormat, QemuError> {
        ImageFormat::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            QemuError::parse("image format", format!("unknown format {s:?} (expected raw, qcow2, vmdk or vhdx)"))
        })
    }
}

/// What `qemu-img info` says about an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// qemu-img's name of the format it found (`raw`, `qcow2`, `vmdk`,
    /// `vhdx`, or another one qemu-img knows, such as `vpc`).
    pub format: String,
    /// Size of the disk the image holds, in bytes.
    pub virtual_size: u64,
    /// Bytes the image file occupies on the host, if qemu-img knows.
    pub actual_size: Option<u64>,
    /// Whether the image is marked dirty (not closed cleanly).
    pub dirty: bool,
}

impl ImageInfo {
    /// The format as an [`ImageFormat`], if it is one visorsim handles.
    pub fn image_format(&self) -> Option<ImageFormat> {
        ImageFormat::from_qemu_name(&self.format)
    }

    /// Parses the output of `qemu-img info --output=json`.
    pub fn from_json(json: &str) -> Result<ImageInfo, QemuError> {
        const WHAT: &str = "qemu-img info output";
        let value: Value = serde_json::from_str(json).map_err(|e| QemuError::parse(WHAT, e.to_string()))?;
        let format = value
            .get("format")
            .and_then(Value::as_str)
            .ok_or_else(|| QemuError::parse(WHAT, "no \"format\" string"))?
            .to_owned();
        let virtual_size = value
            .get("virtual-size")
            .and_then(Value::as_u64)
            .ok_or_else(|| QemuError::parse(WHAT, "no \"virtual-size\" number"))?;
        let actual_size = value.get("actual-size").and_then(Value::as_u64);
        let dirty = value.get("dirty-flag").and_then(Value::as_bool).unwrap_or(false);
        Ok(ImageInfo { format, virtual_size, actual_size, dirty })
    }
}

/// What `qemu-img check` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// qemu-img's name of the format checked.
    pub format: String,
    /// Metadata errors that can lose or corrupt data.
    pub corruptions: u64,
    /// Clusters allocated but not used (wasted space, harmless).
    pub leaks: u64,
    /// Errors that stopped parts of the check from running.
    pub check_errors: u64,
    /// The offset where the image's data ends (`image-end-offset`), when
    /// qemu-img reports it (qcow2): past the file's size, the file is
    /// truncated.
    pub image_end: Option<u64>,
    /// Whether qemu-img complained of a region "exceeding the end of the
    /// file" (on stderr): the file is truncated.
    pub past_end: bool,
}

impl CheckReport {
    /// No corruption, no leak, and the whole check ran.
    pub fn is_clean(&self) -> bool {
        self.corruptions == 0 && self.leaks == 0 && self.check_errors == 0
    }

    /// Parses the output of `qemu-img check --output=json`. A count that is
    /// absent is zero (qemu-img leaves out `corruptions` and `leaks` when
    /// there are none).
    pub fn from_json(json: &str) -> Result<CheckReport, QemuError> {
        const WHAT: &str = "qemu-img check output";
        let value: Value = serde_json::from_str(json).map_err(|e| QemuError::parse(WHAT, e.to_string()))?;
        if !value.is_object() {
            return Err(QemuError::parse(WHAT, "not a JSON object"));
        }
        let count = |key: &str| -> Result<u64, QemuError> {
            match value.get(key) {
                None => Ok(0),
                Some(v) => v.as_u64().ok_or_else(|| QemuError::parse(WHAT, format!("{key:?} is not a count: {v}"))),
            }
        };
        Ok(CheckReport {
            format: value.get("format").and_then(Value::as_str).unwrap_or_default().to_owned(),
            corruptions: count("corruptions")?,
            leaks: count("leaks")?,
            check_errors: count("check-errors")?,
            image_end: value.get("image-end-offset").and_then(Value::as_u64),
            past_end: false,
        })
    }
}

/// The `qemu-img` program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuImg {
    program: PathBuf,
    timeout: Duration,
    /// Why [`TIMEOUT_ENV`] could not be used: every call fails with it.
    setting_error: Option<String>,
}

impl Default for QemuImg {
    fn default() -> QemuImg {
        QemuImg::new()
    }
}

impl QemuImg {
    /// The program named by `VISORSIM_QEMU_IMG` if set, else `qemu-img`
    /// found on `PATH`, with the time limit in `VISORSIM_QEMU_IMG_TIMEOUT`
    /// if set, else [`DEFAULT_TIMEOUT`]. Does not fail: if there is no
    /// program, the first call returns [`QemuError::ToolMissing`]; if the
    /// limit is not a number of seconds, every call returns
    /// [`QemuError::Parse`] naming the variable.
    pub fn new() -> QemuImg {
        let qemu = match std::env::var_os(PROGRAM_ENV) {
            Some(program) if !program.is_empty() => QemuImg::with_program(program),
            _ => QemuImg::with_program(
                crate::resolve(Path::new("qemu-img")).unwrap_or_else(|| PathBuf::from("qemu-img")),
            ),
        };
        match std::env::var(TIMEOUT_ENV) {
            Ok(text) if !text.trim().is_empty() => match parse_seconds(&text) {
                Ok(limit) => qemu.with_timeout(limit),
                Err(why) => QemuImg { setting_error: Some(why), ..qemu },
            },
            Ok(_) => qemu,
            Err(std::env::VarError::NotPresent) => qemu,
            Err(std::env::VarError::NotUnicode(_)) => QemuImg { setting_error: Some("not UTF-8".to_owned()), ..qemu },
        }
    }

    /// A specific program (a path, or a name looked up on `PATH` when run).
    pub fn with_program(program: impl Into<PathBuf>) -> QemuImg {
        QemuImg { program: program.into(), timeout: DEFAULT_TIMEOUT, setting_error: None }
    }

    /// The same program with another time limit per call.
    pub fn with_timeout(self, timeout: Duration) -> QemuImg {
        QemuImg { timeout, setting_error: None, ..self }
    }

    /// The program that will be run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// How long one call may run before qemu-img is killed
    /// ([`DEFAULT_TIMEOUT`] unless set with [`QemuImg::with_timeout`]).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The version number, such as `10.0.2`, from `qemu-img --version`.
    pub fn version(&self) -> Result<String, QemuError> {
        let out = self.run_ok(&[OsString::from("--version")])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap_or_default();
        let mut words = first.split_whitespace();
        words
            .by_ref()
            .find(|w| *w == "version")
            .and_then(|_| words.next())
            .map(str::to_owned)
            .ok_or_else(|| QemuError::parse("qemu-img --version output", format!("no version in {first:?}")))
    }

    /// Converts `input` to `output` in `output_format`, atomically (see the
    /// module documentation). With `input_format` `None` qemu-img probes
    /// the input's format. `input` is never modified; converting an image
    /// onto itself is refused.
    pub fn convert(
        &self,
        input: &Path,
        input_format: Option<ImageFormat>,
        output: &Path,
        output_format: ImageFormat,
    ) -> Result<(), QemuError> {
        let input_meta = fs::metadata(input).map_err(|e| QemuError::io(input, e))?;
        if let Ok(output_meta) = fs::metadata(output) {
            if output_meta.dev() == input_meta.dev() && output_meta.ino() == input_meta.ino() {
                return Err(QemuError::Refused {
                    path: output.to_owned(),
                    reason: format!("the output is the input {}", input.display()),
                });
            }
        }
        let file_name = output.file_name().ok_or_else(|| QemuError::Refused {
            path: output.to_owned(),
            reason: "the output path has no file name".to_owned(),
        })?;
        let dir = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Removed on drop, so on every early return below.
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", file_name.to_string_lossy()))
            .suffix(".visorsim.tmp")
            // What a plain create gives (0666 less the umask), not 0600.
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| QemuError::io(output, e))?;
        // Removed by the CLI's signal handler too, while this lives.
        let _on_signal = crate::cleanup::remove_on_signal(temp.path());

        let mut args: Vec<OsString> = vec!["convert".into(), "-q".into()];
        if let Some(format) = input_format {
            args.extend(["-f".into(), format.qemu_name().into()]);
        }
        args.extend(["-O".into(), output_format.qemu_name().into()]);
        args.push(file_arg(input));
        args.push(file_arg(temp.path()));
        self.run_ok(&args)?;

        // qemu-img flushes on close; sync again so the rename never exposes
        // a file whose data is still only in the page cache.
        File::open(temp.path()).and_then(|f| f.sync_all()).map_err(|e| QemuError::io(temp.path(), e))?;
        temp.persist(output).map_err(|e| QemuError::io(output, e.error))?;
        // Best effort: make the rename itself durable.
        let _ = File::open(dir).and_then(|d| d.sync_all());
        Ok(())
    }

    /// `qemu-img info` of `image`, with format probing, read-only and
    /// force-share.
    pub fn info(&self, image: &Path) -> Result<ImageInfo, QemuError> {
        let args = ["info".into(), "--output=json".into(), "-U".into(), file_arg(image)];
        let out = self.run_ok(&args)?;
        ImageInfo::from_json(&String::from_utf8_lossy(&out.stdout))
    }

    /// Refuses an image whose metadata `qemu-img check` finds damaged
    /// ([`QemuError::Damaged`]: corruptions or check errors; leaks, space
    /// merely wasted, are fine) or that qemu-img cannot open with its
    /// backing chain (a missing extent of a vmdk descriptor, a backing file
    /// that loops: [`QemuError::Failed`] with qemu-img's words). Raw images have no metadata: `Ok` at once.
    /// Run it before reading an image that came from outside.
    pub fn verify(&self, image: &Path, format: ImageFormat) -> Result<(), QemuError> {
        if !format.is_checkable() {
            return Ok(());
        }
        let file_size = fs::metadata(image).map_err(|e| QemuError::io(image, e))?.len();
        // The backing chain first: qemu-img refuses a loop here at once
        // ("Backing file ... creates an infinite loop"), where check and
        // convert would spin until their limit.
        let chain = [
            "info".into(),
            "--backing-chain".into(),
            "--output=json".into(),
            "-U".into(),
            "-f".into(),
            format.qemu_name().into(),
            file_arg(image),
        ];
        self.run_ok(&chain)?;
        let report = self.check(image, format)?;
        if report.corruptions == 0 && report.check_errors == 0 {
            return Ok(());
        }
        Err(QemuError::Damaged {
            path: image.to_owned(),
            format,
            corruptions: report.corruptions,
            check_errors: report.check_errors,
            file_size,
            truncated: report.past_end || report.image_end.is_some_and(|end| end > file_size),
        })
    }

    /// `qemu-img check` of `image` as `format`, read-only and force-share.
    /// A report with corruptions or leaks is `Ok` (see
    /// [`CheckReport::is_clean`]); an error means the check could not run.
    /// Raw images have nothing to check and are refused.
    pub fn check(&self, image: &Path, format: ImageFormat) -> Result<CheckReport, QemuError> {
        if !format.is_checkable() {
            return Err(QemuError::not_checkable(image, format));
        }
        let args = [
            "check".into(),
            "--output=json".into(),
            "-U".into(),
            "-f".into(),
            format.qemu_name().into(),
            file_arg(image),
        ];
        let out = self.run(&args)?;
        // 0 clean, 1 check incomplete, 2 corruptions, 3 leaks: all but a
        // failure to open or parse the image still print a JSON report.
        if matches!(out.status.code(), Some(0..=3)) {
            if let Ok(mut report) = CheckReport::from_json(&String::from_utf8_lossy(&out.stdout)) {
                report.past_end = String::from_utf8_lossy(&out.stderr).contains("exceeding the end of the file");
                return Ok(report);
            }
        }
        Err(self.failed(&args, &out))
    }

    /// Runs the program with `args` through the crate's runner, capturing
    /// its output.
    fn run(&self, args: &[OsString]) -> Result<Output, QemuError> {
        if let Some(why) = &self.setting_error {
            return Err(QemuError::parse(format!("{TIMEOUT_ENV} (the time limit of qemu-img)"), why.clone()));
        }
        Run { program: &self.program, package: PACKAGE, args, locale: crate::LOCALE, limit: self.timeout }
            .output()
            .map_err(|e| match e {
                ToolError::Missing { program, package } => QemuError::ToolMissing { tool: program, package },
                ToolError::TimedOut { command, limit } => QemuError::TimedOut { command, limit },
                ToolError::Io { path, source } => QemuError::Io { path, source },
                // The runner reports how the program exited in its `Output`;
                // it never says `Failed` itself.
                ToolError::Failed { command, status, stderr } => {
                    QemuError::Failed { tool: command, args: String::new(), status, stderr }
                }
            })
    }

    /// Runs the program and requires a successful exit.
    fn run_ok(&self, args: &[OsString]) -> Result<Output, QemuError> {
        let out = self.run(args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failed(args, &out))
        }
    }

    fn failed(&self, args: &[OsString], out: &Output) -> QemuError {
        QemuError::Failed {
            tool: self.program.display().to_string(),
            args: args.iter().map(|a| crate::shell_quote(a)).collect::<Vec<_>>().join(" "),
            status: out.status,
            stderr: crate::stderr_text(out),
        }
    }
}

/// `path` as a qemu-img file-name argument: a relative path gets `./` so it
/// is never read as a protocol prefix (`nbd:`, `json:`) or an option (`-x`).
fn file_arg(path: &Path) -> OsString {
    if path.is_absolute() {
        path.as_os_str().to_owned()
    } else {
        Path::new(".").join(path).into_os_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_through_their_names() {
        for format in ImageFormat::ALL {
            assert_eq!(format.to_string().parse::<ImageFormat>().unwrap(), format);
            assert_eq!(ImageFormat::from_qemu_name(format.qemu_name()), Some(format));
        }
        assert_eq!(" VMDK ".parse::<ImageFormat>().unwrap(), ImageFormat::Vmdk);
        let err = "vdi".parse::<ImageFormat>().unwrap_err();
        assert!(matches!(err, QemuError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("vdi"), "{err}");
    }

    #[test]
    fn extensions_name_formats() {
        let of = |name: &str| ImageFormat::from_extension(Path::new(name));
        assert_eq!(of("a/disk.vmdk"), Some(ImageFormat::Vmdk));
        assert_eq!(of("disk.QCOW2"), Some(ImageFormat::Qcow2));
        assert_eq!(of("disk.vhdx"), Some(ImageFormat::Vhdx));
        assert_eq!(of("disk.img"), Some(ImageFormat::Raw));
        assert_eq!(of("disk.raw"), Some(ImageFormat::Raw));
        for none in ["disk", "disk.bin", ".vmdk", "disk.vmdk.gz"] {
            assert_eq!(of(none), None, "{none}");
        }
    }

    #[test]
    fn info_json_is_parsed() {
        let json = r#"{"virtual-size": 4194304, "filename": "a.qcow2", "format": "qcow2",
                       "actual-size": 331776, "dirty-flag": false, "children": []}"#;
        let info = ImageInfo::from_json(json).unwrap();
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.image_format(), Some(ImageFormat::Qcow2));
        assert_eq!(info.virtual_size, 4 << 20);
        assert_eq!(info.actual_size, Some(331776));
        assert!(!info.dirty);
        let info = ImageInfo::from_json(r#"{"virtual-size": 1, "format": "vpc"}"#).unwrap();
        assert_eq!(info.image_format(), None);
        assert_eq!(info.actual_size, None);
        for bad in ["", "[]", r#"{"format": "raw"}"#, r#"{"virtual-size": -1, "format": "raw"}"#] {
            assert!(matches!(ImageInfo::from_json(bad), Err(QemuError::Parse { .. })), "{bad}");
        }
    }

    #[test]
    fn check_json_is_parsed() {
        let clean = r#"{"image-end-offset": 393216, "check-errors": 0, "filename": "a", "format": "qcow2"}"#;
        let report = CheckReport::from_json(clean).unwrap();
        assert!(report.is_clean());
        assert_eq!(report.format, "qcow2");
        let bad = r#"{"corruptions": 2, "check-errors": 0, "leaks": 3, "format": "qcow2"}"#;
        let report = CheckReport::from_json(bad).unwrap();
        assert_eq!((report.corruptions, report.leaks, report.check_errors), (2, 3, 0));
        assert!(!report.is_clean());
        assert_eq!(report.image_end, None);
        let truncated = r#"{"image-end-offset": 2031616, "corruptions": 102, "check-errors": 0, "format": "qcow2"}"#;
        assert_eq!(CheckReport::from_json(truncated).unwrap().image_end, Some(2031616));
        assert!(CheckReport::from_json("").is_err());
        assert!(CheckReport::from_json(r#"{"leaks": "many"}"#).is_err());
    }

    #[test]
    fn file_names_are_never_protocols_or_options() {
        assert_eq!(file_arg(Path::new("/a/b.img")), OsString::from("/a/b.img"));
        assert_eq!(file_arg(Path::new("nbd:host:10809")), OsString::from("./nbd:host:10809"));
        assert_eq!(file_arg(Path::new("-f")), OsString::from("./-f"));
    }

    #[test]
    fn tool_missing_names_the_package() {
        let bare = QemuError::ToolMissing { tool: "qemu-img".into(), package: PACKAGE.into() };
        assert_eq!(
            bare.to_string(),
            "qemu-img not found on PATH: install the Debian package qemu-utils (apt-get install qemu-utils)"
        );
        let path = QemuError::ToolMissing { tool: "/opt/qemu-img".into(), package: PACKAGE.into() };
        assert!(path.to_string().starts_with("/opt/qemu-img not found: install"), "{path}");
    }

    #[test]
    fn time_limits_are_seconds() {
        assert_eq!(parse_seconds("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_seconds(" 0.5 "), Ok(Duration::from_millis(500)));
        for bad in ["", "0", "-1", "2s", "NaN", "inf", "86401"] {
            let err = parse_seconds(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn a_bad_time_limit_setting_fails_every_call_naming_the_variable() {
        let qemu = QemuImg { setting_error: Some("\"soon\" is not a number".into()), ..QemuImg::with_program("true") };
        let err = qemu.version().unwrap_err();
        assert!(matches!(err, QemuError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains(TIMEOUT_ENV) && err.to_string().contains("soon"), "{err}");
        // An explicit limit replaces the setting.
        let qemu = qemu.with_timeout(Duration::from_secs(5));
        assert_eq!((qemu.timeout(), qemu.setting_error.as_deref()), (Duration::from_secs(5), None));
    }

    #[test]
    fn a_timeout_names_the_command_the_limit_and_how_to_change_it() {
        let err = QemuError::TimedOut {
            command: "qemu-img convert -q -O raw ./self.qcow2 ./.disk.img.x.visorsim.tmp".into(),
            limit: Duration::from_secs(2),
        };
        let text = err.to_string();
        assert!(text.contains("self.qcow2") && text.contains("after 2 s"), "{text}");
        assert!(text.contains("--timeout") && text.contains(TIMEOUT_ENV), "{text}");
    }

    #[test]
    fn a_damaged_image_says_whether_it_is_truncated() {
        let damaged = |truncated| QemuError::Damaged {
            path: "cust.qcow2".into(),
            format: ImageFormat::Qcow2,
            corruptions: 102,
            check_errors: 0,
            file_size: 2_000_000,
            truncated,
        };
        let text = damaged(true).to_string();
        assert!(text.starts_with("cust.qcow2 is a damaged qcow2 image: qemu-img check found 102 corruption"), "{text}");
        assert!(
            text.contains("it is 2000000 bytes, and its metadata points past its end: the file is truncated"),
            "{text}"
        );
        assert!(!damaged(false).to_string().contains("truncated"));
    }
}
