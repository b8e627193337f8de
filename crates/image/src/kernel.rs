//! The kernel module `b.b00`: a tiny real Multiboot (v1) kernel that the
//! real loader accepts and a real x86 machine runs.
//!
//! mboot rejects a module 0 that is not a valid Multiboot or ESXBootInfo ELF
//! kernel ("kernel is either invalid or corrupted."). [`kernel_elf`] makes an
//! ELF64 x86-64 executable that carries a Multiboot (v1) header, loads as one
//! segment, runs the guest code of `crates/image/guest/multiboot_guest.s`
//! (built into `multiboot_guest.bin`, embedded here; a test rebuilds it with
//! binutils and compares), and names its build in a string. Its bytes depend
//! only on the version and build strings. Layout (file offsets; virtual =
//! physical = [`LOAD_ADDRESS`] + offset):
//!
//! ```text
//! 0x0000  ELF header (64 bytes)
//! 0x0040  program header: PT_LOAD, offset 0, R+W+X, align 4 KiB (56 bytes)
//! 0x1000  .text:   Multiboot header with the address fields (32 bytes)
//! 0x1020           entry: the guest code (32-bit protected mode)
//!         .rodata: "VMware ESXi <version> build-<build>\0", copyright (16-aligned)
//!         .shstrtab
//!         section headers (8-aligned): null, .text, .rodata, .shstrtab
//! memory  up to SCRATCH_END: the guest's CRC table and stack (zeroed bss)
//! ```
//!
//! **Why the a.out-kludge fields (flag bit 16), and 32-bit code.** A
//! Multiboot v1 loader enters the kernel in 32-bit protected mode, whatever
//! the ELF class, so the entry code is i386 code. ESXi's kernel is an ELF64
//! x86-64 file, and so is this one; but QEMU's own Multiboot loader
//! (`-kernel`) refuses a 64-bit ELF ("Cannot load x86-64 image, give a
//! 32bit one") unless the header's address fields are valid (bit 16), in
//! which case it ignores the ELF headers and loads the file by those
//! fields. So the header sets bit 16 and its fields describe the same
//! placement as the PT_LOAD segment: a loader that reads the ELF (as
//! mboot's check does) and one that reads the header agree on every byte's
//! address.
//!
//! What the guest does in the machine, and the report it prints on COM1, is
//! described in `multiboot_guest.s` and parsed by
//! `visorsim_tools::qemu_system::GuestReport`.

/// The Multiboot (v1) header magic.
pub const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;

/// Multiboot header flags: bit 0 (modules page aligned), bit 1 (memory
/// information) and bit 16 (the header's address fields are valid: QEMU's
/// loader needs them for an ELF64 file; see the module docs).
pub const MULTIBOOT_FLAGS: u32 = 0x0001_0003;

/// Physical and virtual address of file offset 0 (1 MiB, as kernels load).
pub const LOAD_ADDRESS: u64 = 0x0010_0000;

/// The guest's scratch memory (CRC table, variables, stack), fixed by
/// `multiboot_guest.s`: `SCRATCH`..`SCRATCH_END`, declared as bss so a
/// loader keeps modules out of it. With an absurdly long version string the
/// file itself reaches past `SCRATCH`; the scratch then overlays `.rodata`,
/// which the guest never reads.
pub const SCRATCH: u64 = 0x0012_0000;
/// End of the guest's scratch memory.
pub const SCRATCH_END: u64 = SCRATCH + 0x2000;

/// The guest code, assembled from `guest/multiboot_guest.s` and linked at
/// [`LOAD_ADDRESS`] + [`ENTRY_OFFSET`] (see the build commands there).
pub const GUEST_CODE: &[u8] = include_bytes!("../guest/multiboot_guest.bin");

/// The guest code's assembly source, for the test that rebuilds it.
pub const GUEST_SOURCE: &str = include_str!("../guest/multiboot_guest.s");

/// File offset of `.text`, which starts with the Multiboot header.
const TEXT_OFFSET: usize = 0x1000;
/// File offset of the entry point inside `.text`: right after the header.
pub const ENTRY_OFFSET: usize = 0x1020;

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
/// the guest code right after it, and the string "VMware ESXi `<version>`
/// build-`<build>`". About 5 KiB; deterministic.
pub fn kernel_elf(version: &str, build: &str) -> Vec<u8> {
    let mut rodata = build_string(version, build).into_bytes();
    rodata.push(0);
    rodata.extend_from_slice(b"Copyright (c) VMware, Inc. All rights reserved.\0");

    let rodata_offset = (ENTRY_OFFSET + GUEST_CODE.len()).next_multiple_of(16);
    let shstrtab_offset = rodata_offset + rodata.len();
    let shdr_offset = (shstrtab_offset + SHSTRTAB.len()).next_multiple_of(8);
    let sections = [
        Section { name: 0, kind: 0, flags: 0, offset: 0, size: 0, align: 0 },
        Section {
            name: NAME_TEXT,
            kind: 1,  // SHT_PROGBITS
            flags: 6, // SHF_ALLOC | SHF_EXECINSTR
            offset: TEXT_OFFSET,
            size: ENTRY_OFFSET + GUEST_CODE.len() - TEXT_OFFSET,
            align: 16,
        },
        Section {
            name: NAME_RODATA,
            kind: 1,  // SHT_PROGBITS
            flags: 2, // SHF_ALLOC
            offset: rodata_offset,
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
    let load_end = LOAD_ADDRESS + load_size;
    let bss_end = load_end.max(SCRATCH_END);

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
    w.u32(68, 7); // PF_R | PF_W | PF_X (the guest writes its scratch)
    w.u64(72, 0); // p_offset
    w.u64(80, LOAD_ADDRESS); // p_vaddr
    w.u64(88, LOAD_ADDRESS); // p_paddr
    w.u64(96, load_size); // p_filesz
    w.u64(104, bss_end - LOAD_ADDRESS); // p_memsz: through the scratch
    w.u64(112, 0x1000); // p_align

    // .text: the Multiboot header with its address fields (the same
    // placement as the PT_LOAD segment), then the guest code.
    // Every address lies below 4 GiB unless a version string is gigabytes long.
    let address = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    w.u32(TEXT_OFFSET, MULTIBOOT_MAGIC);
    w.u32(TEXT_OFFSET + 4, MULTIBOOT_FLAGS);
    w.u32(TEXT_OFFSET + 8, multiboot_checksum(MULTIBOOT_FLAGS));
    w.u32(TEXT_OFFSET + 12, address(LOAD_ADDRESS + TEXT_OFFSET as u64)); // header_addr
    w.u32(TEXT_OFFSET + 16, address(LOAD_ADDRESS)); // load_addr: file offset 0
    w.u32(TEXT_OFFSET + 20, address(load_end)); // load_end_addr
    w.u32(TEXT_OFFSET + 24, address(bss_end)); // bss_end_addr
    w.u32(TEXT_OFFSET + 28, address(LOAD_ADDRESS + ENTRY_OFFSET as u64)); // entry_addr
    w.bytes(ENTRY_OFFSET, GUEST_CODE);

    w.bytes(rodata_offset, &rodata);
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
        assert_eq!(flags, MULTIBOOT_FLAGS);
        assert_ne!(flags & (1 << 16), 0, "address fields valid: QEMU loads an ELF64 only so");
        let field = |k: usize| u64::from(u32::from_le_bytes(elf[at + 4 * k..at + 4 * k + 4].try_into().unwrap()));
        let filesz = u64::from_le_bytes(elf[96..104].try_into().unwrap());
        let memsz = u64::from_le_bytes(elf[104..112].try_into().unwrap());
        assert_eq!(field(3), LOAD_ADDRESS + at as u64, "header_addr");
        assert_eq!(field(4), LOAD_ADDRESS, "load_addr: file offset 0, as PT_LOAD");
        assert_eq!(field(5), LOAD_ADDRESS + filesz, "load_end_addr: PT_LOAD's file size");
        assert_eq!(field(6), LOAD_ADDRESS + memsz, "bss_end_addr: PT_LOAD's memory size");
        assert!(field(6) >= SCRATCH_END, "the guest's scratch is inside the kernel");
        assert_eq!(field(7), LOAD_ADDRESS + ENTRY_OFFSET as u64, "entry_addr");
        assert_eq!(&elf[ENTRY_OFFSET..ENTRY_OFFSET + GUEST_CODE.len()], GUEST_CODE);
    }

    /// The embedded guest code is what binutils makes of the committed
    /// source, with the commands the source names.
    #[test]
    fn guest_code_is_rebuilt_from_its_source() {
        let Some(assembler) = visorsim_testkit::require_tool!("as", "binutils") else { return };
        let Some(linker) = visorsim_testkit::require_tool!("ld", "binutils") else { return };
        let dir = tempfile::tempdir().unwrap();
        let (source, object, flat) = (dir.path().join("g.s"), dir.path().join("g.o"), dir.path().join("g.bin"));
        std::fs::write(&source, GUEST_SOURCE).unwrap();
        let text = format!("-Ttext={:#x}", LOAD_ADDRESS + ENTRY_OFFSET as u64);
        let run = |program: &std::path::Path, args: &[&std::ffi::OsStr]| {
            let out = Command::new(program).args(args).output().expect("running binutils");
            assert!(out.status.success(), "{} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr));
        };
        run(
            &assembler,
            &["--32".as_ref(), "-mx86-used-note=no".as_ref(), "-o".as_ref(), object.as_os_str(), source.as_os_str()],
        );
        run(
            &linker,
            &[
                "-m".as_ref(),
                "elf_i386".as_ref(),
                "--build-id=none".as_ref(),
                text.as_ref(),
                "--oformat".as_ref(),
                "binary".as_ref(),
                "-o".as_ref(),
                flat.as_os_str(),
                object.as_os_str(),
            ],
        );
        let rebuilt = std::fs::read(&flat).unwrap();
        assert!(
            rebuilt == GUEST_CODE,
            "guest/multiboot_guest.bin is stale: rebuild it with the commands in multiboot_guest.s"
        );
        assert!(GUEST_SOURCE.contains("0x101020"), "the source names the link address");
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
        assert_eq!(entry, LOAD_ADDRESS + ENTRY_OFFSET as u64);
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
