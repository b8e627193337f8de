//! `fsck.fat -n` (Debian package `dosfstools`): is a FAT volume sound?
//!
//! The volume is an image file ([`FsckFat::check_file`]), bytes in memory
//! ([`FsckFat::check_bytes`]), or the stored extents of a mostly empty
//! volume ([`FsckFat::check_extents`]), written to a sparse temporary file
//! that is removed afterwards. `-n` checks without changing anything, so
//! the image is never modified.
//!
//! The answer is an [`FsckReport`]: clean (fsck.fat exited 0) or damaged,
//! with fsck.fat's complaints as it printed them. An error
//! ([`ToolError`]) means there is no answer: fsck.fat is not installed, ran
//! past the time limit, or the image could not be read or written.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Run, ToolError};

/// The Debian package that provides `fsck.fat`.
pub const PACKAGE: &str = "dosfstools";

/// The locale fsck.fat runs in: untranslated, and file names printed as
/// UTF-8 (plain `C` would escape each non-ASCII character, so a long name's
/// `U+FFFF` padding would read `:F--`).
const LOCALE: &str = "C.UTF-8";

/// How long one `fsck.fat` run may take before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `fsck.fat` program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsckFat {
    program: PathBuf,
    timeout: Duration,
    temp_dir: Option<PathBuf>,
}

impl Default for FsckFat {
    fn default() -> FsckFat {
        FsckFat::new()
    }
}

impl FsckFat {
    /// `fsck.fat`, looked up on `PATH` when run. Does not fail: if there is
    /// none, each check returns [`ToolError::Missing`].
    pub fn new() -> FsckFat {
        FsckFat::with_program("fsck.fat")
    }

    /// A specific program (a path, or a name looked up on `PATH` when run).
    pub fn with_program(program: impl Into<PathBuf>) -> FsckFat {
        FsckFat { program: program.into(), timeout: DEFAULT_TIMEOUT, temp_dir: None }
    }

    /// The same program with another time limit per check.
    pub fn with_timeout(self, timeout: Duration) -> FsckFat {
        FsckFat { timeout, ..self }
    }

    /// The same program, writing the temporary volumes of
    /// [`FsckFat::check_bytes`] and [`FsckFat::check_extents`] in `dir`
    /// instead of [`std::env::temp_dir`].
    pub fn with_temp_dir(self, dir: impl Into<PathBuf>) -> FsckFat {
        FsckFat { temp_dir: Some(dir.into()), ..self }
    }

    /// The program that will be run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// How long one check may run ([`DEFAULT_TIMEOUT`] unless set).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `fsck.fat -n image`: `image` holds one FAT volume (not a whole
    /// partitioned disk). A missing image is [`ToolError::Io`].
    pub fn check_file(&self, image: &Path) -> Result<FsckReport, ToolError> {
        std::fs::metadata(image).map_err(|e| ToolError::io(image, e))?;
        // A relative path gets `./`, so a name starting with `-` is never an option.
        let image = if image.is_absolute() { image.to_owned() } else { Path::new(".").join(image) };
        let args = [OsString::from("-n"), image.into_os_string()];
        let out = Run { program: &self.program, package: PACKAGE, args: &args, locale: LOCALE, limit: self.timeout }
            .output()?;
        if out.status.success() {
            return Ok(FsckReport::Clean);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(FsckReport::Damaged(FsckDamage {
            exit_code: out.status.code(),
            // The first line is fsck.fat's version.
            lines: text.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect(),
            stderr: crate::stderr_text(&out),
        }))
    }

    /// `fsck.fat -n image`, everything it printed kept, clean or not (a
    /// clean volume can still get warnings, such as a broken long name that
    /// fsck.fat does not correct): for comparing with another checker.
    pub fn output_of_file(&self, image: &Path) -> Result<FsckOutput, ToolError> {
        std::fs::metadata(image).map_err(|e| ToolError::io(image, e))?;
        let image = if image.is_absolute() { image.to_owned() } else { Path::new(".").join(image) };
        let args = [OsString::from("-n"), image.into_os_string()];
        let out = Run { program: &self.program, package: PACKAGE, args: &args, locale: LOCALE, limit: self.timeout }
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(FsckOutput {
            exit_code: out.status.code(),
            lines: text.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect(),
            stderr: crate::stderr_text(&out),
        })
    }

    /// [`FsckFat::output_of_file`] of a volume held in memory, written to a
    /// temporary file first.
    pub fn output_of_bytes(&self, volume: &[u8]) -> Result<FsckOutput, ToolError> {
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let temp = tempfile::Builder::new()
            .prefix("visorsim-fsck-")
            .suffix(".img")
            .tempfile_in(&dir)
            .map_err(|e| ToolError::io(dir, e))?;
        let path = temp.path().to_owned();
        let _on_signal = crate::cleanup::remove_on_signal(&path);
        temp.as_file().write_all_at(volume, 0).map_err(|e| ToolError::io(&path, e))?;
        self.output_of_file(&path)
    }

    /// `fsck.fat -n` of a volume held in memory, written to a temporary
    /// file first.
    pub fn check_bytes(&self, volume: &[u8]) -> Result<FsckReport, ToolError> {
        self.check_extents(volume.len() as u64, [(0, volume)])
    }

    /// `fsck.fat -n` of a volume of `len` bytes that is zero except for
    /// `extents` (`(offset, bytes)`, within `len`), written to a sparse
    /// temporary file first: a 250 MB bank holding 2 MB of data costs 2 MB.
    pub fn check_extents<'a>(
        &self,
        len: u64,
        extents: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<FsckReport, ToolError> {
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let temp = tempfile::Builder::new()
            .prefix("visorsim-fsck-")
            .suffix(".img")
            .tempfile_in(&dir)
            .map_err(|e| ToolError::io(dir, e))?;
        let path = temp.path().to_owned();
        let _on_signal = crate::cleanup::remove_on_signal(&path);
        let io = |e| ToolError::io(&path, e);
        temp.as_file().set_len(len).map_err(io)?;
        for (offset, bytes) in extents {
            let end = offset.checked_add(bytes.len() as u64);
            if end.is_none_or(|end| end > len) {
                let detail = format!("extent of {} bytes at {offset} is past the end ({len} bytes)", bytes.len());
                return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, detail)));
            }
            temp.as_file().write_all_at(bytes, offset).map_err(io)?;
        }
        self.check_file(&path)
        // `temp` is removed here.
    }
}

/// What `fsck.fat -n` said about a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsckReport {
    /// fsck.fat exited 0: nothing to complain about.
    Clean,
    /// fsck.fat exited otherwise (1 when it found damage).
    Damaged(FsckDamage),
}

impl FsckReport {
    /// Whether fsck.fat found nothing wrong.
    pub fn is_clean(&self) -> bool {
        matches!(self, FsckReport::Clean)
    }

    /// The damage, if any.
    pub fn damage(&self) -> Option<&FsckDamage> {
        match self {
            FsckReport::Clean => None,
            FsckReport::Damaged(damage) => Some(damage),
        }
    }
}

/// Everything one `fsck.fat -n` run printed ([`FsckFat::output_of_file`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsckOutput {
    /// fsck.fat's exit code: 0 when it would change nothing, 1 when it
    /// would repair something or gave up (`None` if a signal ended it).
    pub exit_code: Option<i32>,
    /// stdout after its version line, trimmed, blank lines left out.
    pub lines: Vec<String>,
    /// stderr (why it gave up, if it did).
    pub stderr: String,
}

impl FsckOutput {
    /// Whether fsck.fat exited 0 (warnings may still have been printed).
    pub fn is_clean(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The finding classes of everything printed ([`finding_class`] of each
    /// line of stdout and stderr), by their snake_case names.
    pub fn classes(&self) -> std::collections::BTreeSet<&'static str> {
        self.lines.iter().map(String::as_str).chain(self.stderr.lines()).filter_map(finding_class).collect()
    }
}

/// The finding class (snake_case, as `visorsim_media::fat::FindingClass`
/// names them) of one line fsck.fat 4.2 prints, `None` for lines that are
/// not a finding (file paths, what it does about one, its summary).
///
/// ```text
///   boot_sector        "Logical sector size ...", "Cluster size is zero.", "... FATs are supported ...",
///                      "Failed to read sector ...", "FAT size is zero.", "... no space for any data clusters",
///                      "Too many clusters ...", "... only space for ... FAT entries.", "Root directory ...",
///                      "Got N bytes instead of M at ..."
///   fat_media          "Both FATs appear to be corrupt ...", "First FAT appears to be corrupt ..."
///   fat_copies_differ  "FATs differ ..."
///   dirty_bit          "Dirty bit is set. ..."
///   chain_out_of_range "Cluster N out of range ...", "Start cluster beyond limit ...", "Bad start cluster 1. ..."
///   chain_loop         "Circular cluster chain. ..."
///   chain_ends_early   "File size is N bytes, cluster chain length is M bytes."
///   size_mismatch      "File size is N bytes, cluster chain length is > M bytes."
///   cross_link         "share clusters."
///   free_in_chain      "Contains a free cluster (N). Assuming EOF."
///   bad_cluster        "Contains a bad cluster ...", "Internal error: next_cluster on bad cluster"
///   lost_clusters      "Reclaimed N unused clusters ...", with `-a` also "Broke cycle at cluster N in free chain."
///   bad_dir_entry      "Bad short file name ...", "Directory has non-zero size. ...", "Start does point to ...",
///                      "Has a large number of bad entries. ..."
///   duplicate_entry    "Duplicate directory entry."
///   bad_long_name      the LFN messages: "... long file name ...", "... long filename ...", "... VFAT long filename slot ..."
///   bad_dot_entries    "Expected a valid '.' entry ...", "Invalid '..' entry ...", "Is a dot with no 8.3 name flag ..."
///   volume_label       the label messages ("Label ...", "Volume label ...", "There is no label ...")
/// ```
pub fn finding_class(line: &str) -> Option<&'static str> {
    let line = line.trim();
    if line.starts_with('/') {
        return None;
    }
    let has = |needle: &str| line.contains(needle);
    let class = if has("long file name") || has("long filename") || has("Long filename") || has("LFN") {
        "bad_long_name"
    } else if has("Logical sector size")
        || has("Cluster size is zero")
        || has("FATs are supported")
        || has("Failed to read sector")
        || has("FAT size is zero")
        || has("Filesystem is too large")
        || has("no space for any data clusters")
        || has("Too many clusters")
        || has("FAT has space for too many entries")
        || has("but only space for")
        || has("Root directory has zero size")
        || has("doesn't span an integral number")
        || (has("Got ") && has("bytes instead of"))
    {
        "boot_sector"
    } else if has("FATs appear to be corrupt") || has("First FAT appears to be corrupt") {
        "fat_media"
    } else if has("FATs differ") {
        "fat_copies_differ"
    } else if has("Dirty bit is set") {
        "dirty_bit"
    } else if (line.starts_with("Cluster ") && has("out of range"))
        || has("Start cluster beyond limit")
        || has("Bad start cluster 1")
    {
        "chain_out_of_range"
    } else if has("Circular cluster chain") {
        "chain_loop"
    } else if line.starts_with("File size is") && has("cluster chain length is >") {
        "size_mismatch"
    } else if line.starts_with("File size is") {
        "chain_ends_early"
    } else if has("share clusters") {
        "cross_link"
    } else if has("Contains a free cluster") {
        "free_in_chain"
    } else if has("Contains a bad cluster") || has("next_cluster on bad cluster") {
        "bad_cluster"
    } else if line.starts_with("Reclaimed ") || line.starts_with("Broke cycle at cluster") {
        "lost_clusters"
    } else if has("Bad short file name")
        || has("Directory has non-zero size")
        || has("Start does point to")
        || has("Has a large number of bad entries")
    {
        "bad_dir_entry"
    } else if has("Duplicate directory entry") {
        "duplicate_entry"
    } else if has("'.' entry") || has("'..' entry") || has("Is a dot with no 8.3 name") {
        "bad_dot_entries"
    } else if has("abel") {
        "volume_label"
    } else {
        return None;
    };
    Some(class)
}

/// What fsck.fat printed about a damaged volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsckDamage {
    /// fsck.fat's exit code (`None` if a signal ended it).
    pub exit_code: Option<i32>,
    /// Everything it printed on stdout after its version line, trimmed,
    /// blank lines left out, in order: the complaints as fsck.fat prints
    /// them (see [`FsckDamage::complaints`]) and its closing lines (such as
    /// `Leaving filesystem unchanged.` and the file count).
    pub lines: Vec<String>,
    /// What it printed on stderr (trimmed, at most a few KiB): why it gave
    /// up on a volume it could not read at all.
    pub stderr: String,
}

/// One complaint of fsck.fat: about a file (its path on a line of its own,
/// what is wrong with it on the next), or about the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Complaint<'a> {
    /// The file concerned, as fsck.fat prints it (`/STATE.1002/LOCAL.TGZ`).
    pub file: Option<&'a str>,
    /// What is wrong.
    pub message: &'a str,
}

impl FsckDamage {
    /// The complaints in the order fsck.fat printed them: a line starting
    /// with `/` followed by another line is a file and what is wrong with
    /// it; any other line is a complaint of its own.
    pub fn complaints(&self) -> impl Iterator<Item = Complaint<'_>> {
        let mut lines = self.lines.iter().map(String::as_str).peekable();
        std::iter::from_fn(move || {
            let line = lines.next()?;
            if line.starts_with('/') {
                if let Some(message) = lines.next() {
                    return Some(Complaint { file: Some(line), message });
                }
            }
            Some(Complaint { file: None, message: line })
        })
    }

    /// The first complaint, if fsck.fat printed any.
    pub fn first_complaint(&self) -> Option<Complaint<'_>> {
        self.complaints().next()
    }
}

impl fmt::Display for Complaint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.file {
            Some(file) => write!(f, "{file}: {}", self.message),
            None => f.write_str(self.message),
        }
    }
}

impl fmt::Display for FsckDamage {
    /// The first complaint, else stderr, else the exit code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first_complaint(), self.exit_code) {
            (Some(first), _) => write!(f, "{first}"),
            _ if !self.stderr.is_empty() => f.write_str(&self.stderr),
            (None, Some(code)) => write!(f, "fsck.fat exited with code {code}"),
            (None, None) => f.write_str("fsck.fat was killed by a signal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn damage(lines: &[&str]) -> FsckDamage {
        FsckDamage { exit_code: Some(1), lines: lines.iter().map(|l| (*l).to_owned()).collect(), stderr: String::new() }
    }

    #[test]
    fn complaints_pair_a_file_with_the_line_after_it() {
        let d = damage(&[
            "/STATE.1002/LOCAL.TGZ",
            "File size is 100000 bytes, cluster chain length is 2048 bytes.",
            "Truncating file to 2048 bytes.",
            "Dirty bit is set. Fs was not properly unmounted and some data may be corrupt.",
            "Automatically removing dirty bit.",
            "Leaving filesystem unchanged.",
        ]);
        let first = d.first_complaint().unwrap();
        assert_eq!(first.file, Some("/STATE.1002/LOCAL.TGZ"));
        assert_eq!(first.message, "File size is 100000 bytes, cluster chain length is 2048 bytes.");
        assert_eq!(d.complaints().count(), 5);
        assert_eq!(
            d.to_string(),
            "/STATE.1002/LOCAL.TGZ: File size is 100000 bytes, cluster chain length is 2048 bytes."
        );

        let lone = damage(&["/ALONE"]);
        assert_eq!(lone.first_complaint(), Some(Complaint { file: None, message: "/ALONE" }));
        let volume = damage(&["Dirty bit is set.", "/NOT.A.FILE"]);
        assert_eq!(volume.first_complaint(), Some(Complaint { file: None, message: "Dirty bit is set." }));
    }

    #[test]
    fn damage_without_complaints_shows_stderr_or_the_exit_code() {
        let mut d = damage(&[]);
        assert_eq!(d.first_complaint(), None);
        assert_eq!(d.to_string(), "fsck.fat exited with code 1");
        d.stderr = "Logical sector size is zero.".to_owned();
        assert_eq!(d.to_string(), "Logical sector size is zero.");
    }
}
