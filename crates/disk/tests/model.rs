//! Property tests: devices against a plain `Vec<u8>` model.
//!
//! - `MemDisk`: random writes and reads (in and out of range) agree with the
//!   model, and the stored chunks hold exactly the model's non-zero data;
//! - forks: fork at random points, write to both sides, each side matches
//!   its own model (isolation both ways);
//! - `ByteIo`: random unaligned reads, writes and seeks through a window at a
//!   non-zero offset agree with the model, and bytes outside the window are
//!   never touched;
//! - `WriteLog` and `Observed`: the recorded events are exactly the accepted
//!   writes and flushes, in the order issued.

use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use proptest::prelude::*;
use visorsim_disk::{BlockDevice, ByteIo, DiskErrorKind, IoEvent, LoggedIo, MemDisk, Observed, SectorSize, WriteLog};

/// 12 KiB + one sector: three 4 KiB chunks and a partial one at 512 bytes.
const BYTES_512: u64 = 12 * 1024 + 512;
/// 5 sectors of 4 KiB.
const BYTES_4096: u64 = 5 * 4096;

fn sector_size() -> impl Strategy<Value = SectorSize> {
    prop_oneof![Just(SectorSize::S512), Just(SectorSize::S4096)]
}

fn disk_bytes(size: SectorSize) -> u64 {
    match size {
        SectorSize::S512 => BYTES_512,
        SectorSize::S4096 => BYTES_4096,
    }
}

/// Content for a write: `seed == 0` gives zeros (so chunks get dropped too).
fn fill(seed: u8, len: usize) -> Vec<u8> {
    if seed == 0 {
        return vec![0; len];
    }
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// A sector request. `lba` and `sectors` range a little past the end of the
/// small test disks so some requests are refused.
#[derive(Clone, Debug)]
enum Op {
    Write { lba: u64, sectors: u64, seed: u8 },
    Read { lba: u64, sectors: u64 },
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u64..30, 0u64..9, any::<u8>()).prop_map(|(lba, sectors, seed)| Op::Write { lba, sectors, seed }),
        3 => (0u64..30, 0u64..9).prop_map(|(lba, sectors)| Op::Read { lba, sectors }),
        1 => Just(Op::Flush),
    ]
}

/// Whether `sectors` at `lba` fit in a device of `count` sectors.
fn in_range(lba: u64, sectors: u64, count: u64) -> bool {
    lba + sectors <= count
}

/// Applies `op` to `dev` and to `model`, checking they agree. Returns the
/// event a log should hold for it, if the device accepted a write or flush.
fn apply(dev: &mut dyn BlockDevice, model: &mut [u8], op: &Op) -> Result<Option<LoggedIo>, TestCaseError> {
    let ss = dev.sector_size().bytes_u64();
    let count = dev.sector_count();
    match *op {
        Op::Write { lba, sectors, seed } => {
            let data = fill(seed, (sectors * ss) as usize);
            let result = dev.write_sectors(lba, &data);
            if in_range(lba, sectors, count) {
                prop_assert!(result.is_ok(), "write {sectors} at {lba}: {:?}", result);
                let at = (lba * ss) as usize;
                model[at..at + data.len()].copy_from_slice(&data);
                Ok(Some(LoggedIo::Write { lba, data }))
            } else {
                let err = result.expect_err("out-of-range write accepted");
                prop_assert_eq!(err.kind(), DiskErrorKind::OutOfRange);
                prop_assert_eq!(err.lba(), lba);
                Ok(None)
            }
        }
        Op::Read { lba, sectors } => {
            let mut buf = vec![0xEE; (sectors * ss) as usize];
            let result = dev.read_sectors(lba, &mut buf);
            if in_range(lba, sectors, count) {
                prop_assert!(result.is_ok(), "read {sectors} at {lba}: {:?}", result);
                let at = (lba * ss) as usize;
                prop_assert!(
                    buf == model[at..at + buf.len()],
                    "read {} at LBA {} differs from the model",
                    sectors,
                    lba
                );
            } else {
                let err = result.expect_err("out-of-range read accepted");
                prop_assert_eq!(err.kind(), DiskErrorKind::OutOfRange);
                prop_assert_eq!(err.lba(), lba);
            }
            Ok(None)
        }
        Op::Flush => {
            prop_assert!(dev.flush().is_ok());
            Ok(Some(LoggedIo::Flush))
        }
    }
}

/// The whole device equals the model, and the stored chunks of a `MemDisk`
/// are exactly where the model has data.
fn assert_matches(disk: &mut MemDisk, model: &[u8], what: &str) -> Result<(), TestCaseError> {
    let mut all = vec![0xEE; model.len()];
    disk.read_sectors(0, &mut all).unwrap();
    prop_assert!(all == model, "{}: device differs from the model", what);
    let mut rebuilt = vec![0u8; model.len()];
    for (offset, data) in disk.stored_chunks() {
        let at = offset as usize;
        prop_assert!(at + data.len() <= model.len(), "{}: chunk at {} passes the end", what, offset);
        rebuilt[at..at + data.len()].copy_from_slice(data);
    }
    prop_assert!(rebuilt == model, "{}: stored chunks differ from the model", what);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn memdisk_matches_a_vec_model(size in sector_size(), ops in prop::collection::vec(op(), 1..40)) {
        let bytes = disk_bytes(size);
        let mut disk = MemDisk::with_size(bytes, size);
        prop_assert_eq!(disk.size_bytes(), bytes);
        let mut model = vec![0u8; bytes as usize];
        for op in &ops {
            apply(&mut disk, &mut model, op)?;
        }
        assert_matches(&mut disk, &model, "disk")?;
        // Never more chunks than the disk has, and none that are all zeros
        // unless a partial write left one behind.
        prop_assert!(disk.resident_bytes() <= bytes.div_ceil(4096) * 4096);
    }
}

/// A step of the fork test: `side` 0 is A, 1 is B.
#[derive(Clone, Debug)]
enum ForkOp {
    /// B becomes a fresh fork of A (or A of B).
    Fork { from_b: bool },
    /// A sector request to one side.
    On { side_b: bool, op: Op },
}

fn fork_op() -> impl Strategy<Value = ForkOp> {
    prop_oneof![
        1 => any::<bool>().prop_map(|from_b| ForkOp::Fork { from_b }),
        6 => (any::<bool>(), op()).prop_map(|(side_b, op)| ForkOp::On { side_b, op }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn forks_are_isolated_both_ways(
        size in sector_size(),
        before in prop::collection::vec(op(), 0..10),
        ops in prop::collection::vec(fork_op(), 1..40),
    ) {
        let bytes = disk_bytes(size);
        let mut a = MemDisk::with_size(bytes, size);
        let mut model_a = vec![0u8; bytes as usize];
        for op in &before {
            apply(&mut a, &mut model_a, op)?;
        }
        let mut b = a.fork();
        let mut model_b = model_a.clone();
        for step in &ops {
            match step {
                ForkOp::Fork { from_b: false } => {
                    b = a.fork();
                    model_b = model_a.clone();
                }
                ForkOp::Fork { from_b: true } => {
                    a = b.fork();
                    model_a = model_b.clone();
                }
                ForkOp::On { side_b: false, op } => {
                    apply(&mut a, &mut model_a, op)?;
                }
                ForkOp::On { side_b: true, op } => {
                    apply(&mut b, &mut model_b, op)?;
                }
            }
            // Check both sides after every step: a write that leaked into
            // the other side shows at once.
            assert_matches(&mut a, &model_a, "side A")?;
            assert_matches(&mut b, &model_b, "side B")?;
        }
    }
}

/// A step through a `ByteIo` window.
#[derive(Clone, Debug)]
enum ByteOp {
    Read(usize),
    Write { len: usize, seed: u8 },
    SeekStart(u64),
    SeekCurrent(i64),
    SeekEnd(i64),
    Flush,
}

fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        4 => (0usize..9000).prop_map(ByteOp::Read),
        4 => (0usize..9000, 1u8..=255).prop_map(|(len, seed)| ByteOp::Write { len, seed }),
        2 => (0u64..22_000).prop_map(ByteOp::SeekStart),
        2 => (-10_000i64..10_000).prop_map(ByteOp::SeekCurrent),
        2 => (-22_000i64..100).prop_map(ByteOp::SeekEnd),
        1 => Just(ByteOp::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn byte_io_matches_a_vec_model(
        size in sector_size(),
        start in 1u64..6000,
        len in 0u64..20_000,
        ops in prop::collection::vec(byte_op(), 1..30),
    ) {
        let bytes = disk_bytes(size);
        // Something outside the window to prove it is never touched.
        let mut disk = MemDisk::with_size(bytes, size);
        let mut model = fill(7, bytes as usize);
        disk.write_sectors(0, &model).unwrap();

        let mut io = ByteIo::window(disk, start, len);
        let start = start.min(bytes);
        let len = len.min(bytes - start);
        prop_assert_eq!(io.len(), len);
        prop_assert_eq!(io.is_empty(), len == 0);
        let mut pos = 0u64;
        for op in &ops {
            match *op {
                ByteOp::Read(n) => {
                    let mut buf = vec![0xEE; n];
                    let mut got = 0;
                    // `read` may return less than asked (one sector at a time).
                    while got < n {
                        let k = io.read(&mut buf[got..]).unwrap();
                        if k == 0 {
                            break;
                        }
                        got += k;
                    }
                    let expect = (n as u64).min(len.saturating_sub(pos)) as usize;
                    prop_assert_eq!(got, expect, "read {} at {}", n, pos);
                    let at = (start + pos) as usize;
                    if expect > 0 {
                        prop_assert!(buf[..got] == model[at..at + got], "read {} at {} differs", n, pos);
                    }
                    pos += got as u64;
                }
                ByteOp::Write { len: n, seed } => {
                    let data = fill(seed, n);
                    let result = io.write_all(&data);
                    let fits = len.saturating_sub(pos).min(n as u64) as usize;
                    if fits > 0 {
                        let at = (start + pos) as usize;
                        model[at..at + fits].copy_from_slice(&data[..fits]);
                    }
                    if fits == n {
                        prop_assert!(result.is_ok(), "write {} at {}: {:?}", n, pos, result);
                    } else {
                        let err = result.expect_err("write past the window accepted");
                        prop_assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
                    }
                    pos += fits as u64;
                }
                ByteOp::SeekStart(p) => {
                    prop_assert_eq!(io.seek(SeekFrom::Start(p)).unwrap(), p);
                    pos = p;
                }
                ByteOp::SeekCurrent(d) => match pos.checked_add_signed(d) {
                    Some(p) => {
                        prop_assert_eq!(io.seek(SeekFrom::Current(d)).unwrap(), p);
                        pos = p;
                    }
                    None => {
                        let err = io.seek(SeekFrom::Current(d)).expect_err("seek before 0");
                        prop_assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
                    }
                },
                ByteOp::SeekEnd(d) => match len.checked_add_signed(d) {
                    Some(p) => {
                        prop_assert_eq!(io.seek(SeekFrom::End(d)).unwrap(), p);
                        pos = p;
                    }
                    None => {
                        prop_assert!(io.seek(SeekFrom::End(d)).is_err());
                    }
                },
                ByteOp::Flush => io.flush().unwrap(),
            }
            prop_assert_eq!(io.stream_position().unwrap(), pos);
        }
        // The whole device, inside and outside the window, equals the model.
        let mut disk = io.into_inner();
        let mut all = vec![0u8; bytes as usize];
        disk.read_sectors(0, &mut all).unwrap();
        prop_assert!(all == model, "device differs from the model");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn write_log_records_accepted_writes_and_flushes_in_order(
        size in sector_size(),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let bytes = disk_bytes(size);
        let mut dev = WriteLog::new(MemDisk::with_size(bytes, size));
        let mut model = vec![0u8; bytes as usize];
        let mut expected = Vec::new();
        for op in &ops {
            expected.extend(apply(&mut dev, &mut model, op)?);
        }
        prop_assert_eq!(dev.events(), &expected[..]);
        let (mut inner, events) = {
            let taken = dev.take_events();
            prop_assert!(dev.events().is_empty());
            let (inner, rest) = dev.into_parts();
            prop_assert!(rest.is_empty());
            (inner, taken)
        };
        prop_assert_eq!(events, expected);
        assert_matches(&mut inner, &model, "inner device")?;
    }

    #[test]
    fn observed_hook_sees_accepted_writes_and_flushes_in_order(
        size in sector_size(),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let bytes = disk_bytes(size);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&seen);
        let mut dev = Observed::new(MemDisk::with_size(bytes, size), move |e: IoEvent<'_>| {
            sink.borrow_mut().push(LoggedIo::from(e));
        });
        // The same requests through a WriteLog over the Observed device: the
        // two records must agree with each other and with the expectation.
        let mut log = WriteLog::new(&mut dev);
        let mut model = vec![0u8; bytes as usize];
        let mut expected = Vec::new();
        for op in &ops {
            expected.extend(apply(&mut log, &mut model, op)?);
        }
        prop_assert_eq!(log.events(), &expected[..]);
        drop(log);
        prop_assert_eq!(&*seen.borrow(), &expected);
        let mut inner = dev.into_inner();
        assert_matches(&mut inner, &model, "inner device")?;
    }
}
