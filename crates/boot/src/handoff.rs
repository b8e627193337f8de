//! The handoff: mboot starts the kernel it loaded with the modules it
//! loaded and the command line it built — here on a real x86 machine
//! emulator (`qemu-system-x86_64`, through `visorsim_tools::qemu_system`),
//! whose guest (b.b00's code) reports what it received, compared with what
//! mboot loaded (docs/bootloader.md, Handoff).
//!
//! ```text
//!   BootReport (Booted) ──► the selected bank's boot.cfg and modules, read and
//!        │                  inflated again exactly as mboot loads them
//!        │                  (sizes and CRC32s must equal the report's)
//!        ▼
//!   qemu-system-x86_64 -kernel b.b00 -initrd "k.b00 opts,s.v00,..." -append "<kernelopt> bootUUID=<hex> [rollback]"
//!        ▼
//!   guest report ──► compare: module count, order (names), options, lengths,
//!                    CRC32s, the command line, its bootUUID and rollback
//! ```
//!
//! What it promises:
//! - **The guest gets mboot's modules**: the uncompressed bytes (QEMU's
//!   loader does not inflate), in mboot's order, each with its boot.cfg
//!   options, and mboot's command line. Module 0, the kernel, is started,
//!   not passed as a module, as a Multiboot loader does.
//! - **Every difference is named**: a [`Mismatch`] says which module (or
//!   the command line), which field, and both values.
//! - **It only reads the disk.**
//!
//! [`HandoffOptions::tamper`] is the test hook: it changes one module's
//! bytes after mboot's check, to show that the comparison catches a module
//! that differs from what mboot verified.

use std::fmt;

use visorsim_disk::BlockDevice;
use visorsim_media::fatread::{esx_short_name, FatReader};
use visorsim_tools::qemu_system::{BootModule, GuestRun, MultibootBoot, QemuSystem, QemuSystemError};

use crate::boot::{BootReport, Outcome, MAX_BOOT_CFG};
use crate::bootcfg::MbootConfig;
use crate::load::{load_module, LoadOptions, LoadedModule};
use crate::mboot::{self, ModuleSpec};
use crate::volume::scan_volumes;

/// How to hand over.
#[derive(Clone, Debug, Default)]
pub struct HandoffOptions {
    /// The emulator (program, time limit, accelerator).
    pub qemu: QemuSystem,
    /// How the modules are loaded again (as the boot loaded them).
    pub load: LoadOptions,
    /// Test hook: the module of this boot.cfg name has its first byte
    /// inverted (or, when empty, one byte added) after mboot's check.
    pub tamper: Option<String>,
}

/// A handoff the guest confirmed.
#[derive(Clone, Debug)]
pub struct Handoff {
    /// The machine's run and the guest's report.
    pub run: GuestRun,
    /// The command line the guest saw after the kernel's name (mboot's).
    pub cmdline: String,
    /// The modules the guest received, in order (boot.cfg names).
    pub modules: Vec<String>,
}

/// A difference between what mboot loaded and what the guest received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The module (boot.cfg name), or `None` for the command line and the count.
    pub module: Option<String>,
    /// What differs: `count`, `name`, `options`, `length`, `crc32`,
    /// `cmdline`, `bootUUID` or `rollback`.
    pub field: &'static str,
    /// mboot's value.
    pub mboot: String,
    /// The guest's value.
    pub guest: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.module {
            write!(f, "module {m}: ")?;
        }
        write!(f, "{} differs: mboot loaded {}, the guest received {}", self.field, self.mboot, self.guest)
    }
}

/// Why a handoff did not confirm the boot.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// The boot did not end in [`Outcome::Booted`]: there is nothing to start.
    #[error("The boot did not load a kernel: nothing to hand over")]
    NotBooted,
    /// The selected bank's boot.cfg or modules could not be read again.
    #[error("Reading BANK{bank} again for the handoff: {detail}")]
    Reload {
        /// The bank.
        bank: u32,
        /// What failed, naming the file.
        detail: String,
    },
    /// The emulator could not run the guest to its report.
    #[error("Running the selected kernel")]
    Qemu(#[from] QemuSystemError),
    /// The guest received something else than mboot loaded.
    #[error("The guest's report differs from what mboot loaded: {0}")]
    Mismatch(Mismatch),
}

impl HandoffError {
    /// Whether the guest ran and reported something mboot did not load.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, HandoffError::Mismatch(_))
    }
}

/// One module as loaded again: its spec, bytes, and mboot's values.
struct Reloaded {
    spec: ModuleSpec,
    module: LoadedModule,
    crc32: u32,
    /// The test hook's changed bytes, handed over instead of the module's.
    tampered: Option<Vec<u8>>,
}

impl Reloaded {
    /// The bytes handed to the guest.
    fn bytes(&self) -> &[u8] {
        self.tampered.as_deref().unwrap_or(self.module.data())
    }
}

/// Starts the kernel `report` booted on `dev`'s selected bank with mboot's
/// modules and command line, and compares the guest's report with what
/// mboot loaded.
pub fn hand_over<D: BlockDevice>(
    dev: &mut D,
    report: &BootReport,
    options: &HandoffOptions,
) -> Result<Handoff, HandoffError> {
    let (Outcome::Booted, Some(bank), Some(cmdline)) = (&report.outcome, report.selected, &report.kernel_cmdline)
    else {
        return Err(HandoffError::NotBooted);
    };
    let mut modules = reload(dev, bank, report, &options.load)?;
    if let Some(name) = &options.tamper {
        if let Some(m) = modules.iter_mut().find(|m| &m.spec.name == name) {
            let mut bytes = m.module.data().to_vec();
            match bytes.first_mut() {
                Some(b) => *b = !*b,
                None => bytes.push(0),
            }
            m.tampered = Some(bytes);
        }
    }
    let (kernel, rest) = modules.split_first().ok_or(HandoffError::NotBooted)?;
    let boot = MultibootBoot {
        kernel_name: &kernel.spec.path,
        kernel: kernel.bytes(),
        cmdline,
        modules: rest
            .iter()
            .map(|m| BootModule { name: &m.spec.name, options: &m.spec.options, data: m.bytes() })
            .collect(),
    };
    let run = options.qemu.boot_multiboot(&boot)?;
    compare(&run, &boot, rest, cmdline).map_err(HandoffError::Mismatch)?;
    let names = rest.iter().map(|m| m.spec.name.clone()).collect();
    Ok(Handoff { cmdline: cmdline.clone(), modules: names, run })
}

/// Reads the bank's boot.cfg and modules again and loads them as mboot
/// did; each must give the report's size and CRC32.
fn reload<D: BlockDevice>(
    dev: &mut D,
    bank: u32,
    report: &BootReport,
    load: &LoadOptions,
) -> Result<Vec<Reloaded>, HandoffError> {
    let fail = |detail: String| HandoffError::Reload { bank, detail };
    let table = scan_volumes(dev);
    let volume = table.volumes.iter().find(|v| v.number == bank).ok_or_else(|| fail("the partition is gone".into()))?;
    let reader = FatReader::open(dev, volume.first_lba, volume.sectors).map_err(|e| fail(e.to_string()))?;
    let read = |dev: &mut D, path: &str, max: u64| -> Result<Vec<u8>, HandoffError> {
        let file = reader
            .find_short(dev, &esx_short_name(path.as_bytes()))
            .map_err(|e| fail(format!("{path}: {e}")))?
            .ok_or_else(|| fail(format!("{path} not found")))?;
        reader.read(dev, &file, max).map_err(|e| fail(format!("{path}: {e}")))
    };
    let text = read(dev, "/boot.cfg", MAX_BOOT_CFG)?;
    let config = MbootConfig::parse(&text).map_err(|e| fail(format!("/boot.cfg: {e}")))?;
    let specs = mboot::module_specs(&config).map_err(|f| fail(format!("/boot.cfg: {}", f.fatal_line())))?;
    if specs.len() != report.modules.len() {
        return Err(fail(format!("boot.cfg lists {} modules, the boot loaded {}", specs.len(), report.modules.len())));
    }
    let mut out = Vec::new();
    for (spec, loaded) in specs.into_iter().zip(&report.modules) {
        if spec.path != loaded.path {
            return Err(fail(format!("boot.cfg now names {} where the boot loaded {}", spec.path, loaded.path)));
        }
        let file = read(dev, &spec.path, load.memory_budget)?;
        let module = load_module(&spec.path, &file, load).map_err(|e| fail(format!("{}: {e}", spec.path)))?;
        let crc32 = module.crc32.unwrap_or_else(|| crc32fast::hash(module.data()));
        if module.size != loaded.size || loaded.crc32.is_some_and(|c| c != crc32) {
            return Err(fail(format!("{} changed since the boot loaded it", spec.path)));
        }
        out.push(Reloaded { spec, module, crc32, tampered: None });
    }
    Ok(out)
}

/// Compares the guest's report with mboot's modules (after the kernel) and
/// command line.
fn compare(run: &GuestRun, boot: &MultibootBoot<'_>, modules: &[Reloaded], cmdline: &str) -> Result<(), Mismatch> {
    let guest = &run.report;
    let whole = |field, mboot: String, guest: String| Mismatch { module: None, field, mboot, guest };
    let seen = run.cmdline_after_kernel().unwrap_or(&guest.cmdline);
    let word = |line: &str, prefix: &str| {
        line.split(' ').find_map(|w| w.strip_prefix(prefix)).map_or_else(|| "none".to_owned(), str::to_owned)
    };
    if word(cmdline, "bootUUID=") != word(seen, "bootUUID=") {
        return Err(whole("bootUUID", word(cmdline, "bootUUID="), word(seen, "bootUUID=")));
    }
    let rollback = |line: &str| if line.split(' ').any(|w| w == "rollback") { "set" } else { "not set" }.to_owned();
    if rollback(cmdline) != rollback(seen) {
        return Err(whole("rollback", rollback(cmdline), rollback(seen)));
    }
    if seen != cmdline {
        return Err(whole("cmdline", format!("{cmdline:?}"), format!("{seen:?}")));
    }
    if guest.modules.len() != modules.len() {
        return Err(whole("count", modules.len().to_string(), guest.modules.len().to_string()));
    }
    for (m, g) in modules.iter().zip(&guest.modules) {
        let name = &m.spec.name;
        let differs =
            |field, mboot: String, guest: String| Mismatch { module: Some(name.clone()), field, mboot, guest };
        let (origin, options) = run.module_origin(g, boot).unwrap_or((g.string.as_str(), ""));
        if origin != name {
            return Err(differs("name", name.clone(), origin.to_owned()));
        }
        if options != m.spec.options {
            return Err(differs("options", format!("{:?}", m.spec.options), format!("{options:?}")));
        }
        if u64::from(g.length) != m.module.size {
            return Err(differs("length", m.module.size.to_string(), g.length.to_string()));
        }
        if g.crc32 != m.crc32 {
            return Err(differs("crc32", format!("{:#010x}", m.crc32), format!("{:#010x}", g.crc32)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatches_name_the_module_and_both_values() {
        let m = Mismatch { module: Some("s.v00".into()), field: "crc32", mboot: "0x1".into(), guest: "0x2".into() };
        assert_eq!(m.to_string(), "module s.v00: crc32 differs: mboot loaded 0x1, the guest received 0x2");
        let m = Mismatch { module: None, field: "rollback", mboot: "set".into(), guest: "not set".into() };
        assert_eq!(m.to_string(), "rollback differs: mboot loaded set, the guest received not set");
    }
}
