//! The bounded tar reader behind [`read_state_tgz`](super::read_state_tgz).
//!
//! It reads one gzip'd tar stream sequentially, header by header, and
//! treats every byte as hostile:
//!
//! ```text
//! header ──checksum (unsigned or signed sum)──► typeflag
//!   'L' 'K' 'x' 'g'   extended header: ≤ 64 KiB, ≤ 8 in front of a member,
//!                     gives the next member's long name, link or pax size
//!   '0' NUL '7'       regular file: size checked against the limits from
//!                     the header, then the data read (or skipped) in 8 KiB steps
//!   '5'               directory: skipped
//!   '1' '2' '3' '4' '6'  link or device: rejected, never followed
//!   anything else     rejected as unsupported
//! two zero blocks ──► the rest of the stream is drained (bounded), so the
//!                     gzip CRC and length are checked
//! ```
//!
//! Names are `prefix/name` for POSIX ustar headers (GNU headers have no
//! prefix). Absolute names and `..` components are rejected before any
//! data is read.
//!
//! Besides the byte limits, the stream may not inflate more than
//! [`ArchiveLimits::max_ratio`] times the compressed bytes consumed so far,
//! once past [`RATIO_GRACE_BYTES`]: a zip-bomb guard checked as the data
//! streams, so an archive of zeros is refused after a few hundred KiB of
//! inflation instead of after the byte limit.

use std::collections::BTreeMap;
use std::io::{self, Read};

use flate2::bufread::MultiGzDecoder;

use super::{normalize, ArchiveError, ArchiveLimits, EtcFile, SpecialMember, BLOCK};

/// Largest GNU long name or pax extended header accepted.
const MAX_META_BYTES: u64 = 64 * 1024;
/// Most extended headers (`L`, `K`, `x`, `g`) in front of one member.
const MAX_META_HEADERS: usize = 8;

/// A member as the reader returns it.
enum Member {
    /// A regular file (data read only when asked for).
    File { path: String, mode: u32, data: Option<Vec<u8>> },
    /// A directory (nothing to return).
    Dir,
}

/// The text of a NUL-terminated header field.
fn field_str(field: &[u8]) -> &[u8] {
    field.split(|&b| b == 0).next().unwrap_or(&[])
}

/// A numeric header field: octal (spaces and NULs around it allowed) or
/// GNU base-256. `None` if malformed or over 2^64.
pub(super) fn parse_numeric(field: &[u8]) -> Option<u64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first != 0x80 {
            return None; // negative or huge
        }
        return field[1..].iter().try_fold(0u64, |acc, &b| acc.checked_mul(256)?.checked_add(u64::from(b)));
    }
    let text = field_str(field);
    let text = text.trim_ascii();
    text.iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'7' => acc.checked_mul(8)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Inflated bytes the ratio limit lets through whatever the ratio: Apache
/// POI's zip-bomb guard (`ZipSecureFile`) starts checking its 100:1 ratio
/// past the same 100 KiB, so that small, very regular members (a tar
/// header block of zeros, a short text file) never trip it.
pub const RATIO_GRACE_BYTES: u64 = 100 * 1024;

/// Sequential reader of one gzip'd tar stream held in memory, with limits.
struct TarReader<'a> {
    r: MultiGzDecoder<&'a [u8]>,
    /// Length of the gzip'd bytes: what is left of them tells how much the
    /// decoder has consumed.
    compressed_len: u64,
    archive: &'static str,
    limits: ArchiveLimits,
    offset: u64,
    members: usize,
    total: u64,
    /// The member being read (for the ratio error), or what was read last.
    current: String,
}

impl<'a> TarReader<'a> {
    fn new(bytes: &'a [u8], archive: &'static str, limits: ArchiveLimits) -> TarReader<'a> {
        TarReader {
            r: MultiGzDecoder::new(bytes),
            compressed_len: bytes.len() as u64,
            archive,
            limits,
            offset: 0,
            members: 0,
            total: 0,
            current: "the first header".to_owned(),
        }
    }

    /// The zip-bomb guard: past [`RATIO_GRACE_BYTES`], the inflated bytes
    /// may not exceed `max_ratio` times the gzip'd bytes consumed.
    fn check_ratio(&self) -> Result<(), ArchiveError> {
        let consumed = self.compressed_len - self.r.get_ref().len() as u64;
        if self.offset > RATIO_GRACE_BYTES && self.offset / consumed.max(1) > self.limits.max_ratio {
            return Err(ArchiveError::RatioTooHigh {
                archive: self.archive,
                member: self.current.clone(),
                inflated: self.offset,
                compressed: consumed,
                limit: self.limits.max_ratio,
            });
        }
        Ok(())
    }

    fn corrupt(&self, detail: impl Into<String>) -> ArchiveError {
        ArchiveError::Corrupt { archive: self.archive, offset: self.offset, detail: detail.into() }
    }

    /// Reads until `buf` is full or the stream ends; returns the count.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => {
                    n += k;
                    self.offset += k as u64;
                    self.check_ratio()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(ArchiveError::Gzip { archive: self.archive, source }),
            }
        }
        Ok(n)
    }

    /// Counts `size` more bytes of data against the total limit.
    fn account(&mut self, member: &str, size: u64) -> Result<(), ArchiveError> {
        let total = self.total.saturating_add(size);
        if total > self.limits.max_total_bytes {
            return Err(ArchiveError::TotalTooLarge {
                archive: self.archive,
                member: member.to_string(),
                total,
                limit: self.limits.max_total_bytes,
            });
        }
        self.total = total;
        Ok(())
    }

    /// Reads a member's `size` bytes of data and its padding. The caller
    /// has checked `size` against the limits.
    fn read_data(&mut self, member: &str, size: u64) -> Result<Vec<u8>, ArchiveError> {
        member.clone_into(&mut self.current);
        let mut data = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
        let mut left = size;
        let mut buf = [0u8; 8192];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self.fill(&mut buf[..want])?;
            data.extend_from_slice(&buf[..got]);
            if got < want {
                return Err(self.corrupt(format!("member '{member}' is truncated")));
            }
            left -= got as u64;
        }
        self.skip_padding(member, size)?;
        Ok(data)
    }

    /// Skips a member's `size` bytes of data and its padding.
    fn skip_data(&mut self, member: &str, size: u64) -> Result<(), ArchiveError> {
        member.clone_into(&mut self.current);
        let mut left = size;
        let mut buf = [0u8; 8192];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self.fill(&mut buf[..want])?;
            if got < want {
                return Err(self.corrupt(format!("member '{member}' is truncated")));
            }
            left -= got as u64;
        }
        self.skip_padding(member, size)
    }

    fn skip_padding(&mut self, member: &str, size: u64) -> Result<(), ArchiveError> {
        let pad = usize::try_from((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64).unwrap_or(0);
        let mut buf = [0u8; BLOCK];
        if self.fill(&mut buf[..pad])? < pad {
            return Err(self.corrupt(format!("member '{member}' is truncated")));
        }
        Ok(())
    }

    /// Reads an extended header's data (bounded).
    fn read_meta(&mut self, size: u64) -> Result<Vec<u8>, ArchiveError> {
        if size > MAX_META_BYTES {
            return Err(self.corrupt(format!("extended header of {size} bytes")));
        }
        self.account("extended header", size)?;
        self.read_data("extended header", size)
    }

    /// After the end-of-archive blocks: reads what is left of the stream
    /// (bounded) so the gzip CRC and length get checked.
    fn drain(&mut self) -> Result<(), ArchiveError> {
        let mut buf = [0u8; 8192];
        let mut left = self.limits.max_total_bytes.max(1 << 20);
        loop {
            let got = self.fill(&mut buf)?;
            if got == 0 {
                return Ok(());
            }
            left = left.saturating_sub(got as u64);
            if left == 0 {
                return Err(self.corrupt("too much data after the end of the archive"));
            }
        }
    }

    /// The next member, or `None` at the end of the archive. Regular files'
    /// data is read when `want(path)` says so, skipped otherwise.
    fn next(&mut self, want: &mut dyn FnMut(&str) -> bool) -> Result<Option<Member>, ArchiveError> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut metas = 0;
        loop {
            let mut h = [0u8; BLOCK];
            let got = self.fill(&mut h)?;
            if got == 0 && metas == 0 {
                return Ok(None); // end of stream without end blocks, as tar allows
            }
            if got < BLOCK {
                return Err(self.corrupt("truncated header"));
            }
            if h.iter().all(|&b| b == 0) {
                if metas > 0 {
                    return Err(self.corrupt("extended header without a member"));
                }
                self.drain()?;
                return Ok(None);
            }
            let header_at = self.offset - BLOCK as u64;
            let stored = parse_numeric(&h[148..156]);
            let mut blank = h;
            blank[148..156].fill(b' ');
            let unsigned: u64 = blank.iter().map(|&b| u64::from(b)).sum();
            let signed: i64 = blank.iter().map(|&b| i64::from(i8::from_ne_bytes([b]))).sum();
            let ok = stored.is_some_and(|s| s == unsigned || i64::try_from(s).is_ok_and(|s| s == signed));
            if !ok {
                return Err(ArchiveError::Corrupt {
                    archive: self.archive,
                    offset: header_at,
                    detail: "bad header checksum".into(),
                });
            }
            let typeflag = h[156];
            let header_size = parse_numeric(&h[124..136]);
            let Some(header_size) = header_size else {
                return Err(self.corrupt("bad size field"));
            };
            let size = pax_size.unwrap_or(header_size);

            if matches!(typeflag, b'L' | b'K' | b'x' | b'g') {
                metas += 1;
                if metas > MAX_META_HEADERS {
                    return Err(self.corrupt("too many extended headers"));
                }
                let mut meta = self.read_meta(header_size)?;
                match typeflag {
                    b'L' => {
                        meta.truncate(field_str(&meta).len());
                        long_name = Some(meta);
                    }
                    b'K' => {
                        meta.truncate(field_str(&meta).len());
                        long_link = Some(meta);
                    }
                    b'x' => {
                        for (key, value) in pax_records(&meta) {
                            match key {
                                // busybox tar (ESXi's) copies the value as a C
                                // string: a NUL ends the name, as in an 'L' header.
                                b"path" => long_name = Some(field_str(value).to_vec()),
                                b"linkpath" => long_link = Some(field_str(value).to_vec()),
                                b"size" => {
                                    let v = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                                    let Some(v) = v else {
                                        return Err(self.corrupt("bad pax size"));
                                    };
                                    pax_size = Some(v);
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {} // 'g': global pax header, ignored
                }
                continue;
            }

            // A member.
            let ustar = &h[257..263] == b"ustar\0";
            let name_bytes = match long_name.take() {
                Some(n) => n,
                None => {
                    let name = field_str(&h[..100]);
                    let prefix = if ustar { field_str(&h[345..500]) } else { &[] };
                    if prefix.is_empty() {
                        name.to_vec()
                    } else {
                        [prefix, b"/", name].concat()
                    }
                }
            };
            let lossy = String::from_utf8_lossy(&name_bytes).into_owned();

            self.members += 1;
            if self.members > self.limits.max_members {
                return Err(ArchiveError::TooManyMembers {
                    archive: self.archive,
                    member: lossy,
                    limit: self.limits.max_members,
                });
            }
            let Ok(name) = String::from_utf8(name_bytes) else {
                return Err(ArchiveError::BadName { archive: self.archive, member: lossy });
            };
            if name.starts_with('/') {
                return Err(ArchiveError::AbsolutePath { archive: self.archive, member: name });
            }
            if name.split('/').any(|c| c == "..") {
                return Err(ArchiveError::ParentDir { archive: self.archive, member: name });
            }
            let path = normalize(&name);

            let link = || {
                let raw = long_link.clone().unwrap_or_else(|| field_str(&h[157..257]).to_vec());
                String::from_utf8_lossy(&raw).into_owned()
            };
            let special = match typeflag {
                b'1' => Some(SpecialMember::HardLink(link())),
                b'2' => Some(SpecialMember::Symlink(link())),
                b'3' => Some(SpecialMember::CharDevice),
                b'4' => Some(SpecialMember::BlockDevice),
                b'6' => Some(SpecialMember::Fifo),
                _ => None,
            };
            if let Some(what) = special {
                return Err(ArchiveError::SpecialFile { archive: self.archive, member: name, what });
            }
            match typeflag {
                b'5' => {
                    self.account(&name, size)?;
                    self.skip_data(&name, size)?;
                    return Ok(Some(Member::Dir));
                }
                b'0' | 0 | b'7' => {
                    let Some(path) = path else {
                        return Err(ArchiveError::BadName { archive: self.archive, member: name });
                    };
                    if size > self.limits.max_member_bytes {
                        return Err(ArchiveError::MemberTooLarge {
                            archive: self.archive,
                            member: name,
                            size,
                            limit: self.limits.max_member_bytes,
                        });
                    }
                    self.account(&name, size)?;
                    let mode = parse_numeric(&h[100..108]).unwrap_or(0o644) & 0o7777;
                    let mode = u32::try_from(mode).unwrap_or(0o644);
                    let data = if want(&path) {
                        Some(self.read_data(&name, size)?)
                    } else {
                        self.skip_data(&name, size)?;
                        None
                    };
                    return Ok(Some(Member::File { path, mode, data }));
                }
                other => {
                    return Err(ArchiveError::Unsupported {
                        archive: self.archive,
                        member: name,
                        typeflag: char::from(other),
                    })
                }
            }
        }
    }
}

/// The `key=value` records of a pax extended header; malformed records end
/// the list.
fn pax_records(mut data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some(sp) = data.iter().position(|&b| b == b' ') else { break };
        let Some(len) = std::str::from_utf8(&data[..sp]).ok().and_then(|s| s.parse::<usize>().ok()) else {
            break;
        };
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            break;
        }
        let record = &data[sp + 1..len - 1];
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((&record[..eq], &record[eq + 1..]));
        }
        data = &data[len..];
    }
    out
}

/// The regular files of the tgz `bytes` (named `archive` in errors), in
/// archive order, the last of duplicates winning (as extraction does).
/// Data is kept only for files `want` selects.
pub(super) fn read_tgz(
    bytes: &[u8],
    archive: &'static str,
    limits: &ArchiveLimits,
    want: &mut dyn FnMut(&str) -> bool,
) -> Result<Vec<EtcFile>, ArchiveError> {
    if bytes.len() < 18 || bytes[..2] != [0x1f, 0x8b] {
        return Err(ArchiveError::Gzip {
            archive,
            source: io::Error::new(io::ErrorKind::InvalidData, "not a gzip file"),
        });
    }
    let mut reader = TarReader::new(bytes, archive, *limits);
    let mut files: Vec<EtcFile> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(member) = reader.next(want)? {
        if let Member::File { path, mode, data } = member {
            let Some(data) = data else { continue };
            let file = EtcFile { path: path.clone(), mode, data };
            match index.get(&path) {
                Some(&i) => files[i] = file,
                None => {
                    index.insert(path, files.len());
                    files.push(file);
                }
            }
        }
    }
    Ok(files)
}
