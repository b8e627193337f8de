//! Deterministic "system binary" payloads: the bulk of the synthetic `s.v00`.
//!
//! The real ESXi 5.0 `s.v00` is about 124 MB of gzip holding about 370 MB of
//! system binaries. This module makes content that looks and compresses like
//! that, fast, and wraps it in gzip the way the bootloader reads it.
//!
//! What it promises:
//! - **Pure content.** [`fill_system_bytes`] gives the byte at stream offset
//!   `o` as a function of `(seed, o)` only, so any range can be generated on
//!   its own, in any order, on any thread. The stream is cut into 4 KiB
//!   pages; each 32 KiB region has one section kind (x86-64 code, string and
//!   symbol tables, relocations, pointer tables, sparse data, zero padding,
//!   high-entropy blobs), each page its own seeded generator.
//! - **Realistic ratio.** gzip level 6 compresses the stream about
//!   [`MEASURED_RATIO`] to 1 (the real `s.v00`: 370/124 ≈ 3.0).
//! - **Deterministic gzip.** [`gzip_system_module`] writes one gzip member
//!   (RFC 1952) whose bytes depend only on its arguments and on the deflate
//!   implementation (zlib-rs, level 6, pinned by `Cargo.lock`): never on the
//!   clock, the OS, or the number of threads. The layout is
//!
//!   ```text
//!   1F 8B 08 FLG | MTIME (LE) | XFL=0 | OS=3 | FNAME NUL   header, FNAME if named
//!   chunk 0: raw deflate, sync flush (byte aligned, not final)
//!   chunk 1: raw deflate, sync flush                        one deflate stream
//!   ...
//!   chunk n: raw deflate, finished (final block)
//!   CRC32 (LE) | ISIZE = length mod 2^32 (LE)               trailer
//!   ```
//!
//!   Chunks are [`CHUNK_BYTES`] of uncompressed content each, compressed
//!   independently on all cores (as pigz does) and concatenated in order.
//! - **Cache.** [`cached_gzip_system_module`] keeps finished modules on disk,
//!   keyed by every input plus [`GENERATOR_VERSION`] and a fingerprint of the
//!   deflate implementation's output, verified on every read (size and CRC32
//!   of the whole file from a sidecar), written atomically (temp + rename).
//! - **No panics.** No input makes these functions panic.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, OnceLock};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Approximate compressed size of the real ESXi 5.0 `s.v00`.
pub const REALISTIC_SV00_COMPRESSED: u64 = 124 * 1000 * 1000;

/// Version of the content generator and the gzip framing. Bump it whenever
/// [`fill_system_bytes`] or the module layout changes: it is part of the
/// cache key.
pub const GENERATOR_VERSION: u32 = 1;

/// Uncompressed bytes per independently compressed chunk.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Compression ratio (uncompressed / compressed) of [`gzip_system_module`]
/// on the system content, measured: 3.06 for a 378 MB module, 2.99–3.08
/// over seeds at 64 MiB (GNU `gzip -6` does about 1.5% better). See
/// [`uncompressed_len_for`].
pub const MEASURED_RATIO: f64 = RATIO_PERCENT as f64 / 100.0;

/// [`MEASURED_RATIO`] × 100, for integer arithmetic.
const RATIO_PERCENT: u64 = 305;

/// The deflate level every module uses.
const LEVEL: u32 = 6;

/// The gzip OS byte: Unix, as gzip writes it.
const GZIP_OS_UNIX: u8 = 3;

/// The gzip FLG bit for a file name.
const GZIP_FNAME: u8 = 0x08;

// ---------------------------------------------------------------------------
// Content generation

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
/// compresses it about [`MEASURED_RATIO`] to 1.
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

// ---------------------------------------------------------------------------
// gzip framing

/// A finished gzip module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GzipModule {
    /// The whole gzip file.
    pub bytes: Vec<u8>,
    /// Length of the uncompressed content.
    pub uncompressed_len: u64,
    /// CRC32 of the uncompressed content (as in the trailer).
    pub crc32: u32,
}

/// `len mod 2^32`, the gzip ISIZE.
fn isize_of(len: u64) -> u32 {
    u32::try_from(len & 0xffff_ffff).unwrap_or(0)
}

/// Appends a gzip header: FNAME when `name` (cut at its first NUL) is not
/// empty, the given MTIME, XFL 0 (default level), OS Unix.
fn push_header(out: &mut Vec<u8>, name: Option<&str>, mtime: u32) {
    let name = name.unwrap_or("").as_bytes();
    let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
    let flags = if name.is_empty() { 0 } else { GZIP_FNAME };
    out.extend_from_slice(&[0x1f, 0x8b, 8, flags]);
    out.extend_from_slice(&mtime.to_le_bytes());
    out.extend_from_slice(&[0, GZIP_OS_UNIX]);
    if !name.is_empty() {
        out.extend_from_slice(name);
        out.push(0);
    }
}

/// Appends the gzip trailer.
fn push_trailer(out: &mut Vec<u8>, crc: u32, len: u64) {
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&isize_of(len).to_le_bytes());
}

/// Raw deflate of `data` at [`LEVEL`]: finished when `last`, else ended by
/// a sync flush so that the next chunk's stream can follow it.
fn deflate_chunk(data: &[u8], last: bool) -> Vec<u8> {
    zlib_deflate(data, last).unwrap_or_else(|| stored_deflate(data, last))
}

/// [`deflate_chunk`] through zlib-rs; `None` if the library reports an
/// error (which would be a bug in how it is driven).
fn zlib_deflate(data: &[u8], last: bool) -> Option<Vec<u8>> {
    let mut c = Compress::new(Compression::new(LEVEL), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        if out.capacity() - out.len() < 16 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = usize::try_from(c.total_in()).ok()?;
        let status = c.compress_vec(data.get(consumed..)?, &mut out, flush).ok()?;
        let all_in = usize::try_from(c.total_in()).ok()? == data.len();
        match status {
            Status::StreamEnd => return Some(out),
            // A sync flush is complete once all input is in and zlib left
            // output space unused.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => return Some(out),
            Status::Ok | Status::BufError => {}
        }
    }
}

/// Raw deflate of `data` as stored blocks (no compression): the fallback
/// that keeps [`deflate_chunk`] total. Starts and ends byte aligned.
fn stored_deflate(data: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 10);
    let mut blocks = data.chunks(65535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[u8::from(last), 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let fin = last && blocks.peek().is_none();
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.push(u8::from(fin));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

/// A single-member gzip file of `data`, named `name` (FNAME, if any), with
/// the given MTIME, deflate level 6. Deterministic.
pub fn gzip_bytes(name: Option<&str>, data: &[u8], mtime: u32) -> Vec<u8> {
    let body = deflate_chunk(data, true);
    let mut out = Vec::with_capacity(body.len() + 32 + name.map_or(0, str::len));
    push_header(&mut out, name, mtime);
    out.extend_from_slice(&body);
    push_trailer(&mut out, crc32fast::hash(data), data.len() as u64);
    out
}

/// A single-member gzip file (RFC 1952; FNAME = `name`, MTIME = `mtime`, XFL
/// 0, OS Unix) of `uncompressed_len` bytes of system content of `seed`
/// (see [`fill_system_bytes`]), compressed on all cores.
///
/// `progress` is called on the calling thread with the number of
/// uncompressed bytes compressed so far (increasing, ending at
/// `uncompressed_len`). The bytes do not depend on the number of cores.
pub fn gzip_system_module(
    name: &str,
    seed: u64,
    uncompressed_len: u64,
    mtime: u32,
    progress: &mut dyn FnMut(u64),
) -> GzipModule {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    gzip_system_module_threads(name, seed, uncompressed_len, mtime, threads, progress)
}

/// One compressed chunk, as a worker hands it back.
struct Chunk {
    index: u64,
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

/// [`gzip_system_module`] with at most `threads` workers (0 counts as 1).
fn gzip_system_module_threads(
    name: &str,
    seed: u64,
    uncompressed_len: u64,
    mtime: u32,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> GzipModule {
    const CHUNK_U64: u64 = CHUNK_BYTES as u64;
    let chunks = uncompressed_len.div_ceil(CHUNK_U64).max(1);
    let workers = u64::try_from(threads.max(1)).unwrap_or(1).min(chunks);
    let next = AtomicU64::new(0);

    // Each worker takes the next chunk number, generates and compresses it.
    let work = |tx: mpsc::Sender<Chunk>| {
        let mut buf = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= chunks {
                break;
            }
            let start = index * CHUNK_U64;
            let len = (uncompressed_len - start).min(CHUNK_U64);
            buf.resize(usize::try_from(len).unwrap_or(CHUNK_BYTES), 0);
            fill_system_bytes(seed, start, &mut buf);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&buf);
            let deflated = deflate_chunk(&buf, index + 1 == chunks);
            if tx.send(Chunk { index, deflated, crc, len }).is_err() {
                break;
            }
        }
    };

    let estimate = uncompressed_len / RATIO_PERCENT * 100 + uncompressed_len / 16 + 4096;
    let mut out = Vec::with_capacity(usize::try_from(estimate.min(1 << 30)).unwrap_or(0));
    push_header(&mut out, Some(name), mtime);
    let mut crc = crc32fast::Hasher::new();

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Chunk>();
        let mut spawned = 0;
        for i in 0..workers {
            let tx = tx.clone();
            let work = &work;
            let builder = std::thread::Builder::new().name(format!("visorsim-gzip-{i}"));
            if builder.spawn_scoped(scope, move || work(tx)).is_ok() {
                spawned += 1;
            }
        }
        if spawned == 0 {
            // No thread could be started: do the work here.
            work(tx.clone());
        }
        drop(tx);

        // Append chunks in order as they arrive; park early ones.
        let mut parked = BTreeMap::new();
        let mut next_out = 0u64;
        let mut done = 0u64;
        for chunk in rx {
            done += chunk.len;
            progress(done);
            parked.insert(chunk.index, chunk);
            while let Some(chunk) = parked.remove(&next_out) {
                out.extend_from_slice(&chunk.deflated);
                crc.combine(&chunk.crc);
                next_out += 1;
            }
        }
    });

    let crc32 = crc.finalize();
    push_trailer(&mut out, crc32, uncompressed_len);
    GzipModule { bytes: out, uncompressed_len, crc32 }
}

/// Uncompressed size to request so that the compressed module is about
/// `compressed_target` bytes, by [`MEASURED_RATIO`].
pub fn uncompressed_len_for(compressed_target: u64) -> u64 {
    let len = u128::from(compressed_target) * u128::from(RATIO_PERCENT) / 100;
    u64::try_from(len).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// Cache

/// A fingerprint of the deflate implementation's output: the CRC32 of a
/// small fixed module. Part of the cache key, so a changed compressor never
/// serves stale bytes.
fn compressor_fingerprint() -> u32 {
    static FINGERPRINT: OnceLock<u32> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| {
        let mut data = vec![0u8; 256 * 1024];
        fill_system_bytes(0x5649_534f_5253_494d, 0, &mut data);
        crc32fast::hash(&gzip_bytes(Some("fingerprint"), &data, 0))
    })
}

/// The cache file name for a module: every input of the bytes, readable.
fn cache_file_name(name: &str, seed: u64, uncompressed_len: u64, mtime: u32) -> String {
    let safe: String = name
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    format!(
        "{safe}-{:08x}-{seed:016x}-{uncompressed_len}-{mtime:08x}-g{GENERATOR_VERSION}-{:08x}.gz",
        crc32fast::hash(name.as_bytes()),
        compressor_fingerprint(),
    )
}

/// The sidecar holding the size and CRC32 of a cache file.
fn sidecar_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sum");
    PathBuf::from(s)
}

/// The sidecar text for `bytes`.
fn sidecar_text(bytes: &[u8]) -> String {
    format!("visorsim-cache size={} crc32={:08x}\n", bytes.len(), crc32fast::hash(bytes))
}

/// A cached module if `file` exists and checks out: its size is the
/// sidecar's and at most `max_size`, its CRC32 is the sidecar's, the gzip
/// header magic and the trailer's ISIZE are right.
fn read_cached(file: &Path, uncompressed_len: u64, max_size: u64) -> Option<GzipModule> {
    let mut sum = String::new();
    fs::File::open(sidecar_path(file)).ok()?.take(256).read_to_string(&mut sum).ok()?;
    let size: u64 = sum.strip_prefix("visorsim-cache size=")?.split(' ').next()?.parse().ok()?;
    let f = fs::File::open(file).ok()?;
    if size > max_size || f.metadata().ok()?.len() != size {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).ok()?);
    f.take(size).read_to_end(&mut bytes).ok()?;
    if sum != sidecar_text(&bytes) || bytes.len() < 18 || bytes[..3] != [0x1f, 0x8b, 8] {
        return None;
    }
    let tail: [u8; 8] = bytes[bytes.len() - 8..].try_into().ok()?;
    let [c0, c1, c2, c3, i0, i1, i2, i3] = tail;
    if u32::from_le_bytes([i0, i1, i2, i3]) != isize_of(uncompressed_len) {
        return None;
    }
    Some(GzipModule { bytes, uncompressed_len, crc32: u32::from_le_bytes([c0, c1, c2, c3]) })
}

/// An upper bound on the size of a module: deflate never grows data by more
/// than a few bytes per 64 KiB block, plus the header and trailer.
fn max_module_size(name: &str, uncompressed_len: u64) -> u64 {
    uncompressed_len.saturating_add(uncompressed_len / 64).saturating_add(name.len() as u64).saturating_add(1 << 20)
}

/// Writes `bytes` to `path` atomically: a unique temporary file in the same
/// directory, then a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{base}.tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.flush()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Adds the path to an I/O error's message.
fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("Cannot {what} {}: {e}", path.display()))
}

/// [`gzip_system_module`], cached in `cache_dir` (no cache when `None`).
///
/// The cache file is keyed by `name`, `seed`, `uncompressed_len`, `mtime`,
/// [`GENERATOR_VERSION`] and a fingerprint of the compressor. A cache file
/// whose size or CRC32 does not match its sidecar (or is missing either) is
/// ignored and rewritten. On a hit `progress` is called once with
/// `uncompressed_len`.
///
/// # Errors
/// Creating `cache_dir` or writing the cache files failed; the message names
/// the path.
pub fn cached_gzip_system_module(
    cache_dir: Option<&Path>,
    name: &str,
    seed: u64,
    uncompressed_len: u64,
    mtime: u32,
    progress: &mut dyn FnMut(u64),
) -> io::Result<GzipModule> {
    let Some(dir) = cache_dir else {
        return Ok(gzip_system_module(name, seed, uncompressed_len, mtime, progress));
    };
    let file = dir.join(cache_file_name(name, seed, uncompressed_len, mtime));
    if let Some(module) = read_cached(&file, uncompressed_len, max_module_size(name, uncompressed_len)) {
        progress(uncompressed_len);
        return Ok(module);
    }
    let module = gzip_system_module(name, seed, uncompressed_len, mtime, progress);
    fs::create_dir_all(dir).map_err(|e| with_path(e, "create cache directory", dir))?;
    write_atomically(&file, &module.bytes).map_err(|e| with_path(e, "write cache file", &file))?;
    let sum = sidecar_path(&file);
    write_atomically(&sum, sidecar_text(&module.bytes).as_bytes())
        .map_err(|e| with_path(e, "write cache file", &sum))?;
    Ok(module)
}

/// The default cache directory: `$VISORSIM_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/visorsim` (if absolute), else `$HOME/.cache/visorsim`;
/// `None` if none is set. Empty variables count as unset.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("VISORSIM_CACHE_DIR") {
        return Some(dir);
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("visorsim"));
    }
    var("HOME").map(|home| home.join(".cache").join("visorsim"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::{Command, Stdio};

    fn content(seed: u64, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        fill_system_bytes(seed, offset, &mut v);
        v
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    fn trailer(bytes: &[u8]) -> (u32, u32) {
        let t = &bytes[bytes.len() - 8..];
        (u32::from_le_bytes(t[..4].try_into().unwrap()), u32::from_le_bytes(t[4..].try_into().unwrap()))
    }

    /// Runs `cmd`, or returns `None` (with a note) when it is not installed.
    fn run(cmd: &mut Command) -> Option<std::process::Output> {
        match cmd.stdin(Stdio::null()).output() {
            Ok(out) => Some(out),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // scripts/test.sh (and CI) install the tools and forbid skipping.
                assert!(std::env::var_os("VISORSIM_REQUIRE_TOOLS").is_none(), "{cmd:?}: not installed");
                eprintln!("{cmd:?}: not installed, skipping");
                None
            }
            Err(e) => panic!("{cmd:?}: {e}"),
        }
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

    #[test]
    fn module_is_valid_gzip_with_right_trailer_and_content() {
        let len = CHUNK_BYTES as u64 + 123_457; // two chunks, the last partial
        let mut seen = Vec::new();
        let m = gzip_system_module("s.v00", 5, len, 0x5a5a_0001, &mut |d| seen.push(d));
        let expected = content(5, 0, usize::try_from(len).unwrap());
        assert_eq!(m.uncompressed_len, len);
        assert_eq!(m.crc32, crc32fast::hash(&expected));
        assert_eq!(trailer(&m.bytes), (m.crc32, u32::try_from(len).unwrap()));
        // Header: magic, deflate, FNAME only, MTIME, XFL 0, OS Unix, name.
        assert_eq!(m.bytes[..4], [0x1f, 0x8b, 8, GZIP_FNAME]);
        assert_eq!(m.bytes[4..8], 0x5a5a_0001u32.to_le_bytes());
        assert_eq!(m.bytes[8..10], [0, 3]);
        assert_eq!(&m.bytes[10..16], b"s.v00\0");
        // One member, one deflate stream: a single-member decoder reads it all.
        let mut single = Vec::new();
        flate2::read::GzDecoder::new(&m.bytes[..]).read_to_end(&mut single).unwrap();
        assert!(single == expected, "GzDecoder output differs");
        assert!(gunzip(&m.bytes) == expected, "MultiGzDecoder output differs");
        // Progress ends at the length and never goes back.
        assert_eq!(seen.last(), Some(&len));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn module_passes_gzip_t_and_gzip_dc() {
        let len = 2 * CHUNK_BYTES as u64 + 1000;
        let m = gzip_system_module("s.v00", 11, len, 0, &mut |_| {});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.v00");
        fs::write(&path, &m.bytes).unwrap();
        let Some(t) = run(Command::new("gzip").arg("-t").arg(&path)) else { return };
        assert!(t.status.success() && t.stderr.is_empty(), "gzip -t: {}", String::from_utf8_lossy(&t.stderr));
        let Some(dc) = run(Command::new("gzip").arg("-dc").arg(&path)) else { return };
        assert!(dc.status.success(), "gzip -dc: {}", String::from_utf8_lossy(&dc.stderr));
        assert!(dc.stdout == content(11, 0, usize::try_from(len).unwrap()), "gzip -dc output differs");
        // gzip -l reads the name and size from the file.
        let Some(l) = run(Command::new("gzip").arg("-lv").arg(&path)) else { return };
        let listing = String::from_utf8_lossy(&l.stdout);
        assert!(listing.contains(&len.to_string()), "{listing}");
    }

    #[test]
    fn same_bytes_whatever_the_thread_count() {
        let len = 2 * CHUNK_BYTES as u64 + 4096 * 3 + 5;
        let one = gzip_system_module_threads("x", 3, len, 7, 1, &mut |_| {});
        let three = gzip_system_module_threads("x", 3, len, 7, 3, &mut |_| {});
        let many = gzip_system_module_threads("x", 3, len, 7, 64, &mut |_| {});
        assert!(one == three && one == many);
        assert!(gunzip(&one.bytes) == content(3, 0, usize::try_from(len).unwrap()));
    }

    #[test]
    fn ratio_is_realistic() {
        let len = 32u64 << 20;
        let m = gzip_system_module("s.v00", 1, len, 0, &mut |_| {});
        let ratio = len as f64 / m.bytes.len() as f64;
        assert!((2.5..=3.5).contains(&ratio), "ratio {ratio:.3}");
        assert!((ratio - MEASURED_RATIO).abs() < 0.2, "ratio {ratio:.3} vs constant {MEASURED_RATIO}");
    }

    #[test]
    fn uncompressed_len_for_scales_by_the_ratio() {
        assert_eq!(uncompressed_len_for(0), 0);
        assert_eq!(uncompressed_len_for(100), RATIO_PERCENT);
        let real = uncompressed_len_for(REALISTIC_SV00_COMPRESSED);
        assert!((340_000_000..=400_000_000).contains(&real), "{real}");
        assert!(uncompressed_len_for(u64::MAX) == u64::MAX);
    }

    #[test]
    fn empty_and_tiny_modules_are_valid() {
        for len in [0u64, 1, 4095, 4097] {
            let m = gzip_system_module("", 0, len, 0, &mut |_| {});
            assert_eq!(m.bytes[3], 0, "no FNAME for an empty name");
            assert!(gunzip(&m.bytes) == content(0, 0, usize::try_from(len).unwrap()));
            assert_eq!(
                trailer(&m.bytes),
                (crc32fast::hash(&content(0, 0, usize::try_from(len).unwrap())), u32::try_from(len).unwrap())
            );
        }
    }

    #[test]
    fn gzip_bytes_is_deterministic_and_valid() {
        let data = b"hello hello hello hello".repeat(100);
        let a = gzip_bytes(Some("b.b00"), &data, 1234);
        assert_eq!(a, gzip_bytes(Some("b.b00"), &data, 1234));
        assert_ne!(a, gzip_bytes(Some("b.b00"), &data, 1235));
        assert_eq!(a[3], GZIP_FNAME);
        assert_eq!(gunzip(&a), data);
        let none = gzip_bytes(None, &[], 0);
        assert_eq!(none[3], 0);
        assert_eq!(gunzip(&none), b"");
        // A NUL in the name ends it.
        let cut = gzip_bytes(Some("ab\0cd"), b"x", 0);
        assert_eq!(&cut[10..13], b"ab\0");
        assert_eq!(gunzip(&cut), b"x");
    }

    #[test]
    fn stored_fallback_is_valid_deflate() {
        let data = content(8, 0, 200_000);
        let mut stream = stored_deflate(&data[..70_000], false);
        stream.extend(stored_deflate(&data[70_000..], true));
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&stream[..]).read_to_end(&mut out).unwrap();
        assert!(out == data);
        let mut empty = stored_deflate(&[], false);
        empty.extend(stored_deflate(&[], true));
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&empty[..]).read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn cache_hit_returns_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let len = 300_000;
        let fresh = cached_gzip_system_module(Some(&cache), "s.v00", 4, len, 9, &mut |_| {}).unwrap();
        assert_eq!(fresh, gzip_system_module("s.v00", 4, len, 9, &mut |_| {}));
        let files: Vec<_> = fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 2, "module and sidecar, no temporary files: {files:?}");

        let mut calls = Vec::new();
        let hit = cached_gzip_system_module(Some(&cache), "s.v00", 4, len, 9, &mut |d| calls.push(d)).unwrap();
        assert_eq!(hit, fresh);
        assert_eq!(calls, [len], "a hit reports completion once");

        // Every key input makes a different entry.
        let other = cached_gzip_system_module(Some(&cache), "s.v00", 4, len, 10, &mut |_| {}).unwrap();
        assert_ne!(other.bytes, fresh.bytes);
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 4);

        // No cache directory: no cache.
        let none = cached_gzip_system_module(None, "s.v00", 4, len, 9, &mut |_| {}).unwrap();
        assert_eq!(none, fresh);
    }

    #[test]
    fn corrupt_cache_files_are_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let len = 200_000;
        let good = cached_gzip_system_module(Some(dir.path()), "t.v00", 4, len, 0, &mut |_| {}).unwrap();
        let file = dir.path().join(cache_file_name("t.v00", 4, len, 0));
        let sum = sidecar_path(&file);

        type Damage = fn(&Path, &Path);
        let damages: [(&str, Damage); 6] = [
            ("flipped byte", |f, _| {
                let mut b = fs::read(f).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x40;
                fs::write(f, b).unwrap();
            }),
            ("truncated", |f, _| {
                let b = fs::read(f).unwrap();
                fs::write(f, &b[..b.len() - 100]).unwrap();
            }),
            ("empty", |f, _| fs::write(f, b"").unwrap()),
            ("sidecar missing", |_, s| fs::remove_file(s).unwrap()),
            ("sidecar garbage", |_, s| fs::write(s, b"size=1 crc32=zz").unwrap()),
            ("sidecar claims a huge size", |_, s| {
                fs::write(s, b"visorsim-cache size=99999999999999 crc32=00000000\n").unwrap()
            }),
        ];
        for (what, damage) in damages {
            damage(&file, &sum);
            let mut calls = 0;
            let got = cached_gzip_system_module(Some(dir.path()), "t.v00", 4, len, 0, &mut |_| calls += 1).unwrap();
            assert_eq!(got, good, "{what}");
            assert!(calls >= 1, "{what}");
            assert!(read_cached(&file, len, u64::MAX).is_some(), "{what}: cache not rewritten");
        }
    }

    #[test]
    fn cache_write_failure_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"not a directory").unwrap();
        let err = cached_gzip_system_module(Some(&blocker.join("sub")), "s", 0, 10, 0, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("sub"), "{err}");
    }

    #[test]
    fn cache_file_names_are_safe() {
        let n = cache_file_name("../../etc/passwd\0x", 1, 2, 3);
        assert!(!n.contains('/') && !n.contains('\0'), "{n}");
        assert_ne!(cache_file_name("a/b", 1, 2, 3), cache_file_name("a_b", 1, 2, 3));
    }
}
