//! mboot's side of a boot, before and around module loading
//! (`mboot/config.c`, `mboot/mboot.c`, `mboot/esxbootinfo.c`;
//! docs/bootloader.md: boot.cfg, Rollback, Modules, Failures): which files
//! to load, the kernel command line, the kernel check, and what happens
//! after a fatal error.

use serde::Serialize;

use crate::bootcfg::MbootConfig;
use crate::gzip::LoadError;
use crate::status::{self, EsxStatus};

/// One file to load: module 0 is the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModuleSpec {
    /// The name as written in boot.cfg.
    pub name: String,
    /// The path after the prefix rules.
    pub path: String,
    /// The module's own options (for the kernel: `kernelopt`).
    pub options: String,
}

/// A fatal mboot error: "Fatal error: `<code> (<text>)`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fatal {
    /// The status.
    pub status: EsxStatus,
    /// The lines logged before "Fatal error" (esx-boot's words).
    pub lines: Vec<String>,
}

impl Fatal {
    /// The line mboot stops with: "Fatal error: `<code> (<text>)`".
    pub fn fatal_line(&self) -> String {
        format!("Fatal error: {}", self.status)
    }
}

impl From<&LoadError> for Fatal {
    /// A module that failed to load: the error's own line (its `Display`,
    /// mboot's words), then the status.
    fn from(e: &LoadError) -> Fatal {
        Fatal { status: e.status(), lines: vec![e.to_string()] }
    }
}

/// The files mboot loads, kernel first (`parse_config`): `kernel=` must be
/// set (`"kernel=<FILEPATH> must be set"`); `skip=` non-zero aborts.
pub fn module_specs(config: &MbootConfig) -> Result<Vec<ModuleSpec>, Fatal> {
    if config.skip != 0 {
        return Err(Fatal { status: status::ABORTED, lines: vec!["skip is set: boot aborted.".to_owned()] });
    }
    let Some(kernel) = config.kernel.as_deref().filter(|k| !k.is_empty()) else {
        return Err(Fatal {
            status: status::INVALID_PARAMETER,
            lines: vec!["kernel=<FILEPATH> must be set".to_owned()],
        });
    };
    let prefix = config.prefix.as_deref().unwrap_or("");
    let mut specs = vec![ModuleSpec {
        name: kernel.to_owned(),
        path: make_path(prefix, kernel),
        options: config.kernelopt.clone().unwrap_or_default(),
    }];
    for item in config.module_list() {
        specs.push(ModuleSpec { path: make_path(prefix, &item.name), name: item.name, options: item.options });
    }
    Ok(specs)
}

/// `make_path`: with an empty prefix (the directory of `/boot.cfg`) names
/// are used as written; otherwise a relative name becomes `prefix/name`.
/// Names starting with `/` ignore the prefix. Repeated slashes are merged
/// and all whitespace removed (`file_sanitize_path`).
pub fn make_path(prefix: &str, name: &str) -> String {
    let joined = if prefix.is_empty() || name.starts_with('/') { name.to_owned() } else { format!("{prefix}/{name}") };
    let mut out = String::with_capacity(joined.len());
    for c in joined.chars() {
        if c.is_ascii() && crate::bootcfg::is_esx_space(c as u8) {
            continue;
        }
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The kernel command line: `<kernelopt> [<extra safeboot args>] bootUUID=<hex> [rollback]`.
pub fn kernel_cmdline(kernelopt: &str, boot_uuid_hex: &str, rollback: bool) -> String {
    let mut words: Vec<&str> = Vec::new();
    if !kernelopt.trim().is_empty() {
        words.push(kernelopt.trim());
    }
    let uuid = format!("bootUUID={boot_uuid_hex}");
    words.push(&uuid);
    if rollback {
        words.push("rollback");
    }
    words.join(" ")
}

/// Multiboot v1 header magic.
pub const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;
/// The Multiboot header must lie 4-byte aligned within the first 8 KiB.
const MULTIBOOT_SEARCH: usize = 8192;
/// [`check_kernel`] reads no byte past these: it decides the same on a
/// module's first `KERNEL_CHECK_BYTES` bytes as on all of it.
pub const KERNEL_CHECK_BYTES: usize = MULTIBOOT_SEARCH;

/// `check_multiboot_kernel`: module 0 must be an ELF image carrying a
/// Multiboot header (magic, flags, checksum summing to 0) 4-byte aligned in
/// its first 8 KiB. visorsim does not model the ESXBootInfo header of newer
/// kernels; its synthetic kernels carry Multiboot.
pub fn check_kernel(image: &[u8]) -> Result<(), Fatal> {
    let invalid =
        || Fatal { status: status::BAD_TYPE, lines: vec!["kernel is either invalid or corrupted.".to_owned()] };
    if image.len() < 64 || &image[..4] != b"\x7fELF" || !matches!(image[4], 1 | 2) || image[5] != 1 {
        return Err(invalid());
    }
    let window = &image[..image.len().min(MULTIBOOT_SEARCH)];
    let found = window.chunks_exact(4).enumerate().any(|(i, word)| {
        let at = i * 4;
        u32::from_le_bytes([word[0], word[1], word[2], word[3]]) == MULTIBOOT_MAGIC && at + 12 <= window.len() && {
            let flags = u32::from_le_bytes(window[at + 4..at + 8].try_into().expect("4"));
            let sum = u32::from_le_bytes(window[at + 8..at + 12].try_into().expect("4"));
            MULTIBOOT_MAGIC.wrapping_add(flags).wrapping_add(sum) == 0
        }
    });
    if found {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// What mboot does after a fatal error (`mboot.c:clean`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "after_failure", content = "seconds")]
pub enum AfterFailure {
    /// errtimeout < 0 (the default): mboot hangs forever.
    Hangs,
    /// errtimeout >= 0 (or skip=1: 5 s): back to safeboot, which waits for
    /// a key and returns; it never tries the other bank in the same boot.
    ReturnsAfter(i32),
}

/// The behaviour after a fatal error for this configuration.
pub fn after_failure(config: &MbootConfig) -> AfterFailure {
    let errtimeout = if config.skip != 0 && config.errtimeout < 0 { 5 } else { config.errtimeout };
    if errtimeout < 0 {
        AfterFailure::Hangs
    } else {
        AfterFailure::ReturnsAfter(errtimeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> MbootConfig {
        MbootConfig::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn prefix_rules() {
        assert_eq!(make_path("", "b.b00"), "b.b00");
        assert_eq!(make_path("/bank", "b.b00"), "/bank/b.b00");
        assert_eq!(make_path("bank//x", "/abs.gz"), "/abs.gz");
        assert_eq!(make_path("a //", "b .gz"), "a/b.gz");
    }

    #[test]
    fn kernel_is_module_zero_with_kernelopt() {
        let specs = module_specs(&config("kernel=b.b00\nkernelopt=a=1 b\nmodules=k.b00 --- s.v00 x=1\n")).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(names, ["b.b00", "k.b00", "s.v00"]);
        assert_eq!((specs[0].options.as_str(), specs[2].options.as_str()), ("a=1 b", "x=1"));
    }

    #[test]
    fn missing_kernel_and_skip_are_fatal() {
        assert_eq!(module_specs(&config("modules=a\n")).unwrap_err().lines, ["kernel=<FILEPATH> must be set"]);
        let skip = config("kernel=b\nskip=1\n");
        assert_eq!(module_specs(&skip).unwrap_err().status, status::ABORTED);
        assert_eq!(after_failure(&skip), AfterFailure::ReturnsAfter(5));
        assert_eq!(after_failure(&config("kernel=b\n")), AfterFailure::Hangs);
        assert_eq!(after_failure(&config("kernel=b\nerrtimeout=0\n")), AfterFailure::ReturnsAfter(0));
    }

    #[test]
    fn cmdline_order() {
        assert_eq!(kernel_cmdline("no-auto-partition", "7f00", true), "no-auto-partition bootUUID=7f00 rollback");
        assert_eq!(kernel_cmdline("", "7f00", false), "bootUUID=7f00");
    }

    #[test]
    fn kernel_check() {
        assert!(check_kernel(b"not an elf at all, just some bytes that are long enough to pass the size check....")
            .is_err());
        let mut elf = vec![0u8; 4096];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        assert!(check_kernel(&elf).is_err(), "no Multiboot header");
        elf[256..260].copy_from_slice(&MULTIBOOT_MAGIC.to_le_bytes());
        elf[260..264].copy_from_slice(&3u32.to_le_bytes());
        elf[264..268].copy_from_slice(&(0u32.wrapping_sub(MULTIBOOT_MAGIC).wrapping_sub(3)).to_le_bytes());
        assert!(check_kernel(&elf).is_ok());
        elf[264] ^= 1;
        assert!(check_kernel(&elf).is_err(), "bad checksum");
    }
}
