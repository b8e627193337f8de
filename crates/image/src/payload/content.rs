//! The content generator: [`fill_system_bytes`], bytes that look and
//! compress like x86-64 system binaries, each a pure function of
//! `(seed, offset)`.
//!
//! ```text
//! stream offset ─► page (4 KiB, its own splitmix64 generator, seeded by
//!                  seed and page number)
//!                  region = 8 pages (32 KiB), one section kind, drawn by weight:
//!   Code 106   prologue, 16–143 instruction idioms or repeats, epilogue, int3 pad
//!   Strings 34 NUL-terminated identifiers, paths, messages
//!   Symbols 22 Elf64_Sym entries     Relocs 18   Elf64_Rela entries
//!   Pointers 16 address tables       Sparse 16   zeros with scattered values
//!   Zero 36    padding               Entropy 8   incompressible blobs
//! ```
//!
//! Weights are out of 256, tuned so that gzip -6 gives about 3:1. Changing
//! any byte this module produces changes every image: bump
//! [`GENERATOR_VERSION`](super::GENERATOR_VERSION) with it.

/// Bytes per independently seeded page.
const PAGE: usize = 4096;
/// Pages per region; a region has one section kind.
const REGION_PAGES: u64 = 8;
/// Generators may write up to this many bytes past the page end.
const SLACK: usize = 128;

/// A page under construction, with room for the generators' overshoot.
type PageBuf = [u8; PAGE + SLACK];

/// The section kinds of a binary that the generator imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// x86-64 instructions.
    Code,
    /// NUL-terminated identifiers, paths and messages (`.strtab`, `.rodata`).
    Strings,
    /// `Elf64_Sym` entries.
    Symbols,
    /// `Elf64_Rela` entries.
    Relocs,
    /// Tables of code and data addresses (`.data.rel.ro`, vtables, GOT).
    Pointers,
    /// Mostly zero data with scattered values (`.data`).
    Sparse,
    /// Zero padding between sections and files.
    Zero,
    /// Compressed or encrypted blobs (firmware, signatures).
    Entropy,
}

/// Kind weights, out of 256. Tuned so that gzip -6 gives about 3:1.
const KIND_WEIGHTS: [(Kind, u32); 8] = [
    (Kind::Code, 106),
    (Kind::Strings, 34),
    (Kind::Symbols, 22),
    (Kind::Relocs, 18),
    (Kind::Pointers, 16),
    (Kind::Sparse, 16),
    (Kind::Zero, 36),
    (Kind::Entropy, 8),
];

/// The splitmix64 finaliser: a bijective 64-bit mix.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A splitmix64 stream: tiny, fast, and good enough for filler bytes.
struct Stream(u64);

impl Stream {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
}

/// The section kind of the region holding `page`.
fn region_kind(seed: u64, page: u64) -> Kind {
    let roll = mix64(seed ^ mix64((page / REGION_PAGES) ^ 0x5265_6769_6f6e_4b64)) & 0xff;
    let mut acc = 0u64;
    for (kind, weight) in KIND_WEIGHTS {
        acc += u64::from(weight);
        if roll < acc {
            return kind;
        }
    }
    Kind::Code
}

/// Generates page number `page` of the stream of `seed` into `buf[..PAGE]`.
fn fill_page(seed: u64, page: u64, buf: &mut PageBuf) {
    let kind = region_kind(seed, page);
    let mut rng = Stream(mix64(seed.wrapping_add(mix64(page))));
    fill_kind(kind, &mut rng, buf);
}

/// Generates one page of `kind` into `buf[..PAGE]` (the slack may be
/// overwritten).
fn fill_kind(kind: Kind, rng: &mut Stream, buf: &mut PageBuf) {
    match kind {
        Kind::Code => gen_code(rng, buf),
        Kind::Strings => gen_strings(rng, buf),
        Kind::Symbols => gen_symbols(rng, buf),
        Kind::Relocs => gen_relocs(rng, buf),
        Kind::Pointers => gen_pointers(rng, buf),
        Kind::Sparse => gen_sparse(rng, buf),
        Kind::Zero => buf[..PAGE].fill(0),
        Kind::Entropy => gen_entropy(rng, buf),
    }
}

/// Fills `out` with deterministic content resembling x86-64 system binaries
/// and libraries: code-like byte runs, repeated instruction idioms, symbol
/// and string tables, zero padding, some high-entropy sections. gzip -6
/// compresses it about [`MEASURED_RATIO`](super::MEASURED_RATIO) to 1.
///
/// `out[i]` is the byte at stream offset `offset + i` of the stream of
/// `seed`, a pure function of `(seed, offset + i)`: any split of a range
/// into calls gives the same bytes. Offsets wrap around at 2^64.
pub fn fill_system_bytes(seed: u64, offset: u64, out: &mut [u8]) {
    let mut page_buf: PageBuf = [0; PAGE + SLACK];
    let mut done = 0usize;
    let mut at = offset;
    const PAGE_U64: u64 = PAGE as u64;
    while done < out.len() {
        let page = at / PAGE_U64;
        let in_page = usize::try_from(at % PAGE_U64).unwrap_or(0);
        let n = (PAGE - in_page).min(out.len() - done);
        fill_page(seed, page, &mut page_buf);
        out[done..done + n].copy_from_slice(&page_buf[in_page..in_page + n]);
        done += n;
        at = at.wrapping_add(n as u64);
    }
}

/// One x86-64 instruction idiom: a byte template (little-endian in a
/// `u128`), its length, and a random field `mask << shift` XORed into it
/// (an immediate or displacement).
#[derive(Clone, Copy)]
struct Idiom {
    template: u128,
    len: usize,
    shift: u32,
    mask: u64,
}

/// An idiom from its bytes, with random `mask` bits at byte `imm_at`.
const fn op(bytes: &[u8], imm_at: u32, mask: u64) -> Idiom {
    let mut template = 0u128;
    let mut i = 0;
    while i < bytes.len() {
        template |= (bytes[i] as u128) << (8 * i);
        i += 1;
    }
    Idiom { template, len: bytes.len(), shift: imm_at * 8, mask }
}

/// 64 idioms; common ones appear several times, which is their weight.
static IDIOMS: [Idiom; 64] = [
    op(&[0x48, 0x89, 0xc7], 0, 0),                                 // mov rdi, rax
    op(&[0x48, 0x89, 0xde], 0, 0),                                 // mov rsi, rbx
    op(&[0x4c, 0x89, 0xe7], 0, 0),                                 // mov rdi, r12
    op(&[0x4c, 0x89, 0xf6], 0, 0),                                 // mov rsi, r14
    op(&[0x49, 0x89, 0xfc], 0, 0),                                 // mov r12, rdi
    op(&[0x48, 0x89, 0xc3], 0, 0),                                 // mov rbx, rax
    op(&[0x89, 0xc2], 0, 0),                                       // mov edx, eax
    op(&[0x44, 0x89, 0xe6], 0, 0),                                 // mov esi, r12d
    op(&[0x48, 0x8b, 0x45, 0x00], 3, 0xf8),                        // mov rax, [rbp+d8]
    op(&[0x48, 0x89, 0x45, 0x00], 3, 0xf8),                        // mov [rbp+d8], rax
    op(&[0x48, 0x8b, 0x7d, 0x00], 3, 0xf8),                        // mov rdi, [rbp+d8]
    op(&[0x48, 0x8b, 0x43, 0x00], 3, 0x78),                        // mov rax, [rbx+d8]
    op(&[0x48, 0x89, 0x43, 0x00], 3, 0x78),                        // mov [rbx+d8], rax
    op(&[0x8b, 0x43, 0x00], 2, 0x7c),                              // mov eax, [rbx+d8]
    op(&[0x89, 0x43, 0x00], 2, 0x7c),                              // mov [rbx+d8], eax
    op(&[0x48, 0x8b, 0x44, 0x24, 0x00], 4, 0x78),                  // mov rax, [rsp+d8]
    op(&[0x48, 0x89, 0x44, 0x24, 0x00], 4, 0x78),                  // mov [rsp+d8], rax
    op(&[0x48, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00], 3, 0x0f_fff8), // mov rax, [rip+d32]
    op(&[0x48, 0x8d, 0x3d, 0x00, 0x00, 0x00, 0x00], 3, 0x0f_ffff), // lea rdi, [rip+d32]
    op(&[0x48, 0x8d, 0x35, 0x00, 0x00, 0x00, 0x00], 3, 0x0f_ffff), // lea rsi, [rip+d32]
    op(&[0xe8, 0x00, 0x00, 0x00, 0x00], 1, 0x0f_fff0),             // call rel32 (forward)
    op(&[0xe8, 0x00, 0x00, 0xf0, 0xff], 1, 0x0f_fff0),             // call rel32 (backward)
    op(&[0xe8, 0x00, 0x00, 0x00, 0x00], 1, 0x0f_fff0),             // call rel32 (forward)
    op(&[0xff, 0x15, 0x00, 0x00, 0x00, 0x00], 2, 0x0f_fff8),       // call [rip+d32]
    op(&[0xff, 0xd0], 0, 0),                                       // call rax
    op(&[0x85, 0xc0], 0, 0),                                       // test eax, eax
    op(&[0x48, 0x85, 0xc0], 0, 0),                                 // test rax, rax
    op(&[0x85, 0xc0], 0, 0),                                       // test eax, eax
    op(&[0x74, 0x00], 1, 0x3f),                                    // je rel8
    op(&[0x75, 0x00], 1, 0x3f),                                    // jne rel8
    op(&[0x74, 0x00], 1, 0x3f),                                    // je rel8
    op(&[0xeb, 0x00], 1, 0x7f),                                    // jmp rel8
    op(&[0x0f, 0x84, 0x00, 0x00, 0x00, 0x00], 2, 0x0fff),          // je rel32
    op(&[0x0f, 0x85, 0x00, 0x00, 0x00, 0x00], 2, 0x0fff),          // jne rel32
    op(&[0xe9, 0x00, 0x00, 0x00, 0x00], 1, 0xffff),                // jmp rel32
    op(&[0x31, 0xc0], 0, 0),                                       // xor eax, eax
    op(&[0x31, 0xd2], 0, 0),                                       // xor edx, edx
    op(&[0x31, 0xf6], 0, 0),                                       // xor esi, esi
    op(&[0xb8, 0x00, 0x00, 0x00, 0x00], 1, 0x1f),                  // mov eax, imm32
    op(&[0xbf, 0x00, 0x00, 0x00, 0x00], 1, 0x3ff),                 // mov edi, imm32
    op(&[0xba, 0x00, 0x00, 0x00, 0x00], 1, 0xff),                  // mov edx, imm32
    op(&[0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff], 0, 0),         // mov rax, -1
    op(&[0x48, 0x39, 0xd0], 0, 0),                                 // cmp rax, rdx
    op(&[0x48, 0x83, 0xf8, 0x00], 3, 0x1f),                        // cmp rax, imm8
    op(&[0x83, 0xf8, 0x00], 2, 0x0f),                              // cmp eax, imm8
    op(&[0x3c, 0x00], 1, 0x7f),                                    // cmp al, imm8
    op(&[0x0f, 0xb6, 0xc0], 0, 0),                                 // movzx eax, al
    op(&[0x48, 0x63, 0xd0], 0, 0),                                 // movsxd rdx, eax
    op(&[0x48, 0x01, 0xd0], 0, 0),                                 // add rax, rdx
    op(&[0x48, 0x83, 0xc0, 0x00], 3, 0x18),                        // add rax, imm8
    op(&[0x48, 0xc1, 0xe0, 0x00], 3, 0x07),                        // shl rax, imm8
    op(&[0x83, 0xe0, 0x00], 2, 0x3f),                              // and eax, imm8
    op(&[0x48, 0x83, 0xec, 0x00], 3, 0x78),                        // sub rsp, imm8
    op(&[0x48, 0x83, 0xc4, 0x00], 3, 0x78),                        // add rsp, imm8
    op(&[0x53], 0, 0),                                             // push rbx
    op(&[0x5b], 0, 0),                                             // pop rbx
    op(&[0x41, 0x54], 0, 0),                                       // push r12
    op(&[0x41, 0x5c], 0, 0),                                       // pop r12
    op(&[0x0f, 0x1f, 0x40, 0x00], 0, 0),                           // nop dword [rax]
    op(&[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00], 0, 0),               // nop word [rax+rax]
    op(&[0xc7, 0x45, 0x00, 0x00, 0x00, 0x00, 0x00], 2, 0x0f_f8),   // mov dword [rbp+d8], imm32
    op(&[0x48, 0x8b, 0x00], 2, 0x3f),                              // mov rax, [rax] (modrm varies)
    op(&[0x89, 0xc7], 0, 0),                                       // mov edi, eax
    op(&[0xf3, 0xc3], 0, 0),                                       // rep ret
];

/// Function epilogue: pop rbx; pop r12; leave; ret.
const EPILOGUE: Idiom = op(&[0x5b, 0x41, 0x5c, 0xc9, 0xc3], 0, 0);
/// Function prologue: push rbp; mov rbp, rsp; push r12; push rbx;
/// sub rsp, imm8.
const PROLOGUE: Idiom = op(&[0x55, 0x48, 0x89, 0xe5, 0x41, 0x54, 0x53, 0x48, 0x83, 0xec, 0x00], 10, 0x78);

/// Out of 256: how often [`gen_code`] repeats earlier bytes instead of
/// emitting a new idiom.
const CODE_REPEAT: u8 = 48;

/// Writes `idiom` at `pos` with random field bits `r`; returns the new
/// position. Writes 16 bytes; `pos` must leave room for them.
#[inline]
fn put_idiom(buf: &mut PageBuf, pos: usize, idiom: &Idiom, r: u64) -> usize {
    let v = idiom.template ^ (u128::from(r & idiom.mask) << idiom.shift);
    buf[pos..pos + 16].copy_from_slice(&v.to_le_bytes());
    pos + idiom.len
}

/// x86-64 functions: prologue, 16–143 instruction idioms, epilogue, int3
/// padding to a 16-byte boundary.
fn gen_code(rng: &mut Stream, buf: &mut PageBuf) {
    let mut pos = 0;
    let mut left = u64::from(rng.next().to_le_bytes()[0] & 0x3f);
    while pos < PAGE {
        let r = rng.next();
        if left == 0 {
            pos = put_idiom(buf, pos, &EPILOGUE, 0);
            buf[pos..pos + 16].fill(0xcc);
            pos = (pos + 15) & !15;
            if pos >= PAGE {
                break;
            }
            pos = put_idiom(buf, pos, &PROLOGUE, r);
            left = 16 + ((r >> 32) & 0x7f);
            continue;
        }
        let b = r.to_le_bytes();
        // Either a new idiom or, sometimes, a repeated instruction sequence
        // (inlined helpers, unrolled loops, the same call setup): 6–21
        // bytes from 32 B to 2 KiB back, which are all this page's bytes.
        // Both are computed and one is kept, without a branch.
        let repeat = b[1] < CODE_REPEAT && pos >= 32;
        let dist = (32 + (usize::from(b[2]) | usize::from(b[3] & 7) << 8)).min(pos);
        let src = pos - dist;
        let old_lo = u128::from_le_bytes(buf[src..src + 16].try_into().unwrap_or_default());
        let old_hi = u128::from_le_bytes(buf[src + 16..src + 32].try_into().unwrap_or_default());
        let idiom = &IDIOMS[usize::from(b[0] & 63)];
        let new = idiom.template ^ (u128::from((r >> 8) & idiom.mask) << idiom.shift);
        let keep_old = 0u128.wrapping_sub(u128::from(repeat));
        let lo = (old_lo & keep_old) | (new & !keep_old);
        buf[pos..pos + 16].copy_from_slice(&lo.to_le_bytes());
        buf[pos + 16..pos + 32].copy_from_slice(&(old_hi & keep_old).to_le_bytes());
        let repeat = usize::from(repeat);
        pos += repeat * (6 + usize::from(b[4] & 15)) + (1 - repeat) * idiom.len;
        left -= 1;
    }
}

/// A word for identifiers, padded to 16 bytes for fixed-size copies.
#[derive(Clone, Copy)]
struct Word {
    bytes: [u8; 16],
    len: usize,
}

/// A word from text (at most 16 bytes); `cap` capitalises its first letter.
const fn word(s: &str, cap: bool) -> Word {
    let src = s.as_bytes();
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < src.len() && i < 16 {
        bytes[i] = src[i];
        i += 1;
    }
    if cap && bytes[0].is_ascii_lowercase() {
        bytes[0] -= 32;
    }
    Word { bytes, len: i }
}

/// 64 words of ESXi-ish identifiers.
const WORD_TEXT: [&str; 64] = [
    "vmk", "esx", "net", "scsi", "init", "get", "set", "lock", "unlock", "alloc", "free", "buffer", "module", "status",
    "config", "handle", "world", "heap", "timer", "queue", "device", "driver", "path", "volume", "vmfs", "nfs",
    "vmknic", "uplink", "port", "packet", "frame", "mem", "page", "map", "unmap", "create", "destroy", "open", "close",
    "read", "write", "flush", "sync", "async", "error", "failed", "sched", "cpu", "numa", "vsi", "node", "list",
    "entry", "count", "size", "index", "state", "event", "log", "warning", "info", "debug", "usb", "pci",
];

/// [`WORD_TEXT`] as words, lower case and capitalised.
static WORDS: [[Word; 64]; 2] = {
    let mut out = [[Word { bytes: [0; 16], len: 0 }; 64]; 2];
    let mut i = 0;
    while i < 64 {
        out[0][i] = word(WORD_TEXT[i], false);
        out[1][i] = word(WORD_TEXT[i], true);
        i += 1;
    }
    out
};

/// Path and message fragments for the string tables.
static FRAGMENTS: [Word; 8] = [
    word("/usr/lib/vmware/", false),
    word("/etc/vmware/", false),
    word("/var/log/", false),
    word(".so.1", false),
    word(": %s (%d)\n", false),
    word("Failed to ", false),
    word(" 0x%lx", false),
    word("VMK_", false),
];

/// Writes `w` at `pos`; returns the new position.
#[inline]
fn put_word(buf: &mut PageBuf, pos: usize, w: &Word) -> usize {
    buf[pos..pos + 16].copy_from_slice(&w.bytes);
    pos + w.len
}

/// NUL-terminated identifiers (snake_case and CamelCase), paths and
/// messages.
fn gen_strings(rng: &mut Stream, buf: &mut PageBuf) {
    // Symbols of one module share a prefix (`net_`, `VmkScsi`...).
    let first = rng.next().to_le_bytes();
    let mut pos = 0;
    // Branch-free where it is cheap: every slot is written, and the position
    // advances only for the ones in use.
    while pos < PAGE {
        let mut b = rng.next().to_le_bytes();
        let style = b[0] & 7;
        let words = 1 + usize::from((b[0] >> 3) & 3);
        let fragment = &FRAGMENTS[usize::from(b[1] & 7)];
        pos = put_word(buf, pos, fragment) - fragment.len * usize::from(style != 7);
        if style != 7 && b[1] & 1 == 0 {
            b[2] = first[0];
            if b[1] & 2 == 0 {
                b[3] = first[1];
            }
        }
        let case = usize::from(style == 1 || style == 2);
        let sep = if style == 7 { b' ' } else { b'_' };
        for (i, &sel) in b[2..6].iter().enumerate() {
            let used = usize::from(i < words);
            buf[pos] = sep;
            pos += usize::from(i > 0) * (1 - case) * used;
            // Zipf-like: words 0–15 are twice as likely as 16–63.
            let index = sel & (15 | ((sel & 0x40) >> 1) | ((sel & 0x40) >> 2));
            let w = &WORDS[case][usize::from(index)];
            buf[pos..pos + 16].copy_from_slice(&w.bytes);
            pos += w.len * used;
        }
        buf[pos] = 0;
        pos += 1;
    }
}

/// `Elf64_Sym` entries with increasing names and values.
fn gen_symbols(rng: &mut Stream, buf: &mut PageBuf) {
    let first = rng.next();
    let mut name = u32::from_le_bytes([0, first.to_le_bytes()[0], 0, 0]);
    let mut value = 0x0040_0000u64 + ((first >> 16) & 0x000f_fff0);
    let mut pos = 0;
    while pos < PAGE {
        let r = rng.next();
        let b = r.to_le_bytes();
        name = name.wrapping_add(8 + u32::from(b[0] & 31));
        value = value.wrapping_add(16 + (u64::from(b[1]) << 4));
        let info = [0x12u8, 0x12, 0x11, 0x02][usize::from(b[2] & 3)];
        let shndx = [0x0du8, 0x0d, 0x0f, 0x18][usize::from((b[2] >> 2) & 3)];
        let size = u64::from(b[3] & 0xf8) + u64::from(b[4] & 1) * 0x100;
        let mut e = [0u8; 24];
        e[0..4].copy_from_slice(&name.to_le_bytes());
        e[4] = info;
        e[6] = shndx;
        e[8..16].copy_from_slice(&value.to_le_bytes());
        e[16..24].copy_from_slice(&size.to_le_bytes());
        buf[pos..pos + 24].copy_from_slice(&e);
        pos += 24;
    }
}

/// `Elf64_Rela` entries: mostly R_X86_64_RELATIVE, some GLOB_DAT/JUMP_SLOT.
fn gen_relocs(rng: &mut Stream, buf: &mut PageBuf) {
    let first = rng.next();
    let mut offset = 0x0060_0000u64 + ((first >> 8) & 0x000f_fff8);
    let mut pos = 0;
    while pos < PAGE {
        let r = rng.next();
        let b = r.to_le_bytes();
        offset = offset.wrapping_add(if b[0] & 7 == 0 { u64::from(b[1] & 0xf8) } else { 8 });
        let (info, addend) = if b[0] & 0x30 == 0 {
            let sym = u64::from(b[2]) | u64::from(b[3] & 3) << 8;
            ((sym << 32) | [6u64, 7][usize::from(b[4] & 1)], 0u64)
        } else {
            (8, 0x0040_0000 + ((r >> 32) & 0x000f_fff0))
        };
        let mut e = [0u8; 24];
        e[0..8].copy_from_slice(&offset.to_le_bytes());
        e[8..16].copy_from_slice(&info.to_le_bytes());
        e[16..24].copy_from_slice(&addend.to_le_bytes());
        buf[pos..pos + 24].copy_from_slice(&e);
        pos += 24;
    }
}

/// Pointer kinds (by 3 random bits): NULL, kernel-space, user-space.
static POINTER_BASE: [u64; 8] =
    [0, 0xffff_ffff_8000_0000, 0xffff_ffff_8000_0000, 0x0040_0000, 0x0040_0000, 0x0040_0000, 0x0040_0000, 0x0040_0000];
/// The random address bits of each pointer kind.
static POINTER_MASK: [u64; 8] =
    [0, 0x00ff_fff0, 0x00ff_fff0, 0x000f_fff0, 0x000f_fff0, 0x000f_fff0, 0x000f_fff0, 0x000f_fff0];

/// 64-bit addresses into code and data, with some NULL slots.
fn gen_pointers(rng: &mut Stream, buf: &mut PageBuf) {
    let mut pos = 0;
    while pos < PAGE {
        let r = rng.next();
        let b = r.to_le_bytes();
        let kind = usize::from(b[0] & 7);
        let p = POINTER_BASE[kind] | ((r >> 8) & POINTER_MASK[kind]);
        buf[pos..pos + 8].copy_from_slice(&p.to_le_bytes());
        pos += 8;
    }
}

/// Zeros with a scattered 32-bit value every 16–271 bytes.
fn gen_sparse(rng: &mut Stream, buf: &mut PageBuf) {
    buf[..PAGE].fill(0);
    let mut pos = 0;
    loop {
        let r = rng.next();
        let b = r.to_le_bytes();
        pos += 16 + usize::from(b[0]);
        pos &= !3;
        if pos >= PAGE {
            break;
        }
        buf[pos..pos + 4].copy_from_slice(&[b[1], b[2] & 0x0f, 0, 0]);
    }
}

/// Incompressible bytes.
fn gen_entropy(rng: &mut Stream, buf: &mut PageBuf) {
    for chunk in buf[..PAGE].chunks_exact_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(seed: u64, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        fill_system_bytes(seed, offset, &mut v);
        v
    }

    #[test]
    fn content_is_a_pure_function_of_seed_and_offset() {
        let whole = content(42, 1000, 3 * PAGE * REGION_PAGES as usize + 777);
        // Any split into pieces gives the same bytes.
        let mut pieces = Vec::new();
        let mut at = 0;
        for len in [1usize, 4095, 4097, 13, 70_000, 100_000] {
            let len = len.min(whole.len() - at);
            pieces.extend(content(42, 1000 + at as u64, len));
            at += len;
        }
        pieces.extend(content(42, 1000 + at as u64, whole.len() - at));
        assert_eq!(pieces, whole);
        // Generation order does not matter either (no state between pages).
        let later = content(42, 500_000, 10_000);
        assert_eq!(content(42, 1000, whole.len()), whole);
        assert_eq!(content(42, 500_000, 10_000), later);
        assert_ne!(content(43, 1000, whole.len()), whole);
    }

    #[test]
    fn content_has_every_section_kind() {
        let kinds: std::collections::HashSet<_> =
            (0..4096u64).map(|r| format!("{:?}", region_kind(9, r * REGION_PAGES))).collect();
        assert_eq!(kinds.len(), KIND_WEIGHTS.len(), "{kinds:?}");
    }

    #[test]
    fn content_at_extreme_offsets_does_not_panic() {
        let mut buf = vec![0u8; 10_000];
        fill_system_bytes(u64::MAX, u64::MAX - 5000, &mut buf);
        fill_system_bytes(0, u64::MAX, &mut buf);
        fill_system_bytes(1, 0, &mut []);
    }
}
