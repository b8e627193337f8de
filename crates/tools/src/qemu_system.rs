//! `qemu-system-x86_64` through the crate's runner: boot a Multiboot (v1)
//! kernel with modules and a command line on a real x86 machine emulator,
//! and read back the report the guest prints on its serial port.
//!
//! ```text
//!   kernel + modules (bytes) ──► temp dir ──► qemu-system-x86_64 -kernel K -initrd "M1 args,M2,..." -append CMDLINE
//!                                                   │ COM1 → stdout (captured)
//!   GuestReport ◄── parse "visorsim-guest: ..." lines ◄─┘ isa-debug-exit powers off with the guest's status
//! ```
//!
//! Promises:
//! - **Nothing reaches a network.** Every run has `-nic none` (and
//!   `-nodefaults`): without it the firmware would try PXE or HTTP boot
//!   when the kernel fails to start.
//! - **Time-limited**, like every program of this crate: a machine still
//!   running at [`QemuSystem::timeout`] is killed ([`QemuSystemError::TimedOut`]).
//!   `-no-reboot` turns a triple fault into an exit instead of a boot loop.
//! - **No files left behind.** The kernel and modules are written to a
//!   temporary directory removed when the call returns, on every path.
//! - **Memory sized from the payload**: the kernel and modules (each
//!   page-aligned, as QEMU's Multiboot loader places them) plus 32 MiB,
//!   refused above [`MAX_MEMORY_MIB`] (QEMU's loader puts every module
//!   below 4 GiB, in the RAM under the PCI hole).
//! - **KVM when usable, TCG otherwise** ([`Accel::Auto`]); either can be
//!   forced. Note: under nested virtualisation KVM can be much slower to
//!   start the firmware than TCG (about 9 s against 0.2 s on the machine
//!   this was written on); [`Accel::Tcg`] is then the quicker choice.
//! - **A missing program** is [`QemuSystemError::ToolMissing`], naming the
//!   Debian package [`PACKAGE`].
//!
//! The guest side (what the kernel prints) is `crates/image/guest/multiboot_guest.s`:
//! one `flags=` line, one `cmdline` line, one `module` line per module and
//! an `end` line, each starting with [`GUEST_PREFIX`].

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::{Run, ToolError};

/// Environment variable naming the `qemu-system-x86_64` program to use
/// instead of the one on `PATH`.
pub const PROGRAM_ENV: &str = "VISORSIM_QEMU_SYSTEM";

/// The program run.
pub const PROGRAM: &str = "qemu-system-x86_64";

/// The Debian package that provides `qemu-system-x86_64`.
pub const PACKAGE: &str = "qemu-system-x86";

/// How long one machine may run before it is killed: the firmware, loading
/// the modules and the guest's CRC32 of every byte (a realistic image's
/// few hundred MB take seconds under TCG).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The most guest memory asked for: QEMU's Multiboot loader places the
/// kernel and every module in RAM below 4 GiB, which on the `pc` machine
/// is at most 3 GiB.
pub const MAX_MEMORY_MIB: u64 = 3 << 10;

/// Every report line of the guest starts with this.
pub const GUEST_PREFIX: &str = "visorsim-guest: ";

/// The isa-debug-exit device: the guest writes its status to port 0xf4 and
/// QEMU exits with `(status << 1) | 1`.
const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// Which accelerator runs the machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accel {
    /// KVM when `/dev/kvm` can be opened for reading and writing, else TCG.
    #[default]
    Auto,
    /// The kernel's KVM (fails in QEMU when unusable).
    Kvm,
    /// QEMU's own emulator: slower code, always available.
    Tcg,
}

impl Accel {
    /// `auto`, `kvm` or `tcg`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// Parses [`Accel::name`].
    pub fn from_name(name: &str) -> Option<Accel> {
        match name {
            "auto" => Some(Accel::Auto),
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }

    /// `Kvm` or `Tcg`: what `Auto` means on this machine.
    pub fn resolve(self) -> Accel {
        match self {
            Accel::Auto if kvm_usable() => Accel::Kvm,
            Accel::Auto => Accel::Tcg,
            other => other,
        }
    }
}

/// Whether `/dev/kvm` can be opened for reading and writing.
pub fn kvm_usable() -> bool {
    fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// One module to hand to the kernel.
#[derive(Clone, Copy, Debug)]
pub struct BootModule<'a> {
    /// Its name (the file the guest sees is named after its last component).
    pub name: &'a str,
    /// Its options: the rest of the module's Multiboot string.
    pub options: &'a str,
    /// The bytes the guest receives.
    pub data: &'a [u8],
}

/// A Multiboot boot: the kernel file, its command line (without the
/// kernel's own name, which QEMU puts first), and the modules in order.
#[derive(Clone, Debug)]
pub struct MultibootBoot<'a> {
    /// The kernel's name (the file the guest sees is named after its last component).
    pub kernel_name: &'a str,
    /// The kernel file (a Multiboot v1 kernel).
    pub kernel: &'a [u8],
    /// The command line after the kernel's name.
    pub cmdline: &'a str,
    /// The modules, in the order the guest gets them.
    pub modules: Vec<BootModule<'a>>,
}

/// One module as the guest saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestModule {
    /// Its index in the Multiboot module list.
    pub index: u32,
    /// `mod_start`.
    pub start: u32,
    /// `mod_end`.
    pub end: u32,
    /// `mod_end - mod_start` (0 when the end lies before the start).
    pub length: u32,
    /// CRC32 (gzip's) of its bytes.
    pub crc32: u32,
    /// Its Multiboot string: the file QEMU loaded it from, then its options.
    pub string: String,
}

/// What the guest reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestReport {
    /// The Multiboot information flags.
    pub flags: u32,
    /// The command line as the guest got it (QEMU puts the kernel's file
    /// name first).
    pub cmdline: String,
    /// The modules, in the guest's order.
    pub modules: Vec<GuestModule>,
    /// The guest's status (0: complete).
    pub status: u32,
}

impl GuestReport {
    /// Parses the guest's serial output. Lines without [`GUEST_PREFIX`]
    /// are ignored; the `end` line must be there and agree with the module
    /// lines.
    pub fn parse(serial: &str) -> Result<GuestReport, String> {
        let mut flags = None;
        let mut cmdline = None;
        let mut modules = Vec::new();
        for line in serial.lines() {
            let line = line.trim_end_matches('\r');
            let Some(rest) = line.strip_prefix(GUEST_PREFIX) else { continue };
            if let Some(v) = rest.strip_prefix("flags=") {
                flags = Some(hex(v, "flags")?);
            } else if let Some(v) = rest.strip_prefix("cmdline ") {
                cmdline = Some(v.to_owned());
            } else if rest == "cmdline" {
                cmdline = Some(String::new());
            } else if let Some(v) = rest.strip_prefix("module ") {
                modules.push(parse_module(v)?);
            } else if let Some(v) = rest.strip_prefix("end modules=") {
                let (count, status) =
                    v.split_once(" status=").ok_or_else(|| format!("end line without status: {line:?}"))?;
                let count = hex(count, "module count")?;
                if count as usize != modules.len() {
                    return Err(format!("the end line counts {count} modules, {} module lines came", modules.len()));
                }
                for (i, m) in modules.iter().enumerate() {
                    if m.index as usize != i {
                        return Err(format!("module line {i} has index {}", m.index));
                    }
                }
                return Ok(GuestReport {
                    flags: flags.ok_or("no flags line before the end line")?,
                    cmdline: cmdline.ok_or("no cmdline line before the end line")?,
                    modules,
                    status: hex(status, "status")?,
                });
            } else if let Some(v) = rest.strip_prefix("not entered by a Multiboot loader: eax=") {
                return Err(format!("the guest was not entered by a Multiboot loader (EAX {v})"));
            }
        }
        Err("the guest's report ended before its end line".to_owned())
    }
}

fn parse_module(v: &str) -> Result<GuestModule, String> {
    let bad = || format!("malformed module line: {v:?}");
    let (numbers, string) = v.split_once(" string=").ok_or_else(bad)?;
    let mut words = numbers.split(' ');
    let index = hex(words.next().ok_or_else(bad)?, "module index")?;
    let mut field = |name: &str| -> Result<u32, String> {
        let word = words.next().ok_or_else(bad)?;
        hex(word.strip_prefix(name).and_then(|w| w.strip_prefix('=')).ok_or_else(bad)?, name)
    };
    Ok(GuestModule {
        index,
        start: field("start")?,
        end: field("end")?,
        length: field("length")?,
        crc32: field("crc32")?,
        string: string.to_owned(),
    })
}

fn hex(v: &str, what: &str) -> Result<u32, String> {
    if v.len() != 8 {
        return Err(format!("{what} {v:?} is not 8 hex digits"));
    }
    u32::from_str_radix(v, 16).map_err(|_| format!("{what} {v:?} is not 8 hex digits"))
}

/// A completed run: the guest's report and how the machine was run.
#[derive(Clone, Debug)]
pub struct GuestRun {
    /// What the guest reported.
    pub report: GuestReport,
    /// The accelerator used (`Kvm` or `Tcg`).
    pub accel: Accel,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// The command line run, shell-quoted (its temporary paths are gone).
    pub command: String,
    /// The serial output, as the guest wrote it.
    pub serial: String,
    /// The path the kernel was loaded from (the first word of the guest's
    /// command line).
    pub kernel_path: String,
    /// The path each module was loaded from, in order.
    pub module_paths: Vec<String>,
}

impl GuestRun {
    /// The guest's command line without the kernel's path QEMU puts first;
    /// `None` when it does not start with that path.
    pub fn cmdline_after_kernel(&self) -> Option<&str> {
        let rest = self.report.cmdline.strip_prefix(&self.kernel_path)?;
        if rest.is_empty() {
            Some("")
        } else {
            rest.strip_prefix(' ')
        }
    }

    /// The name of the file module `i` of the guest came from, as it was
    /// handed to [`QemuSystem::boot_multiboot`] (by the path at the start
    /// of its string), and the options after it.
    pub fn module_origin<'a>(
        &'a self,
        module: &'a GuestModule,
        boot: &MultibootBoot<'a>,
    ) -> Option<(&'a str, &'a str)> {
        let (i, path) = self
            .module_paths
            .iter()
            .enumerate()
            .filter(|(_, p)| module.string.starts_with(p.as_str()))
            .max_by_key(|(_, p)| p.len())?;
        let rest = &module.string[path.len()..];
        let options = if rest.is_empty() { "" } else { rest.strip_prefix(' ')? };
        Some((boot.modules.get(i)?.name, options))
    }
}

/// An error of [`QemuSystem`].
#[derive(Debug, thiserror::Error)]
pub enum QemuSystemError {
    /// The program could not be started because it does not exist.
    #[error(
        "{tool} not found{}: install the Debian package {package} (apt-get install {package})",
        if .tool.contains('/') { "" } else { " on PATH" }
    )]
    ToolMissing {
        /// The program as it was looked up.
        tool: String,
        /// The Debian package that provides it.
        package: String,
    },

    /// The machine ran past its time limit and was killed.
    #[error("Command `{command}` timed out after {} and was killed", crate::seconds(*.limit))]
    TimedOut {
        /// The command line, shell-quoted.
        command: String,
        /// The limit it ran past.
        limit: Duration,
    },

    /// QEMU exited without the guest powering the machine off (it could not
    /// start, or the guest crashed).
    #[error("Command `{command}` ended without the guest's report ({status}): {stderr}{}", serial_tail(.serial))]
    Failed {
        /// The command line, shell-quoted.
        command: String,
        /// How QEMU exited.
        status: ExitStatus,
        /// QEMU's stderr (trimmed, at most a few KiB).
        stderr: String,
        /// What the guest printed.
        serial: String,
    },

    /// The guest ran but its report is unusable or says it failed.
    #[error("The guest's report is unusable: {detail}{}", serial_tail(.serial))]
    Guest {
        /// What is wrong with it.
        detail: String,
        /// What the guest printed.
        serial: String,
    },

    /// The kernel and modules need more memory than QEMU's Multiboot loader can use.
    #[error("The kernel and modules need {needed_mib} MiB of guest memory; QEMU's Multiboot loader can use at most {MAX_MEMORY_MIB} MiB")]
    TooLarge {
        /// The memory they need.
        needed_mib: u64,
    },

    /// Writing a temporary file (or starting the program) failed.
    #[error("I/O error on {}", .path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn serial_tail(serial: &str) -> String {
    if serial.trim().is_empty() {
        "; the guest printed nothing".to_owned()
    } else {
        let lines: Vec<&str> = serial.lines().collect();
        format!("; the guest printed:\n{}", lines[lines.len().saturating_sub(8)..].join("\n"))
    }
}

/// The `qemu-system-x86_64` program, its time limit and accelerator.
#[derive(Clone, Debug)]
pub struct QemuSystem {
    program: PathBuf,
    timeout: Duration,
    accel: Accel,
}

impl Default for QemuSystem {
    fn default() -> Self {
        QemuSystem::new()
    }
}

impl QemuSystem {
    /// The program named by [`PROGRAM_ENV`], else `qemu-system-x86_64` on
    /// `PATH`; [`DEFAULT_TIMEOUT`]; [`Accel::Auto`].
    pub fn new() -> QemuSystem {
        let program = std::env::var_os(PROGRAM_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(PROGRAM));
        QemuSystem::with_program(program)
    }

    /// A specific program (a path, or a name looked up on `PATH`).
    pub fn with_program(program: impl Into<PathBuf>) -> QemuSystem {
        QemuSystem { program: program.into(), timeout: DEFAULT_TIMEOUT, accel: Accel::Auto }
    }

    /// The same program with another time limit.
    pub fn with_timeout(self, timeout: Duration) -> QemuSystem {
        QemuSystem { timeout, ..self }
    }

    /// The same program with another accelerator.
    pub fn with_accel(self, accel: Accel) -> QemuSystem {
        QemuSystem { accel, ..self }
    }

    /// The time limit of one run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Guest memory for `boot`, in MiB: every file page-aligned, plus 32 MiB.
    pub fn memory_mib(boot: &MultibootBoot<'_>) -> u64 {
        let page = |n: usize| (n as u64).div_ceil(4096) * 4096;
        let bytes = page(boot.kernel.len()) + boot.modules.iter().map(|m| page(m.data.len())).sum::<u64>();
        bytes.div_ceil(1 << 20) + 32
    }

    /// Boots `boot` and returns the guest's report. The guest must power
    /// off through isa-debug-exit with status 0 after a complete report.
    pub fn boot_multiboot(&self, boot: &MultibootBoot<'_>) -> Result<GuestRun, QemuSystemError> {
        let memory_mib = QemuSystem::memory_mib(boot);
        if memory_mib > MAX_MEMORY_MIB {
            return Err(QemuSystemError::TooLarge { needed_mib: memory_mib });
        }
        // Removed on drop, on every return below.
        let dir = tempfile::Builder::new()
            .prefix("visorsim-qemu.")
            .tempdir()
            .map_err(|e| QemuSystemError::Io { path: std::env::temp_dir(), source: e })?;
        let _on_signal = crate::cleanup::remove_on_signal(dir.path());
        let write = |path: &Path, data: &[u8]| {
            fs::write(path, data).map_err(|e| QemuSystemError::Io { path: path.to_owned(), source: e })
        };
        let kernel_path = dir.path().join(file_name(boot.kernel_name, "kernel"));
        write(&kernel_path, boot.kernel)?;
        let mut module_paths = Vec::new();
        let mut initrd = String::new();
        for (i, m) in boot.modules.iter().enumerate() {
            // One directory per module: two modules may share a file name.
            let sub = dir.path().join(format!("{i:03}"));
            fs::create_dir(&sub).map_err(|e| QemuSystemError::Io { path: sub.clone(), source: e })?;
            let path = sub.join(file_name(m.name, "module"));
            write(&path, m.data)?;
            if i > 0 {
                initrd.push(',');
            }
            let path_text = path.to_string_lossy().into_owned();
            let string = if m.options.is_empty() { path_text.clone() } else { format!("{path_text} {}", m.options) };
            // QEMU splits -initrd at commas; a doubled comma is a comma.
            initrd.push_str(&string.replace(',', ",,"));
            module_paths.push(path_text);
        }
        let accel = self.accel.resolve();
        let mut args: Vec<OsString> = [
            "-nodefaults",
            "-nic",
            "none",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-machine",
            "pc",
            "-accel",
            accel.name(),
            "-device",
            DEBUG_EXIT_DEVICE,
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.extend(["-m".into(), memory_mib.to_string().into(), "-kernel".into(), kernel_path.clone().into()]);
        args.extend(["-append".into(), boot.cmdline.into()]);
        if !boot.modules.is_empty() {
            args.extend(["-initrd".into(), initrd.into()]);
        }
        let run =
            Run { program: &self.program, package: PACKAGE, args: &args, locale: crate::LOCALE, limit: self.timeout };
        let command = run.command_line();
        let out = run.output().map_err(|e| match e {
            ToolError::Missing { program, package } => QemuSystemError::ToolMissing { tool: program, package },
            ToolError::TimedOut { command, limit } => QemuSystemError::TimedOut { command, limit },
            ToolError::Io { path, source } => QemuSystemError::Io { path, source },
            ToolError::Failed { command, status, stderr } => {
                QemuSystemError::Failed { command, status, stderr, serial: String::new() }
            }
        })?;
        let serial = String::from_utf8_lossy(&out.stdout).into_owned();
        // isa-debug-exit: QEMU exits with (status << 1) | 1; an odd code is
        // the guest's doing, anything else is QEMU's own exit.
        let guest_status = out.status.code().filter(|c| c % 2 == 1).map(|c| c >> 1);
        if guest_status.is_none() {
            let stderr = crate::stderr_text(&out);
            return Err(QemuSystemError::Failed { command, status: out.status, stderr, serial });
        }
        let report =
            GuestReport::parse(&serial).map_err(|detail| QemuSystemError::Guest { detail, serial: serial.clone() })?;
        if report.status != 0 || guest_status != Some(0) {
            let detail = format!("the guest reported status {} (exit status {})", report.status, out.status);
            return Err(QemuSystemError::Guest { detail, serial });
        }
        Ok(GuestRun {
            report,
            accel,
            memory_mib,
            command,
            serial,
            kernel_path: kernel_path.to_string_lossy().into_owned(),
            module_paths,
        })
    }
}

/// The last path component of `name` if it is a plain file name (no `..`,
/// no NUL, not empty), else `fallback`.
fn file_name<'a>(name: &'a str, fallback: &'a str) -> &'a str {
    let last = name.rsplit('/').next().unwrap_or("");
    if last.is_empty() || last == "." || last == ".." || last.contains('\0') || last.contains(',') || last.contains(' ')
    {
        fallback
    } else {
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
visorsim-guest: flags=0000024f
visorsim-guest: cmdline /tmp/x/b.b00 a=1 bootUUID=ab rollback
visorsim-guest: module 00000000 start=00123000 end=00125ee0 length=00002ee0 crc32=aa27903b string=/tmp/x/000/k.b00 a=1 b
visorsim-guest: module 00000001 start=00126000 end=0016f3e0 length=000493e0 crc32=518350bf string=/tmp/x/001/s.v00
visorsim-guest: end modules=00000002 status=00000000
";

    #[test]
    fn a_complete_report_parses() {
        let r = GuestReport::parse(&format!("firmware noise\n{REPORT}")).unwrap();
        assert_eq!((r.flags, r.status, r.modules.len()), (0x24f, 0, 2));
        assert_eq!(r.cmdline, "/tmp/x/b.b00 a=1 bootUUID=ab rollback");
        assert_eq!(r.modules[0].string, "/tmp/x/000/k.b00 a=1 b");
        assert_eq!((r.modules[1].start, r.modules[1].length, r.modules[1].crc32), (0x126000, 0x493e0, 0x518350bf));
    }

    #[test]
    fn incomplete_or_inconsistent_reports_are_refused() {
        let cut = &REPORT[..REPORT.find("visorsim-guest: end").unwrap()];
        assert_eq!(GuestReport::parse(cut).unwrap_err(), "the guest's report ended before its end line");
        let miscounted = REPORT.replace("end modules=00000002", "end modules=00000003");
        assert!(GuestReport::parse(&miscounted).unwrap_err().contains("counts 3 modules"));
        let bad_hex = REPORT.replace("crc32=aa27903b", "crc32=aa2790");
        assert!(GuestReport::parse(&bad_hex).unwrap_err().contains("not 8 hex digits"));
        assert!(GuestReport::parse("visorsim-guest: not entered by a Multiboot loader: eax=00000000\n")
            .unwrap_err()
            .contains("not entered by a Multiboot loader"));
        assert!(GuestReport::parse("").is_err());
    }

    #[test]
    fn memory_covers_every_file_page_aligned() {
        let data = vec![0u8; 5 << 20];
        let boot = MultibootBoot {
            kernel_name: "b.b00",
            kernel: &[0; 100],
            cmdline: "",
            modules: vec![
                BootModule { name: "s.v00", options: "", data: &data },
                BootModule { name: "e", options: "", data: &[] },
            ],
        };
        assert_eq!(QemuSystem::memory_mib(&boot), 6 + 32);
    }

    #[test]
    fn file_names_are_plain() {
        assert_eq!(file_name("/bank/k.b00", "m"), "k.b00");
        assert_eq!(file_name("..", "m"), "m");
        assert_eq!(file_name("dir/", "m"), "m");
        assert_eq!(file_name("a,b", "m"), "m");
    }

    #[test]
    fn accelerators_have_names() {
        for a in [Accel::Auto, Accel::Kvm, Accel::Tcg] {
            assert_eq!(Accel::from_name(a.name()), Some(a));
        }
        assert_ne!(Accel::Auto.resolve(), Accel::Auto);
        assert_eq!(Accel::Tcg.resolve(), Accel::Tcg);
    }
}
