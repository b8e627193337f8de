//! The kernel module `b.b00`: the smallest file the real loader accepts as a
//! kernel.
//!
//! mboot rejects a module 0 that is not a valid Multiboot or ESXBootInfo ELF
//! kernel ("kernel is either invalid or corrupted."). [`kernel_elf`] makes an
//! ELF64 x86-64 executable that carries a Multiboot (v1) header, loads as one
//! segment, and names its build in a string. Its bytes depend only on the
//! version and build strings. Layout (file offsets; virtual = physical =
//! [`LOAD_ADDRESS`] + offset):
//!
//! ```text
//! 0x0000  ELF header (64 bytes)
//! 0x0040  program header: PT_LOAD, offset 0, R+X, align 4 KiB (56 bytes)
//! 0x1000  .text:   Multiboot header (magic, flags, checksum; 12 bytes)
//! 0x1010           entry: cli; hlt; jmp back to hlt
//! 0x1040  .rodata: "VMware ESXi <version> build-<build>\0", copyright
//!         .shstrtab
//!         section headers (8-aligned): null, .text, .rodata, .shstrtab
//! ```
//!
//! The PT_LOAD segment covers the headers, `.text` and `.rodata`. Multiboot
//! flags are 0x3 (page-align modules, memory map); bit 16 is clear, so a
//! loader uses the ELF program headers, not the header's address fields.

/// The Multiboot (v1) header magic.
pub const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;

/// Multiboot header flags: bit 0 (modules page aligned) and bit 1 (memory
/// information). Bit 16 ("address fields valid") is clear: use the ELF.
pub const MULTIBOOT_FLAGS: u32 = 0x0000_0003;

/// Physical and virtual address of file offset 0 (1 MiB, as kernels load).
pub const LOAD_ADDRESS: u64 = 0x0010_0000;

/// File offset of `.text`, which starts with the Multiboot header.
const TEXT_OFFSET: usize = 0x1000;
/// File offset of the entry point inside `.text`.
const ENTRY_OFFSET: usize = 0x1010;
/// File offset of `.rodata`.
const RODATA_OFFSET: usize = 0x1040;

/// Instructions at the entry point: `cli; hlt; jmp -3` (back to `hlt`).
const ENTRY_CODE: [u8; 4] = [0xfa, 0xf4, 0xeb, 0xfd];

/// The section names, NUL separated, and each name's offset in it.
const SHSTRTAB: &[u8] = b"\0.text\0.rodata\0.shstrtab\0";
const NAME_TEXT: u32 = 1;
const NAME_RODATA: u32 = 7;
const NAME_SHSTRTAB: u32 = 15;

/// The checksum that makes magic + flags + checksum == 0 (mod 2^32).
pub const fn multiboot_checksum(flags: u32) -> u32 {
    0u32.wrapping_sub(MULTIBOOT_MAGIC).wrapping_sub(flags)
}

/// The build string stored in `.rodata`.
pub fn build_string(version: &str, build: &str) -> String {
    format!("VMware ESXi {version} build-{build}")
}

/// Writes little-endian fields into a byte vector at fixed offsets.
struct Put<'a>(&'a mut [u8]);

impl Put<'_> {
    fn bytes(&mut self, at: usize, b: &[u8]) {
        if let Some(dst) = self.0.get_mut(at..at + b.len()) {
            dst.copy_from_slice(b);
        }
    }
    fn u16(&mut self, at: usize, v: u16) {
        self.bytes(at, &v.to_le_bytes());
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.bytes(at, &v.to_le_bytes());
    }
    fn u64(&mut self, at: usize, v: u64) {
        self.bytes(at, &v.to_le_bytes());
    }
}

/// One `Elf64_Shdr`.
struct Section {
    name: u32,
    kind: u32,
    flags: u64,
    offset: usize,
    size: usize,
    align: u64,
}

/// A small but valid ELF64 x86-64 executable (ET_EXEC, one PT_LOAD segment,
/// entry inside it) carrying a Multiboot (v1) header at file offset 0x1000,
/// a few bytes of code, and the string "VMware ESXi `<version>`
/// build-`<build>`". About 4.5 KiB; deterministic.
pub fn kernel_elf(version: &str, build: &str) -> Vec<u8> {
    let mut rodata = build_string(version, build).into_bytes();
    rodata.push(0);
    rodata.extend_from_slice(b"Copyright (c) VMware, Inc. All rights reserved.\0");

    let shstrtab_offset = RODATA_OFFSET + rodata.len();
    let shdr_offset = (shstrtab_offset + SHSTRTAB.len()).next_multiple_of(8);
    let sections = [
        Section { name: 0, kind: 0, flags: 0, offset: 0, size: 0, align: 0 },
        Section {
            name: NAME_TEXT,
            kind: 1,  // SHT_PROGBITS
            flags: 6, // SHF_ALLOC | SHF_EXECINSTR
            offset: TEXT_OFFSET,
            size: ENTRY_OFFSET + ENTRY_CODE.len() - TEXT_OFFSET,
            align: 16,
        },
        Section {
            name: NAME_RODATA,
            kind: 1,  // SHT_PROGBITS
            flags: 2, // SHF_ALLOC
            offset: RODATA_OFFSET,
            size: rodata.len(),
            align: 8,
        },
        Section {
            name: NAME_SHSTRTAB,
            kind: 3, // SHT_STRTAB
            flags: 0,
            offset: shstrtab_offset,
            size: SHSTRTAB.len(),
            align: 1,
        },
    ];
    let total = shdr_offset + 64 * sections.len();
    let load_size = shstrtab_offset as u64;

    let mut file = vec![0u8; total];
    let mut w = Put(&mut file);

    // ELF header.
    w.bytes(0, &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]); // ELF64, LSB, v1, SysV
    w.u16(16, 2); // ET_EXEC
    w.u16(18, 62); // EM_X86_64
    w.u32(20, 1); // EV_CURRENT
    w.u64(24, LOAD_ADDRESS + ENTRY_OFFSET as u64);
    w.u64(32, 64); // e_phoff
    w.u64(40, shdr_offset as u64); // e_shoff
    w.u32(48, 0); // e_flags
    w.u16(52, 64); // e_ehsize
    w.u16(54, 56); // e_phentsize
    w.u16(56, 1); // e_phnum
    w.u16(58, 64); // e_shentsize
    w.u16(60, 4); // e_shnum
    w.u16(62, 3); // e_shstrndx

    // Program header: one PT_LOAD from file offset 0.
    w.u32(64, 1); // PT_LOAD
    w.u32(68, 5); // PF_R | PF_X
    w.u64(72, 0); // p_offset
    w.u64(80, LOAD_ADDRESS); // p_vaddr
    w.u64(88, LOAD_ADDRESS); // p_paddr
    w.u64(96, load_size); // p_filesz
    w.u64(104, load_size); // p_memsz
    w.u64(112, 0x1000); // p_align

    // .text: the Multiboot header, then the entry code.
    w.u32(TEXT_OFFSET, MULTIBOOT_MAGIC);
    w.u32(TEXT_OFFSET + 4, MULTIBOOT_FLAGS);
    w.u32(TEXT_OFFSET + 8, multiboot_checksum(MULTIBOOT_FLAGS));
    w.bytes(ENTRY_OFFSET, &ENTRY_CODE);

    w.bytes(RODATA_OFFSET, &rodata);
    w.bytes(shstrtab_offset, SHSTRTAB);

    for (i, s) in sections.iter().enumerate() {
        let at = shdr_offset + 64 * i;
        let addr = if s.flags & 2 != 0 { LOAD_ADDRESS + s.offset as u64 } else { 0 };
        w.u32(at, s.name);
        w.u32(at + 4, s.kind);
        w.u64(at + 8, s.flags);
        w.u64(at + 16, addr);
        w.u64(at + 24, s.offset as u64);
        w.u64(at + 32, s.size as u64);
        w.u64(at + 48, s.align);
    }
    file
}

/// The file offset of the first valid Multiboot header (4-byte aligned,
/// magic and checksum right) in the first 8192 bytes of `file`, as a
/// Multiboot loader searches for it.
pub fn find_multiboot_header(file: &[u8]) -> Option<usize> {
    let window = &file[..file.len().min(8192)];
    window.chunks_exact(4).enumerate().find_map(|(i, _)| {
        let word = |k: usize| -> Option<u32> {
            let b = window.get(i * 4 + k * 4..i * 4 + k * 4 + 4)?;
            Some(u32::from_le_bytes(b.try_into().ok()?))
        };
        let (magic, flags, sum) = (word(0)?, word(1)?, word(2)?);
        (magic == MULTIBOOT_MAGIC && magic.wrapping_add(flags).wrapping_add(sum) == 0).then_some(i * 4)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn multiboot_header_is_found_with_valid_checksum() {
        let elf = kernel_elf("6.7.0", "8169922");
        let at = find_multiboot_header(&elf).expect("multiboot header");
        assert_eq!(at, TEXT_OFFSET);
        assert_eq!(at % 4, 0);
        assert!(at + 12 <= 8192);
        let flags = u32::from_le_bytes(elf[at + 4..at + 8].try_into().unwrap());
        assert_eq!(flags & (1 << 16), 0, "address fields must not be used");
    }

    #[test]
    fn elf_header_fields() {
        let elf = kernel_elf("6.7.0", "8169922");
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf[4], 2, "ELFCLASS64");
        assert_eq!(u16::from_le_bytes([elf[16], elf[17]]), 2, "ET_EXEC");
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 62, "EM_X86_64");
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        let filesz = u64::from_le_bytes(elf[96..104].try_into().unwrap());
        assert!(entry >= LOAD_ADDRESS && entry < LOAD_ADDRESS + filesz, "entry inside PT_LOAD");
        assert!(elf.len() > 4096 && elf.len() < 8192, "a few KiB: {}", elf.len());
    }

    #[test]
    fn names_the_build_and_is_deterministic() {
        let elf = kernel_elf("6.7.0", "8169922");
        let needle = b"VMware ESXi 6.7.0 build-8169922\0";
        assert!(elf.windows(needle.len()).any(|w| w == needle));
        assert_eq!(elf, kernel_elf("6.7.0", "8169922"));
        assert_ne!(elf, kernel_elf("6.7.0", "8169923"));
    }

    #[test]
    fn odd_strings_do_not_panic() {
        for (v, b) in [("", ""), ("\0\0", "ü"), (&*"9".repeat(100_000), "x")] {
            let elf = kernel_elf(v, b);
            assert_eq!(find_multiboot_header(&elf), Some(TEXT_OFFSET));
        }
        assert_eq!(find_multiboot_header(&[]), None);
        assert_eq!(find_multiboot_header(&[0x02, 0xb0, 0xad, 0x1b]), None);
    }

    #[test]
    fn readelf_accepts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.b00");
        std::fs::write(&path, kernel_elf("6.7.0", "8169922")).unwrap();
        let out = match Command::new("readelf").arg("-h").arg("-l").arg("-S").arg("-W").arg(&path).output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("readelf not installed; skipping");
                return;
            }
            Err(e) => panic!("readelf: {e}"),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "readelf failed: {stderr}");
        assert!(stderr.trim().is_empty(), "readelf warnings: {stderr}");
        assert!(!stdout.contains("Warning"), "{stdout}");
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        };
        assert_eq!(field("Class:"), "ELF64");
        assert!(field("Type:").starts_with("EXEC"), "{stdout}");
        assert!(field("Machine:").contains("X86-64"), "{stdout}");
        assert!(stdout.contains("LOAD"), "{stdout}");
        assert!(stdout.contains(".text") && stdout.contains(".rodata"), "{stdout}");
    }
}
