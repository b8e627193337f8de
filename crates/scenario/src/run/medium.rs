//! The medium a scenario's host runs on: the fault layer over the disk,
//! plus a record of the writes a power cut can still lose, so that the
//! timeline says which writes a cut lost and where they were going.
//!
//! Contract:
//! - [`Medium`] answers every request exactly as its [`Faulty`] does (it
//!   derefs to it for the fault plan and the media); it only watches.
//! - While a volatile cache is armed, every accepted write is recorded by
//!   its number (as [`Faulty::writes`] counts it), LBA and length, until a
//!   flush lands it or a cut has been reported: the record is bounded by
//!   the cache itself.
//! - Which writes a cut loses is the fault layer's choice, drawn from the
//!   plan's seed (the scenario's `faults.seed`, default `disk.seed`) and
//!   the epoch: the same scenario gives the same losses.
//! - [`Medium::take_cut`] describes a cut once: each lost write with the
//!   partition, the FAT region and the file (by the medium as the cut left
//!   it) its sectors belong to.

use std::ops::{Deref, DerefMut};

use visorsim_boot::volume::{scan_volumes, Volume};
use visorsim_disk::{BlockDevice, ContentToken, CutReport, DiskError, Faulty, MemDisk, SectorSize};
use visorsim_media::fatread::{FatReader, SectorRun};

/// Lost writes a cut's description names one by one; the rest are counted.
const NAMED_WRITES: usize = 8;

/// An accepted write still in the volatile cache.
#[derive(Clone, Copy, Debug)]
struct CachedWrite {
    number: u64,
    lba: u64,
    sectors: u64,
}

/// The fault layer over the disk, watched (see the module's contract).
pub(super) struct Medium {
    faulty: Faulty<MemDisk>,
    cached: Vec<CachedWrite>,
    reported_epoch: Option<u64>,
}

impl Medium {
    pub(super) fn new(faulty: Faulty<MemDisk>) -> Medium {
        Medium { faulty, cached: Vec::new(), reported_epoch: None }
    }

    /// What the last power cut did to the volatile cache, once per cut
    /// (`None` when no new cut happened, or the cache held nothing).
    pub(super) fn take_cut(&mut self) -> Option<String> {
        let cut = self.faulty.last_cut()?.clone();
        if self.reported_epoch == Some(cut.epoch) {
            return None;
        }
        self.reported_epoch = Some(cut.epoch);
        let cached = std::mem::take(&mut self.cached);
        if cut.unflushed.is_empty() {
            return None;
        }
        Some(self.describe(&cut, &cached))
    }

    fn describe(&mut self, cut: &CutReport, cached: &[CachedWrite]) -> String {
        let seed = self.faulty.plan().seed;
        let mut text = format!(
            "power cut: {} unflushed write(s) in the cache, {} lost (fault seed {seed})",
            cut.unflushed.len(),
            cut.lost.len()
        );
        if cut.lost.is_empty() {
            text.push_str(": none lost");
        } else {
            let dev = self.faulty.inner_mut();
            let places = Places::of(dev);
            let named: Vec<String> = cut
                .lost
                .iter()
                .take(NAMED_WRITES)
                .map(|&number| match cached.iter().find(|w| w.number == number) {
                    Some(w) => format!("#{number} LBA {}+{} ({})", w.lba, w.sectors, places.name(dev, w.lba)),
                    None => format!("#{number}"),
                })
                .collect();
            text.push_str(": lost ");
            text.push_str(&named.join(", "));
            if cut.lost.len() > NAMED_WRITES {
                text.push_str(&format!(" and {} more", cut.lost.len() - NAMED_WRITES));
            }
        }
        if let Some((number, tearing)) = cut.torn {
            text.push_str(&format!("; write #{number} torn: {tearing}"));
        }
        text
    }
}

impl Deref for Medium {
    type Target = Faulty<MemDisk>;
    fn deref(&self) -> &Faulty<MemDisk> {
        &self.faulty
    }
}

impl DerefMut for Medium {
    fn deref_mut(&mut self) -> &mut Faulty<MemDisk> {
        &mut self.faulty
    }
}

impl BlockDevice for Medium {
    fn sector_size(&self) -> SectorSize {
        self.faulty.sector_size()
    }
    fn sector_count(&self) -> u64 {
        self.faulty.sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.faulty.read_sectors(lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.faulty.write_sectors(lba, buf)?;
        if self.faulty.plan().volatile_cache.is_some() {
            let sectors = (buf.len() / self.faulty.sector_size().len()) as u64;
            self.cached.push(CachedWrite { number: self.faulty.writes(), lba, sectors });
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        self.faulty.flush()?;
        self.cached.clear();
        Ok(())
    }
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        self.faulty.content_token(lba, count)
    }
}

/// The partitions of the medium and, for each FAT volume, its regions and
/// its root directory's files, to name where a write was going.
struct Places {
    volumes: Vec<Volume>,
    /// Per volume (same order), when it is a FAT volume that reads.
    fats: Vec<Option<FatPlaces>>,
}

/// A FAT volume's reader and the sectors of each file of its root directory.
struct FatPlaces {
    reader: FatReader,
    files: Vec<(String, Vec<SectorRun>)>,
}

impl Places {
    fn of(dev: &mut MemDisk) -> Places {
        let volumes = scan_volumes(dev).volumes;
        let fats = volumes
            .iter()
            .map(|v| {
                let reader = FatReader::open(dev, v.first_lba, v.sectors).ok()?;
                let files = reader.list_root(dev).ok()?;
                let files =
                    files.iter().map(|f| (f.short_name.clone(), reader.runs(dev, f).unwrap_or_default())).collect();
                Some(FatPlaces { reader, files })
            })
            .collect();
        Places { volumes, fats }
    }

    /// "partition 5, FAT", "partition 5, STATE.TGZ", "the primary GPT"...
    fn name(&self, dev: &MemDisk, lba: u64) -> String {
        let Some(i) = self.volumes.iter().position(|v| (v.first_lba..v.first_lba + v.sectors).contains(&lba)) else {
            return if lba < 34 {
                "the primary GPT".into()
            } else if lba >= dev.sector_count().saturating_sub(33) {
                "the backup GPT".into()
            } else {
                "outside every partition".into()
            };
        };
        let v = &self.volumes[i];
        let Some(FatPlaces { reader, files }) = &self.fats[i] else { return format!("partition {}", v.number) };
        let g = reader.geometry();
        let fat_lba = v.first_lba + u64::from(g.reserved_sectors);
        let root_lba = fat_lba + u64::from(g.fats) * u64::from(g.fat_sectors);
        let data_lba = v.first_lba + u64::from(g.first_data_sector());
        let region = if lba < fat_lba {
            "boot sector".to_owned()
        } else if lba < root_lba {
            "FAT".to_owned()
        } else if lba < data_lba {
            "root directory".to_owned()
        } else {
            match files.iter().find(|(_, runs)| runs.iter().any(|r| (r.lba..r.lba + r.sectors).contains(&lba))) {
                Some((name, _)) => name.clone(),
                None => {
                    let cluster = (lba - data_lba) / u64::from(g.sectors_per_cluster.max(1)) + 2;
                    format!("cluster {cluster}, no file of the root directory holds it now")
                }
            }
        };
        format!("partition {}, {region}", v.number)
    }
}

#[cfg(test)]
mod tests {
    use visorsim_disk::SectorSize;
    use visorsim_image::install::{install_fresh, InstallOptions};
    use visorsim_image::payload::default_cache_dir;
    use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
    use visorsim_media::layout::Layout;

    use super::*;

    #[test]
    fn a_write_is_named_by_partition_region_and_file() {
        let spec = ImageSpec {
            version: "6.7.0".into(),
            build_number: 1000,
            seed: 1,
            payload: PayloadSize::Compressed(100_000),
            hostname: "localhost".into(),
        };
        let image = SystemImage::build(&spec, default_cache_dir().as_deref(), &mut |_, _| {}).unwrap();
        let options = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 1 };
        let mut disk = install_fresh(&image, &options).unwrap().0;
        let places = Places::of(&mut disk);
        let v = *places.volumes.iter().find(|v| v.number == 5).unwrap();
        let reader = FatReader::open(&mut disk, v.first_lba, v.sectors).unwrap();
        let g = *reader.geometry();
        let fat = v.first_lba + u64::from(g.reserved_sectors);
        let root = fat + u64::from(g.fats) * u64::from(g.fat_sectors);
        let s_v00 = reader.find(&mut disk, "s.v00").unwrap().unwrap();
        let data = reader.runs(&mut disk, &s_v00).unwrap()[0].lba;
        let last = disk.sector_count() - 1;
        for (lba, name) in [
            (1, "the primary GPT"),
            (last, "the backup GPT"),
            (v.first_lba, "partition 5, boot sector"),
            (fat + 1, "partition 5, FAT"),
            (root, "partition 5, root directory"),
            (data, "partition 5, S.V00"),
            (v.first_lba + v.sectors - 1, "partition 5, cluster"),
        ] {
            let found = places.name(&disk, lba);
            assert!(found.starts_with(name), "LBA {lba}: {found}");
        }
    }
}
