//! `fault` steps (arming the fault layer between the host and the medium)
//! and `corrupt` steps (damaging the medium itself, behind the faults'
//! back). Targets are bank files located through the FAT, as safeboot
//! would find them.

use std::collections::BTreeSet;

use visorsim_disk::{BitFlip, BlockDevice, DiskError, FaultPlan, MemDisk, Tearing};
use visorsim_host::bank::Bank;
use visorsim_media::fatread::{FatReadError, FatReader};

use super::{RunError, RunErrorKind, World};
use crate::model::{CorruptStep, FaultStep, FileRef};

/// The LBAs of a bank file's clusters, read from the medium (for the
/// `fault` field `field`).
fn file_sectors(dev: &mut MemDisk, f: &FileRef, field: &'static str) -> Result<Vec<u64>, RunError> {
    let fault = |message: String| RunError::new(RunErrorKind::Fault, field, message).with_bank(f.bank);
    let unreadable = |e| {
        RunError::caused(RunErrorKind::Fault, field, format!("{field}: bank {}: {}", f.bank, f.file), e)
            .with_bank(f.bank)
            .with_file(&f.file)
    };
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let v = volumes.iter().find(|v| v.number == f.bank).ok_or_else(|| fault(format!("bank {} not found", f.bank)))?;
    let reader = FatReader::open(dev, v.first_lba, v.sectors).map_err(unreadable)?;
    let file = reader
        .find(dev, &f.file)
        .map_err(unreadable)?
        .ok_or_else(|| fault(format!("{} not found in bank {}", f.file, f.bank)).with_file(&f.file))?;
    let runs = reader.runs(dev, &file).map_err(unreadable)?;
    Ok(runs.iter().flat_map(|r| r.lba..r.lba + r.sectors).collect())
}

pub(super) fn arm(w: &mut World, f: &FaultStep) -> Result<(String, String), RunError> {
    let mut armed = Vec::new();
    if f.clear {
        let seed = w.dev.plan_mut().seed;
        *w.dev.plan_mut() = FaultPlan { seed, ..FaultPlan::default() };
        armed.push("cleared".to_owned());
    }
    if let Some(n) = f.power_cut_after_writes {
        let writes = w.dev.writes();
        w.dev.plan_mut().power_cut_after_writes = Some(writes + n);
        armed.push(format!("power cut after {n} more write(s)"));
    }
    if let Some(k) = f.torn_sectors {
        w.dev.plan_mut().torn_last_write = Some(Tearing::Prefix { sectors: k });
        armed.push(format!("last write torn after {k} sector(s)"));
    }
    if let Some(r) = f.volatile_cache_reorder {
        w.dev.plan_mut().volatile_cache =
            Some(visorsim_disk::CacheModel { max_reorder: r, drop_probability_percent: 50 });
        armed.push(format!("volatile cache (reorder {r})"));
    }
    if !f.lost_writes.is_empty() {
        if f.lost_writes.len() > 64 || f.lost_writes.contains(&0) {
            let message = format!(
                "fault.lost_writes: {} number(s); give at most 64, each at least 1 (the first write after this step is 1)",
                f.lost_writes.len()
            );
            return Err(RunError::new(RunErrorKind::Fault, "fault.lost_writes", message));
        }
        let writes = w.dev.writes();
        let plan = w.dev.plan_mut();
        plan.lost_at_cut.extend(f.lost_writes.iter().map(|n| writes.saturating_add(*n)));
        plan.volatile_cache.get_or_insert(visorsim_disk::CacheModel { max_reorder: 0, drop_probability_percent: 0 });
        armed.push(format!("write(s) {:?} lost at the cut", f.lost_writes));
    }
    if !f.bad_sectors.is_empty() {
        w.dev.plan_mut().bad_sectors.extend(f.bad_sectors.iter().copied());
        armed.push(format!("{} bad sector(s)", f.bad_sectors.len()));
    }
    if let Some(file) = &f.bad_file {
        let sectors: BTreeSet<u64> = file_sectors(w.dev.inner_mut(), file, "fault.bad_file")?.into_iter().collect();
        armed.push(format!("{} unreadable ({} sectors)", file.file, sectors.len()));
        w.dev.plan_mut().bad_sectors.extend(sectors);
    }
    if let Some(file) = &f.bit_rot {
        let sectors = file_sectors(w.dev.inner_mut(), file, "fault.bit_rot")?;
        let Some(&lba) = sectors.get(sectors.len() / 2) else {
            let message = format!("fault.bit_rot: bank {}: {} has no data to rot", file.bank, file.file);
            return Err(RunError::new(RunErrorKind::Fault, "fault.bit_rot", message)
                .with_bank(file.bank)
                .with_file(&file.file));
        };
        w.dev.plan_mut().bit_flips.push(BitFlip { lba, byte: 100, bit: 3 });
        armed.push(format!("bit rot in {}", file.file));
    }
    if let Some(ro) = f.read_only {
        w.dev.plan_mut().read_only = ro;
        armed.push(if ro { "read-only medium".into() } else { "writable medium".into() });
    }
    if let Some(n) = f.full_after_sectors {
        w.dev.plan_mut().full_after_sectors = Some(n);
        armed.push(format!("device full after {n} new sector(s)"));
    }
    Ok(("fault".into(), armed.join(", ")))
}

pub(super) fn corrupt(w: &mut World, c: &CorruptStep) -> Result<(String, String), RunError> {
    let dev = w.dev.inner_mut();
    let ss = dev.sector_size().len();
    let step_error = |message: &str| RunError::new(RunErrorKind::Step, "corrupt", format!("corrupt: {message}"));
    let patch = match (&c.bytes, &c.text) {
        (Some(_), Some(_)) => return Err(step_error("give `bytes` or `text`, not both")),
        (Some(bytes), None) => Some(bytes.as_slice()),
        (None, Some(text)) => Some(text.as_bytes()),
        (None, None) => None,
    };
    if let Some(patch) = patch {
        if c.fill.is_some() || c.truncate_to.is_some() || c.delete {
            return Err(step_error("`bytes` and `text` cannot be combined with `fill`, `truncate_to` or `delete`"));
        }
        let offset = c.offset.unwrap_or(0);
        return match (&c.file, c.lba) {
            (Some(f), None) => write_in_file(dev, f, offset, patch),
            (None, Some(lba)) => write_at_lba(dev, lba, offset, patch),
            (Some(_), Some(_)) => Err(step_error("give `file` or `lba`, not both")),
            (None, None) => Err(step_error("give `file` or `lba`")),
        };
    }
    let sectors_error = |what: String, lba: u64, e| {
        RunError::caused(RunErrorKind::Corrupt, "corrupt", format!("corrupt: {what}"), e).with_lba(lba)
    };
    if let Some(fill) = &c.fill {
        let what = format!("fill LBA {}+{}", fill.lba, fill.count);
        let end = fill.lba.checked_add(fill.count);
        if end.is_none_or(|end| end > dev.sector_count()) {
            let message = format!("corrupt: {what}: past the end of the disk ({} sectors)", dev.sector_count());
            return Err(RunError::new(RunErrorKind::Corrupt, "corrupt", message).with_lba(fill.lba));
        }
        // In pieces of at most 1 MiB: `count` can be 2^24 sectors.
        let per_write = ((1u64 << 20) / ss as u64).max(1);
        let data = vec![fill.byte; ss * per_write.min(fill.count) as usize];
        let mut lba = fill.lba;
        while lba < fill.lba + fill.count {
            let n = per_write.min(fill.lba + fill.count - lba);
            dev.write_sectors(lba, &data[..ss * n as usize]).map_err(|e| sectors_error(what.clone(), lba, e))?;
            lba += n;
        }
        return Ok((format!("fill LBA {}+{}", fill.lba, fill.count), format!("0x{:02x}", fill.byte)));
    }
    if let Some(lba) = c.lba {
        let mut sector = vec![0u8; ss];
        dev.read_sectors(lba, &mut sector).map_err(|e| sectors_error(format!("LBA {lba}"), lba, e))?;
        let at = c.offset.unwrap_or(0) as usize % ss;
        sector[at] ^= 0xFF;
        dev.write_sectors(lba, &sector).map_err(|e| sectors_error(format!("LBA {lba}"), lba, e))?;
        return Ok((format!("corrupt LBA {lba}"), "byte flipped".into()));
    }
    let Some(f) = &c.file else {
        return Err(RunError::new(RunErrorKind::Step, "corrupt", "corrupt: give `file` or `lba`"));
    };
    let file_error = |e| {
        RunError::caused(RunErrorKind::Corrupt, "corrupt", format!("corrupt: bank {}: {}", f.bank, f.file), e)
            .with_bank(f.bank)
            .with_file(&f.file)
    };
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let v = volumes.iter().find(|v| v.number == f.bank).ok_or_else(|| {
        RunError::new(RunErrorKind::Corrupt, "corrupt", format!("bank {} not found", f.bank)).with_bank(f.bank)
    })?;
    let mut location = visorsim_host::bank::BankLocation::fat(f.bank, v.first_lba, v.sectors);
    if c.delete {
        location.remove(dev, &f.file).map_err(file_error)?;
        return Ok((format!("delete {}", f.file), "ok".into()));
    }
    let mut data = location.read(dev, &f.file, 1 << 30).map_err(|e| {
        RunError::new(RunErrorKind::Corrupt, "corrupt", format!("{}: {e}", f.file))
            .with_bank(f.bank)
            .with_file(&f.file)
            .with_source(e)
    })?;
    if let Some(len) = c.truncate_to {
        data.truncate(len as usize);
    } else if !data.is_empty() {
        let at = c.offset.map_or(data.len() / 2, |o| o as usize % data.len());
        data[at] ^= 0xFF;
    }
    location.write(dev, &f.file, &data).map_err(file_error)?;
    Ok((format!("corrupt {}/{}", f.bank, f.file), "ok".into()))
}

/// `corrupt` with `bytes`/`text` on a file: the bytes are written in place,
/// through the file's cluster chain as the FAT has it (every cluster the
/// range touches, not only the first), read-modify-write per sector. The
/// directory entry and the FAT are untouched, so the file keeps its size.
fn write_in_file(dev: &mut MemDisk, f: &FileRef, offset: u64, patch: &[u8]) -> Result<(String, String), RunError> {
    let what = format!("corrupt: bank {}: {}", f.bank, f.file);
    let failed = |e: FatReadError| {
        RunError::caused(RunErrorKind::Corrupt, "corrupt", what.clone(), e).with_bank(f.bank).with_file(&f.file)
    };
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let v = volumes.iter().find(|v| v.number == f.bank).ok_or_else(|| {
        RunError::new(RunErrorKind::Corrupt, "corrupt", format!("bank {} not found", f.bank)).with_bank(f.bank)
    })?;
    let reader = FatReader::open(dev, v.first_lba, v.sectors).map_err(failed)?;
    let file = reader.find(dev, &f.file).map_err(failed)?.ok_or_else(|| {
        RunError::new(RunErrorKind::Corrupt, "corrupt", format!("{what}: no such file"))
            .with_bank(f.bank)
            .with_file(&f.file)
    })?;
    let len = patch.len() as u64;
    let end = offset.checked_add(len).filter(|&end| end <= u64::from(file.size)).ok_or_else(|| {
        let message =
            format!("{what}: {len} byte(s) at offset {offset} pass the end of the file ({} bytes)", file.size);
        RunError::new(RunErrorKind::Corrupt, "corrupt", message).with_bank(f.bank).with_file(&f.file)
    })?;
    let ss = dev.sector_size().len() as u64;
    let mut run_start = 0u64; // the file offset of the run's first byte
    for run in reader.runs(dev, &file).map_err(failed)? {
        let run_end = run_start + run.sectors * ss;
        let (from, to) = (offset.max(run_start), end.min(run_end));
        if from < to {
            let first = run.lba + (from - run_start) / ss;
            let last = run.lba + (to - 1 - run_start) / ss;
            let at = (from - run_start) % ss;
            let data = &patch[(from - offset) as usize..(to - offset) as usize];
            patch_sectors(dev, first, last - first + 1, at, data)
                .map_err(|e| RunError::caused(RunErrorKind::Corrupt, "corrupt", what.clone(), e).with_lba(first))?;
        }
        run_start = run_end;
    }
    Ok((format!("write {len} byte(s) at {}/{}+{offset}", f.bank, f.file), "ok".into()))
}

/// `corrupt` with `bytes`/`text` on sectors: from byte `offset` of sector
/// `lba` on, across sectors, inside the disk.
fn write_at_lba(dev: &mut MemDisk, lba: u64, offset: u64, patch: &[u8]) -> Result<(String, String), RunError> {
    let ss = dev.sector_size().len() as u64;
    let len = patch.len() as u64;
    let start = lba.checked_mul(ss).and_then(|b| b.checked_add(offset));
    let end = start.and_then(|s| s.checked_add(len)).filter(|&end| end <= dev.size_bytes());
    let (Some(start), Some(end)) = (start, end) else {
        let message = format!(
            "corrupt: {len} byte(s) at LBA {lba} + {offset} pass the end of the disk ({} sectors)",
            dev.sector_count()
        );
        return Err(RunError::new(RunErrorKind::Corrupt, "corrupt", message).with_lba(lba));
    };
    let first = start / ss;
    let count = (end - 1) / ss - first + 1;
    patch_sectors(dev, first, count, start % ss, patch).map_err(|e| {
        RunError::caused(RunErrorKind::Corrupt, "corrupt", format!("corrupt: LBA {lba}"), e).with_lba(first)
    })?;
    Ok((format!("write {len} byte(s) at LBA {lba}+{offset}"), "ok".into()))
}

/// Reads `count` sectors from `lba`, puts `data` at byte `at` of them, writes them back.
fn patch_sectors(dev: &mut MemDisk, lba: u64, count: u64, at: u64, data: &[u8]) -> Result<(), DiskError> {
    let mut sectors = vec![0u8; count as usize * dev.sector_size().len()];
    dev.read_sectors(lba, &mut sectors)?;
    sectors[at as usize..at as usize + data.len()].copy_from_slice(data);
    dev.write_sectors(lba, &sectors)
}
