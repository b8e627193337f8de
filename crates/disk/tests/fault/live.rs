//! The live [`Faulty`] device: faults off, then each fault of the plan.

use std::collections::BTreeSet;

use visorsim_disk::{
    BitFlip, BlockDevice, CutReport, DiskError, DiskErrorKind, FaultPlan, Faulty, MemDisk, SectorSize, Tearing,
};

use super::{cache, faulty, media, pattern, sector, Model, SS};
use crate::util::{assert_error, SECTORS, SIZES};

// ---------------------------------------------------------------------------
// Faults off: exactly a MemDisk.

/// A small deterministic generator for request sequences (xorshift64).
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok(Option<Vec<u8>>),
    Err(DiskErrorKind, u64, String),
}

fn outcome(result: Result<(), DiskError>, data: Option<Vec<u8>>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok(data),
        Err(e) => Outcome::Err(e.kind(), e.lba(), e.to_string()),
    }
}

/// One request, in range or not, aligned or not, on both devices.
fn same_request(g: &mut Gen, reference: &mut MemDisk, dev: &mut dyn BlockDevice, step: usize) {
    let ss = reference.sector_size().len();
    let lba = match g.next(10) {
        0 => u64::MAX - g.next(3),
        1 => SECTORS - g.next(3),
        _ => g.next(SECTORS + 4),
    };
    let len = match g.next(12) {
        0 => ss / 2 + 1,
        1 => 0,
        _ => g.next(9) as usize * ss,
    };
    let (a, b) = match g.next(8) {
        0 => (outcome(reference.flush(), None), outcome(dev.flush(), None)),
        1..=4 => {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(step as u8) | 1).collect();
            (outcome(reference.write_sectors(lba, &data), None), outcome(dev.write_sectors(lba, &data), None))
        }
        _ => {
            let (mut x, mut y) = (vec![0xEE; len], vec![0xEE; len]);
            let a = reference.read_sectors(lba, &mut x);
            let b = dev.read_sectors(lba, &mut y);
            (outcome(a, Some(x)), outcome(b, Some(y)))
        }
    };
    assert_eq!(a, b, "step {step}: LBA {lba}, {len} bytes");
}

#[test]
fn faults_off_behaves_like_memdisk() {
    for size in SIZES {
        let plans = [FaultPlan::new(1), FaultPlan { volatile_cache: cache(4, 100), ..FaultPlan::new(2) }];
        for plan in plans {
            let name = format!("{}/cache {:?}", size.bytes(), plan.volatile_cache);
            let mut reference = MemDisk::new(SECTORS, size);
            let mut dev = Faulty::new(MemDisk::new(SECTORS, size), plan.clone());
            assert_eq!(
                (dev.sector_size(), dev.sector_count(), dev.size_bytes()),
                (size, SECTORS, reference.size_bytes())
            );
            let mut g = Gen(0x9E37_79B9_7F4A_7C15 ^ u64::from(size.bytes()));
            for step in 0..600 {
                same_request(&mut g, &mut reference, &mut dev, step);
            }
            assert_eq!(dev.ios(), 600, "{name}: every request is counted");
            assert!(!dev.power_lost() && dev.last_cut().is_none(), "{name}");
            dev.flush().unwrap();
            let all = SECTORS as usize * size.len();
            let (mut x, mut y) = (vec![0; all], vec![0; all]);
            reference.read_sectors(0, &mut x).unwrap();
            dev.inner_mut().read_sectors(0, &mut y).unwrap();
            assert_eq!(x, y, "{name}: the media holds every write after a flush");
            assert_eq!(dev.content_token(0, SECTORS), dev.inner().content_token(0, SECTORS), "{name}");
            assert_eq!(dev.content_token(SECTORS, 1), None, "{name}");
            assert_eq!(dev.plan(), &plan, "{name}: the plan is unchanged");
        }
    }
}

#[test]
fn cached_writes_reach_the_media_at_flush_in_order() {
    let mut dev = faulty(FaultPlan { volatile_cache: cache(2, 50), ..FaultPlan::new(3) });
    dev.write_sectors(4, &pattern(2, 1)).unwrap();
    dev.write_sectors(5, &pattern(2, 2)).unwrap();
    assert_eq!(dev.unflushed_writes(), 2);
    assert!(media(&dev).iter().all(|&b| b == 0), "nothing on the media before the flush");
    assert_eq!(dev.content_token(0, 5), None, "cached writes cover LBA 4");
    assert!(dev.content_token(10, 5).is_some());
    let mut back = vec![0; 3 * SS];
    dev.read_sectors(4, &mut back).unwrap();
    assert_eq!(&back[..SS], &pattern(2, 1)[..SS], "read-your-writes");
    assert_eq!(&back[SS..], &pattern(2, 2)[..], "the newer write wins");
    dev.flush().unwrap();
    assert_eq!((dev.unflushed_writes(), dev.epoch()), (0, 1));
    let bytes = media(&dev);
    assert_eq!(&bytes[4 * SS..7 * SS], &back[..]);
}

// ---------------------------------------------------------------------------
// Power cuts and torn writes.

#[test]
fn power_cut_after_n_writes() {
    for plan_cache in [None, cache(0, 100)] {
        let plan = FaultPlan { power_cut_after_writes: Some(3), volatile_cache: plan_cache, ..FaultPlan::new(4) };
        let mut dev = faulty(plan);
        let mut model = Model(vec![0; SECTORS as usize * SS]);
        for n in 1..=3u8 {
            let lba = u64::from(n) * 10;
            let data = pattern(u64::from(n), n);
            dev.write_sectors(lba, &data).unwrap();
            model.apply(lba, &data, None);
            assert_eq!(dev.power_lost(), n == 3, "power goes right after write 3");
        }
        assert_eq!(media(&dev), model.0, "{plan_cache:?}: the media holds writes 1..=3 exactly");
        let ios = dev.ios();
        assert_error(dev.write_sectors(40, &pattern(1, 9)), DiskErrorKind::PowerLost, 40, "write after the cut");
        assert_error(dev.read_sectors(10, &mut [0; SS]), DiskErrorKind::PowerLost, 10, "read after the cut");
        assert_error(dev.flush(), DiskErrorKind::PowerLost, 0, "flush after the cut");
        assert_eq!(dev.content_token(0, 1), None);
        assert_eq!((dev.ios(), dev.writes()), (ios, 3), "refused requests are not counted");
        assert_eq!(media(&dev), model.0);
        let report = dev.last_cut().unwrap().clone();
        assert_eq!((report.writes, report.torn, report.lost.len()), (3, None, 0));
        assert_eq!(dev.plan().power_cut_after_writes, None, "the cut fires once");

        dev.restore_power();
        let mut back = vec![0; SS];
        dev.read_sectors(30, &mut back).unwrap();
        assert_eq!(back, &pattern(3, 3)[..SS]);
        dev.write_sectors(40, &pattern(1, 9)).unwrap();
        assert!(!dev.power_lost());
    }
}

#[test]
fn power_cut_before_any_write_and_by_hand() {
    let mut dev = faulty(FaultPlan { power_cut_after_writes: Some(0), ..FaultPlan::new(5) });
    assert_error(dev.read_sectors(1, &mut [0; SS]), DiskErrorKind::PowerLost, 1, "read with a cut before any write");
    assert_eq!(dev.ios(), 0);
    dev.restore_power();
    dev.write_sectors(1, &pattern(1, 1)).unwrap();

    dev.cut_power();
    assert!(dev.power_lost());
    dev.cut_power(); // no-op
    assert_eq!(dev.epoch(), 2, "each cut ended an epoch");
    assert_error(dev.write_sectors(2, &pattern(1, 2)), DiskErrorKind::PowerLost, 2, "write after cut_power");
    let err = dev.flush().unwrap_err();
    assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::Other);
}

#[test]
fn torn_prefix_and_torn_sector() {
    let old = pattern(4, 100);
    let new = pattern(4, 200);
    let cases = [
        (Tearing::Prefix { sectors: 2 }, true, Tearing::Prefix { sectors: 2 }, 2 * SS),
        (Tearing::Prefix { sectors: 9 }, true, Tearing::Prefix { sectors: 9 }, 4 * SS),
        (
            Tearing::TornSector { sectors: 1, bytes: 100 },
            false,
            Tearing::TornSector { sectors: 1, bytes: 100 },
            SS + 100,
        ),
        (Tearing::TornSector { sectors: 0, bytes: 9999 }, false, Tearing::TornSector { sectors: 0, bytes: 9999 }, SS),
        // Atomic sectors: the torn sector keeps its old bytes.
        (Tearing::TornSector { sectors: 1, bytes: 100 }, true, Tearing::Prefix { sectors: 1 }, SS),
    ];
    for plan_cache in [None, cache(8, 100)] {
        for (tearing, sector_atomic, effective, new_bytes) in cases {
            let mut base = MemDisk::new(SECTORS, SectorSize::S512);
            base.write_sectors(10, &old).unwrap();
            let plan = FaultPlan {
                power_cut_after_writes: Some(2),
                torn_last_write: Some(tearing),
                sector_atomic,
                volatile_cache: plan_cache,
                ..FaultPlan::new(6)
            };
            let mut dev = Faulty::new(base, plan);
            dev.write_sectors(0, &pattern(1, 1)).unwrap();
            dev.write_sectors(10, &new).unwrap();
            assert!(dev.power_lost());
            let bytes = media(&dev);
            let what = format!("{tearing:?}, atomic {sector_atomic}, cache {plan_cache:?}");
            let got = &bytes[10 * SS..14 * SS];
            assert_eq!(&got[..new_bytes], &new[..new_bytes], "{what}: new part");
            assert_eq!(&got[new_bytes..], &old[new_bytes..], "{what}: old part");
            let report = dev.last_cut().unwrap();
            assert_eq!(report.torn, Some((2, effective)), "{what}");
            assert!(!report.lost.contains(&2), "{what}: the write in flight is never lost");
            if plan_cache.is_none() {
                assert_eq!(sector(&bytes, 0), &pattern(1, 1)[..], "{what}: write-through keeps write 1");
            } else {
                assert_eq!(report.lost, [1], "{what}: with p = 100 every other unflushed write is lost");
                assert!(sector(&bytes, 0).iter().all(|&b| b == 0), "{what}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The volatile cache at a cut.

/// Flushed writes, then unflushed ones (some overlapping the flushed ones),
/// then a cut. Returns the media and the report.
fn cut_with_cache(seed: u64, max_reorder: usize, percent: u8) -> (Vec<u8>, CutReport) {
    let mut dev = faulty(FaultPlan { volatile_cache: cache(max_reorder, percent), ..FaultPlan::new(seed) });
    for (i, lba) in [0u64, 8, 16].into_iter().enumerate() {
        dev.write_sectors(lba, &pattern(4, i as u8)).unwrap();
    }
    dev.flush().unwrap();
    for (i, lba) in [2u64, 20, 30, 31, 40, 44, 9].into_iter().enumerate() {
        dev.write_sectors(lba, &pattern(2, 50 + i as u8)).unwrap();
    }
    dev.cut_power();
    (media(&dev), dev.last_cut().unwrap().clone())
}

#[test]
fn flushed_data_survives_every_cut_and_losses_are_bounded() {
    let unflushed: [(u64, u64, u8); 7] =
        [(2, 4, 50), (20, 5, 51), (30, 6, 52), (31, 7, 53), (40, 8, 54), (44, 9, 55), (9, 10, 56)];
    for seed in 0..64 {
        let (bytes, report) = cut_with_cache(seed, 3, 70);
        assert_eq!(report.epoch, 1);
        assert_eq!(report.unflushed, [4, 5, 6, 7, 8, 9, 10]);
        assert!(report.lost.len() <= 3, "seed {seed}: {report}");
        // Flushed writes, then the unflushed writes not lost, in order.
        let mut model = Model(vec![0; SECTORS as usize * SS]);
        for (i, lba) in [0u64, 8, 16].into_iter().enumerate() {
            model.apply(lba, &pattern(4, i as u8), None);
        }
        for &(lba, number, salt) in &unflushed {
            if !report.lost.contains(&number) {
                model.apply(lba, &pattern(2, salt), None);
            }
        }
        assert_eq!(bytes, model.0, "seed {seed}: {report}");
        // Sectors only flushed writes touched hold the flushed bytes.
        for lba in [0u64, 1, 8, 11, 16, 17, 18, 19] {
            assert!(sector(&bytes, lba).iter().all(|&b| b != 0), "seed {seed}: flushed LBA {lba} lost");
        }
    }
}

#[test]
fn same_seed_same_cut_different_seeds_differ() {
    let mut outcomes = BTreeSet::new();
    for seed in 0..32 {
        let first = cut_with_cache(seed, 4, 50);
        assert_eq!(first, cut_with_cache(seed, 4, 50), "seed {seed} is not deterministic");
        outcomes.insert(first.1.lost);
    }
    assert!(outcomes.len() >= 8, "32 seeds gave only {} different losses: {outcomes:?}", outcomes.len());
    let (_, none) = cut_with_cache(7, 0, 100);
    assert!(none.lost.is_empty(), "max_reorder 0 loses nothing");
    let (_, all) = cut_with_cache(7, 3, 100);
    assert_eq!(all.lost.len(), 3, "p = 100 loses exactly max_reorder writes");
}

/// `lost_at_cut` loses exactly the cached writes it names (a reproducer's
/// crash state), never the one in flight, and nothing flushed.
#[test]
fn lost_at_cut_loses_exactly_the_named_cached_writes() {
    let plan = FaultPlan {
        volatile_cache: cache(0, 0),
        lost_at_cut: [2, 4, 5].into(),
        power_cut_after_writes: Some(5),
        torn_last_write: Some(Tearing::Prefix { sectors: 1 }),
        ..FaultPlan::new(11)
    };
    let mut dev = faulty(plan);
    dev.write_sectors(1, &pattern(1, 1)).unwrap();
    dev.write_sectors(2, &pattern(1, 2)).unwrap();
    dev.flush().unwrap();
    for (lba, byte) in [(3, 3), (4, 4), (5, 5)] {
        dev.write_sectors(lba, &pattern(1, byte)).unwrap();
    }
    assert!(dev.power_lost());
    let cut = dev.last_cut().unwrap().clone();
    assert_eq!(cut.lost, [4], "write 2 was flushed; write 5 was in flight");
    let media = media(&dev);
    assert_eq!(sector(&media, 2), &pattern(1, 2)[..]);
    assert_eq!(sector(&media, 3), &pattern(1, 3)[..]);
    assert_eq!(sector(&media, 4), &[0; SS][..], "write 4 lost");
    assert_eq!(sector(&media, 5), &pattern(1, 5)[..], "the write in flight lands");
}

#[test]
fn switching_the_cache_off_writes_it_back() {
    let mut dev = faulty(FaultPlan { volatile_cache: cache(1, 100), ..FaultPlan::new(8) });
    dev.write_sectors(3, &pattern(1, 1)).unwrap();
    dev.plan_mut().volatile_cache = None;
    dev.write_sectors(3, &pattern(1, 2)).unwrap();
    assert_eq!(dev.unflushed_writes(), 0);
    assert_eq!(sector(&media(&dev), 3), &pattern(1, 2)[..], "the newer write wins on the media");
}

// ---------------------------------------------------------------------------
// Bad sectors, bit flips, read-only, full, gone.

#[test]
fn bad_sectors_fail_reads_and_are_remapped_by_writes() {
    let plan = FaultPlan { bad_sectors: [5, 9].into(), ..FaultPlan::new(9) };
    let mut dev = faulty(plan);
    assert_error(dev.read_sectors(5, &mut [0; SS]), DiskErrorKind::MediaError, 5, "read of bad LBA 5");
    let err = dev.read_sectors(3, &mut [0; 4 * SS]).unwrap_err();
    assert_eq!((err.kind(), err.lba()), (DiskErrorKind::MediaError, 3));
    assert!(err.to_string().contains("LBA 5"), "the detail names the bad sector: {err}");
    dev.read_sectors(6, &mut [0; 3 * SS]).unwrap();
    assert_eq!(dev.content_token(4, 3), None);
    assert!(dev.content_token(6, 3).is_some());
    // A write remaps the sector: it reads again.
    dev.write_sectors(5, &pattern(1, 3)).unwrap();
    let mut back = vec![0; SS];
    dev.read_sectors(5, &mut back).unwrap();
    assert_eq!(back, pattern(1, 3));
    assert_eq!(dev.plan().bad_sectors, [9].into());

    // Writes fail too when asked.
    let plan = FaultPlan { bad_sectors: [5].into(), bad_sectors_fail_writes: true, ..FaultPlan::new(9) };
    let mut dev = faulty(plan);
    assert_error(dev.write_sectors(4, &pattern(2, 3)), DiskErrorKind::MediaError, 4, "write over a bad sector");
    assert!(media(&dev).iter().all(|&b| b == 0), "nothing written");
    assert_eq!(dev.writes(), 0);
    assert_error(
        dev.read_sectors(5, &mut [0; SS]),
        DiskErrorKind::MediaError,
        5,
        "read of bad LBA 5 after a refused write",
    );

    // With a cache: the cached write is read back, but a write lost at the
    // cut never reached the media, so the sector is still bad.
    let plan = FaultPlan { bad_sectors: [5].into(), volatile_cache: cache(8, 100), ..FaultPlan::new(9) };
    let mut dev = faulty(plan);
    dev.write_sectors(5, &pattern(1, 4)).unwrap();
    dev.read_sectors(5, &mut back).unwrap();
    assert_eq!(back, pattern(1, 4));
    dev.cut_power();
    dev.restore_power();
    assert_eq!(dev.last_cut().unwrap().lost, [1]);
    assert_error(
        dev.read_sectors(5, &mut back),
        DiskErrorKind::MediaError,
        5,
        "read of LBA 5 after its write was lost at the cut",
    );
}

#[test]
fn bit_flips_are_silent_and_leave_the_media_alone() {
    let flips = vec![
        BitFlip { lba: 3, byte: 0, bit: 0 },
        BitFlip { lba: 3, byte: 511, bit: 7 },
        BitFlip { lba: 4, byte: 600, bit: 1 }, // past the sector: ignored
        BitFlip { lba: 6, byte: 10, bit: 10 }, // bit 10 is bit 2
    ];
    let mut base = MemDisk::new(SECTORS, SectorSize::S512);
    let data = pattern(5, 7);
    base.write_sectors(2, &data).unwrap();
    let mut dev = Faulty::new(base, FaultPlan { bit_flips: flips, ..FaultPlan::new(10) });
    let mut expected = data.clone();
    expected[SS] ^= 1;
    expected[2 * SS - 1] ^= 0x80;
    expected[4 * SS + 10] ^= 0x04;
    for _ in 0..2 {
        let mut back = vec![0; 5 * SS];
        dev.read_sectors(2, &mut back).unwrap();
        assert_eq!(back, expected, "flipped bits, every time");
    }
    assert_eq!(&media(&dev)[2 * SS..7 * SS], &data[..], "the media is unchanged");
    assert_eq!(dev.content_token(2, 2), None);
    assert!(dev.content_token(7, 3).is_some());
    // Rewriting sector 3 heals its flips.
    dev.write_sectors(3, &data[SS..2 * SS]).unwrap();
    let mut back = vec![0; SS];
    dev.read_sectors(3, &mut back).unwrap();
    assert_eq!(back, &data[SS..2 * SS]);
    assert_eq!(dev.plan().bit_flips.len(), 2);
}

#[test]
fn read_only_refuses_writes() {
    let mut base = MemDisk::new(SECTORS, SectorSize::S512);
    base.write_sectors(1, &pattern(1, 1)).unwrap();
    let mut dev = Faulty::new(base, FaultPlan { read_only: true, ..FaultPlan::new(11) });
    for (lba, sectors) in [(0, 1), (1, 3), (SECTORS - 1, 1)] {
        assert_error(
            dev.write_sectors(lba, &pattern(sectors, 2)),
            DiskErrorKind::ReadOnly,
            lba,
            "write to a read-only device",
        );
    }
    assert_error(
        dev.write_sectors(SECTORS, &pattern(1, 2)),
        DiskErrorKind::OutOfRange,
        SECTORS,
        "out-of-range write to a read-only device",
    );
    let mut back = vec![0; SS];
    dev.read_sectors(1, &mut back).unwrap();
    assert_eq!(back, pattern(1, 1));
    dev.flush().unwrap();
    assert_eq!(dev.writes(), 0);
    let err = dev.write_sectors(0, &pattern(1, 2)).unwrap_err();
    assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::PermissionDenied);
}

#[test]
fn full_device_refuses_new_sectors() {
    let mut dev = faulty(FaultPlan { full_after_sectors: Some(10), ..FaultPlan::new(12) });
    dev.write_sectors(0, &pattern(8, 1)).unwrap(); // 8 in use
    assert_error(dev.write_sectors(20, &pattern(3, 2)), DiskErrorKind::NoSpace, 20, "3 new sectors with 2 free");
    dev.write_sectors(6, &pattern(4, 3)).unwrap(); // 2 new: 10 in use
    dev.write_sectors(0, &pattern(10, 4)).unwrap(); // rewriting is fine
    assert_error(dev.write_sectors(9, &pattern(2, 5)), DiskErrorKind::NoSpace, 9, "1 new sector on a full device");
    assert_eq!(dev.writes(), 3);
    let bytes = media(&dev);
    assert_eq!(&bytes[..10 * SS], &pattern(10, 4)[..]);
    assert!(bytes[10 * SS..].iter().all(|&b| b == 0), "refused writes left nothing");
    let err = dev.write_sectors(30, &pattern(1, 6)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "No space left on device at LBA 30: 1 new sector(s) do not fit: 10 of 10 sector(s) in use"
    );
    assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::StorageFull);
}

#[test]
fn device_gone_after_n_ios() {
    let mut dev = faulty(FaultPlan { gone_after_ios: Some(3), ..FaultPlan::new(13) });
    dev.write_sectors(0, &pattern(1, 1)).unwrap();
    dev.read_sectors(0, &mut [0; SS]).unwrap();
    dev.flush().unwrap();
    assert_error(dev.read_sectors(0, &mut [0; SS]), DiskErrorKind::DeviceGone, 0, "read of a gone device");
    assert_error(dev.write_sectors(2, &pattern(1, 1)), DiskErrorKind::DeviceGone, 2, "write to a gone device");
    assert_error(dev.flush(), DiskErrorKind::DeviceGone, 0, "flush of a gone device");
    assert_eq!(dev.ios(), 3);
    assert_eq!(dev.content_token(0, 1), None);
    let err = dev.flush().unwrap_err();
    assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::NotConnected);
    // Plugged back in.
    dev.plan_mut().gone_after_ios = None;
    dev.read_sectors(0, &mut [0; SS]).unwrap();
    // Lost at a chosen moment.
    dev.plan_mut().gone_after_ios = Some(dev.ios());
    assert_error(
        dev.read_sectors(0, &mut [0; SS]),
        DiskErrorKind::DeviceGone,
        0,
        "read after losing the device by hand",
    );
}
