//! The fixtures and the timed contenders of `visorsim bench`, and the
//! interleaved rounds that time them: every round runs every contender once,
//! in the same order (A B C … A B C …), so whatever else the machine does
//! hits them alike; the first `warmup` rounds are not kept.
//!
//! The contenders, on the image built for the run (realistic, or a small
//! payload with `--quick`):
//! - `boot/*`: cold boots of the image file (partition scan, FAT reads, every
//!   module inflated and CRC-checked, with or without both MD5s), a warm
//!   boot of an unchanged fork with a shared module cache, `s.v00` alone;
//! - `peer/*`: the same module files through each external decompressor;
//! - `limit/*`: memcpy bandwidth, and one core's MD5, CRC32 and libdeflate
//!   inflate throughput on the modules' bytes;
//! - `explore/*`: crash states per second through the library against the
//!   external-tools path (write the state, `fsck.fat -n`, `mtype`);
//! - `build/*`: building the image with a warm payload cache against writing
//!   the same bytes to the same file system, dd-style.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use visorsim_boot::boot::{boot, BootOptions, ModuleCache, Outcome};
use visorsim_boot::load::{load_module, LoadOptions};
use visorsim_disk::{BlockDevice, FileDisk, MemDisk, Overlay, SectorSize};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;
use visorsim_scenario::explore::{Exploration, ExploreOptions, Operation};

use super::peers::{run_peer, Peer};
use super::record::{Bound, Breakdown, Figure, Kind, ModuleCost, Settings, Spread};
use crate::progress::Progress;

/// How large and how long.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// Small payload and quick explore (checks the machinery in seconds).
    pub quick: bool,
    /// Measured rounds.
    pub rounds: u32,
    /// Unmeasured rounds first.
    pub warmup: u32,
    /// The payload cache.
    pub cache_dir: Option<PathBuf>,
    /// Where the image and module files go.
    pub work_dir: PathBuf,
    /// No progress bar or lines.
    pub quiet: bool,
}

/// The compressed size of `s.v00` with `--quick`.
const QUICK_PAYLOAD: u64 = 2_000_000;

/// The image of the run, as files and in memory.
pub struct Fixture {
    spec: ImageSpec,
    install: InstallOptions,
    /// The installed disk.
    disk: MemDisk,
    /// It, as a sparse raw file.
    image_path: PathBuf,
    /// (name, file bytes) of every module, boot.cfg order.
    modules: Vec<(String, Vec<u8>)>,
    /// Each module as a file, for the peers.
    module_paths: Vec<PathBuf>,
    /// Every gzip module's members concatenated, for the peers that take one input.
    concatenated: PathBuf,
    /// Uncompressed bytes of each module (0 for one that is not gzip).
    sizes: Vec<u64>,
}

impl Fixture {
    /// Builds the image (payloads from the cache when warm) and writes it
    /// and its module files into `dir`.
    ///
    /// # Errors
    /// Building or writing failed.
    pub fn build(options: &SuiteOptions) -> Result<Fixture, String> {
        let spec = ImageSpec {
            version: "6.7.0".into(),
            build_number: 8169922,
            seed: 1,
            payload: if options.quick { PayloadSize::Compressed(QUICK_PAYLOAD) } else { PayloadSize::Realistic },
            hostname: "esxi-01".into(),
        };
        let mut progress = Progress::new("bench: generating system modules", options.quiet);
        let image = SystemImage::build(&spec, options.cache_dir.as_deref(), &mut |d, t| progress.update(d, t))
            .map_err(|e| format!("Building the system image: {e}"))?;
        progress.finish();
        let install = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 1 };
        let (disk, _) = install_fresh(&image, &install).map_err(|e| format!("Installing the image: {e}"))?;
        let dir = &options.work_dir;
        let image_path = dir.join("esxi6.img");
        FileDisk::save_sparse(&disk, &image_path).map_err(|e| format!("Writing {}: {e}", image_path.display()))?;
        let mut module_paths = Vec::new();
        let mut concatenated_bytes = Vec::new();
        let mut modules = Vec::new();
        let mut sizes = Vec::new();
        let modules_dir = dir.join("modules");
        std::fs::create_dir_all(&modules_dir).map_err(|e| format!("Creating {}: {e}", modules_dir.display()))?;
        for file in image.files {
            let size = gzip_isize(&file.data);
            sizes.push(size.unwrap_or(0));
            if size.is_some() {
                let path = modules_dir.join(&file.name);
                std::fs::write(&path, &file.data).map_err(|e| format!("Writing {}: {e}", path.display()))?;
                concatenated_bytes.extend_from_slice(&file.data);
                module_paths.push(path);
            }
            modules.push((file.name, file.data));
        }
        let concatenated = dir.join("all-modules.gz");
        std::fs::write(&concatenated, &concatenated_bytes)
            .map_err(|e| format!("Writing {}: {e}", concatenated.display()))?;
        Ok(Fixture { spec, install, disk, image_path, modules, module_paths, concatenated, sizes })
    }

    /// What the run's settings record about the image.
    pub fn settings(&self, options: &SuiteOptions) -> Settings {
        Settings {
            quick: options.quick,
            rounds: options.rounds,
            warmup: options.warmup,
            sv00_compressed: self.sv00().map_or(0, |(_, f, _)| f.len() as u64),
            modules_compressed: self.modules.iter().map(|(_, f)| f.len() as u64).sum(),
            modules_uncompressed: self.sizes.iter().sum(),
        }
    }

    /// Bytes every gzip module inflates to.
    fn out_bytes(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// `s.v00`: name, file, uncompressed size.
    fn sv00(&self) -> Option<(&str, &[u8], u64)> {
        self.modules
            .iter()
            .zip(&self.sizes)
            .find(|((n, _), _)| n == "s.v00")
            .map(|((n, f), s)| (n.as_str(), f.as_slice(), *s))
    }
}

/// ISIZE of a gzip file (`None` when it is not gzip).
fn gzip_isize(file: &[u8]) -> Option<u64> {
    (file.len() >= 18 && file[..2] == [0x1F, 0x8B]).then(|| {
        let t = &file[file.len() - 4..];
        u64::from(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
    })
}

/// A timed contender: each call runs it once and returns the seconds to keep.
struct Contender<'a> {
    figure: Figure,
    run: Box<dyn FnMut() -> Result<f64, String> + 'a>,
}

fn figure(id: &str, label: &str, kind: Kind, bytes: Option<u64>) -> Figure {
    Figure {
        id: id.to_owned(),
        label: label.to_owned(),
        kind,
        samples: Vec::new(),
        per: "run".to_owned(),
        bytes,
        versus: None,
        missing: None,
    }
}

fn timed(f: impl FnOnce() -> Result<(), String>) -> Result<f64, String> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_secs_f64())
}

fn since_start() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Cold-boot load times (the report's `load_micros`) of the measured rounds.
#[derive(Default)]
struct LoadTimes {
    with_md5: Vec<f64>,
    without_md5: Vec<f64>,
}

/// What the rounds produced.
pub struct Measured {
    /// Every figure.
    pub figures: Vec<Figure>,
    /// The bound on a cold boot.
    pub bound: Option<Bound>,
    /// Where a cold boot's time goes.
    pub breakdown: Option<Breakdown>,
}

/// Runs the suite: the contenders in interleaved rounds, then the
/// per-module breakdown.
pub fn run_suite(fixture: &Fixture, peers: &[Peer], options: &SuiteOptions, cores: u32) -> Measured {
    // Owned here, borrowed by the contenders.
    let sample = limit_sample(fixture, options);
    let explorations: Vec<(Operation, ExploreOptions, Result<Exploration, String>)> =
        [Operation::Backup, Operation::Upgrade]
            .into_iter()
            .map(|op| {
                let explore_options = ExploreOptions {
                    op,
                    payload_mb: if options.quick { 0.3 } else { 1.0 },
                    // The operation's own crash states, each with the in-process
                    // FAT check; not the follow-through into the next operation.
                    depth: 1,
                    ..ExploreOptions::default()
                };
                let prepared =
                    Exploration::prepare(&explore_options).map_err(|e| format!("preparing the exploration: {e}"));
                // Every k-th state, about EXPLORE_STATES of them: the figure is per state.
                let states = prepared.as_ref().map_or(1, |e| e.states().len()) as u64;
                let target = if options.quick { EXPLORE_STATES_QUICK } else { EXPLORE_STATES };
                let every = states.div_ceil(target).max(1);
                let run_options = ExploreOptions { shard: (every > 1).then_some((0, every)), ..explore_options };
                (op, run_options, prepared)
            })
            .collect();
    let loads = std::cell::RefCell::new(LoadTimes::default());
    let measuring = std::cell::Cell::new(false);
    let mut contenders = Vec::new();
    let out = fixture.out_bytes();

    // Cold boots of the image file.
    for (id, label, md5) in [
        ("boot/cold", "cold boot of the image file, both MD5s (as visorsim boot reports them)", true),
        ("boot/cold_without_md5", "cold boot of the image file without MD5s (as the host boots)", false),
    ] {
        let path = &fixture.image_path;
        let (loads, measuring) = (&loads, &measuring);
        let mut boot_options = BootOptions { clock: Some(since_start), ..BootOptions::default() };
        boot_options.load.md5 = md5;
        contenders.push(Contender {
            figure: figure(id, label, Kind::Visorsim, Some(out)),
            run: Box::new(move || {
                let started = Instant::now();
                let disk = FileDisk::open_read_only(path, SectorSize::S512)
                    .map_err(|e| format!("Opening {}: {e}", path.display()))?;
                let report = boot(&mut Overlay::new(disk), &boot_options, None);
                let secs = started.elapsed().as_secs_f64();
                if report.outcome != Outcome::Booted {
                    return Err(format!("the cold boot ended {:?}", report.outcome));
                }
                if measuring.get() {
                    let load = report.load_micros.unwrap_or(0) as f64 / 1e6;
                    let mut l = loads.borrow_mut();
                    if md5 {
                        l.with_md5.push(load)
                    } else {
                        l.without_md5.push(load)
                    }
                }
                Ok(secs)
            }),
        });
    }
    // A warm boot of an unchanged fork.
    let mut cache = ModuleCache::new(64);
    let warm_ok = boot(&mut fixture.disk.fork(), &BootOptions::default(), Some(&mut cache)).outcome == Outcome::Booted;
    contenders.push(Contender {
        figure: figure("boot/warm_fork", "warm boot of an unchanged fork (module cache shared)", Kind::Other, None),
        run: Box::new(move || {
            if !warm_ok {
                return Err("the first boot of the fork failed".into());
            }
            timed(|| {
                let report = boot(&mut fixture.disk.fork(), &BootOptions::default(), Some(&mut cache));
                match report.outcome {
                    Outcome::Booted if report.modules.iter().all(|m| m.cached) => Ok(()),
                    Outcome::Booted => Err("a module of the warm boot was not cached".into()),
                    other => Err(format!("the warm boot ended {other:?}")),
                }
            })
        }),
    });
    // s.v00 alone.
    if let Some((name, file, size)) = fixture.sv00() {
        for (id, label, md5) in [
            ("load/s.v00", "s.v00 alone, both MD5s (load_module)", true),
            ("load/s.v00_without_md5", "s.v00 alone without MD5s", false),
        ] {
            let opts = LoadOptions { md5, ..LoadOptions::default() };
            let path = format!("/{name}");
            contenders.push(Contender {
                figure: figure(id, label, Kind::Visorsim, Some(size)),
                run: Box::new(move || {
                    timed(|| load_module(&path, file, &opts).map(drop).map_err(|e| format!("{path}: {e}")))
                }),
            });
        }
    }
    // The peers, their output size checked once first.
    for peer in peers {
        let mut f = figure(&peer.id, &peer.label, Kind::Peer, Some(out));
        let Some(argv) = peer.argv.clone() else {
            f.missing = Some(format!("{} is not installed ({})", peer.tool.name, peer.tool.install));
            contenders.push(Contender { figure: f, run: Box::new(|| Err(String::new())) });
            continue;
        };
        let checked = run_peer(&argv, peer.input, &fixture.module_paths, &fixture.concatenated, true).and_then(|got| {
            if got == out {
                Ok(())
            } else {
                Err(format!("{} gave {got} bytes, not {out}", peer.label))
            }
        });
        if let Err(why) = checked {
            f.missing = Some(why);
            contenders.push(Contender { figure: f, run: Box::new(|| Err(String::new())) });
            continue;
        }
        let input = peer.input;
        contenders.push(Contender {
            figure: f,
            run: Box::new(move || {
                timed(|| run_peer(&argv, input, &fixture.module_paths, &fixture.concatenated, false).map(drop))
            }),
        });
    }
    // The machine's limits.
    limits(fixture, &sample, &mut contenders);
    // Explore.
    for (op, explore_options, exploration) in &explorations {
        explore(*op, explore_options, exploration, options, &mut contenders);
    }
    // Build against writing the bytes.
    build_vs_write(fixture, options, &mut contenders);

    let total = u64::from(options.warmup + options.rounds) * contenders.len() as u64;
    let mut progress = Progress::counting("bench: rounds", options.quiet);
    let mut done = 0u64;
    for round in 0..options.warmup + options.rounds {
        measuring.set(round >= options.warmup);
        for c in contenders.iter_mut() {
            if c.figure.missing.is_none() {
                match (c.run)() {
                    Ok(secs) if measuring.get() => c.figure.samples.push(secs),
                    Ok(_) => {}
                    Err(why) => {
                        c.figure.samples.clear();
                        c.figure.missing = Some(why);
                    }
                }
            }
            done += 1;
            progress.update(done, total);
        }
    }
    progress.finish();
    let figures: Vec<Figure> = contenders.into_iter().map(|c| c.figure).collect();
    let (bound, modules) = match breakdown_pass(fixture, options.rounds.clamp(1, 3)) {
        Some((chain, modules)) => {
            let with: f64 = modules.iter().map(|m| m.inflate + m.crc32 + m.md5).sum();
            let without: f64 = modules.iter().map(|m| m.inflate + m.crc32).sum();
            (Some(Bound::new(chain, with, without, cores)), modules)
        }
        None => (None, Vec::new()),
    };
    let loads = loads.into_inner();
    let median = |id: &str| figures.iter().find(|f| f.id == id).and_then(Figure::spread).map(|s| s.median);
    let breakdown = match (median("boot/cold"), median("boot/cold_without_md5")) {
        (Some(with), Some(without)) => Some(Breakdown {
            modules,
            boot_with_md5: with,
            load_with_md5: Spread::of(&loads.with_md5).map_or(0.0, |s| s.median),
            boot_without_md5: without,
            load_without_md5: Spread::of(&loads.without_md5).map_or(0.0, |s| s.median),
        }),
        _ => None,
    };
    Measured { figures, bound, breakdown }
}

/// The bytes the memcpy, MD5 and CRC32 limits run over: real module
/// output (so the digests see what they see in a boot), 8 MiB with
/// `--quick`, else 64 MiB.
fn limit_sample(fixture: &Fixture, options: &SuiteOptions) -> Vec<u8> {
    let block: usize = if options.quick { 8 << 20 } else { 64 << 20 };
    // Real module bytes, so the digests see the data they see in a boot.
    let mut sample: Vec<u8> = Vec::with_capacity(block);
    'fill: for (_, file) in &fixture.modules {
        if let Ok(out) = inflate_one(file) {
            for chunk in out.chunks(block - sample.len().min(block)) {
                sample.extend_from_slice(chunk);
                if sample.len() >= block {
                    break 'fill;
                }
            }
        }
    }
    sample.resize(block, 0x5A);
    sample
}

/// About this many crash states per explore sample (every k-th state of the run).
const EXPLORE_STATES: u64 = 400;
/// The same with `--quick`.
const EXPLORE_STATES_QUICK: u64 = 12;

/// Each limit is run this many times over the sample per round.
const LIMIT_REPEAT: usize = 4;

/// memcpy bandwidth and one core's MD5, CRC32 and inflate throughput.
fn limits<'a>(fixture: &'a Fixture, sample: &'a [u8], contenders: &mut Vec<Contender<'a>>) {
    let (block, repeat) = (sample.len(), LIMIT_REPEAT);
    let bytes = (block * repeat) as u64;
    let mut dst = vec![0u8; block];
    contenders.push(Contender {
        figure: figure("limit/memcpy", "memcpy bandwidth (one core, copy_from_slice)", Kind::Limit, Some(bytes)),
        run: Box::new(move || {
            timed(|| {
                for _ in 0..repeat {
                    dst.copy_from_slice(std::hint::black_box(sample));
                    std::hint::black_box(&mut dst);
                }
                Ok(())
            })
        }),
    });
    contenders.push(Contender {
        figure: figure("limit/md5", "one core's MD5 throughput", Kind::Limit, Some(bytes)),
        run: Box::new(move || {
            timed(|| {
                for _ in 0..repeat {
                    std::hint::black_box(Md5::digest(sample));
                }
                Ok(())
            })
        }),
    });
    contenders.push(Contender {
        figure: figure("limit/crc32", "one core's CRC32 throughput (crc32fast)", Kind::Limit, Some(bytes)),
        run: Box::new(move || {
            timed(|| {
                for _ in 0..repeat {
                    std::hint::black_box(crc32fast::hash(sample));
                }
                Ok(())
            })
        }),
    });
    let mut buffers: Vec<Vec<u8>> = fixture.sizes.iter().map(|&s| vec![0u8; s as usize]).collect();
    contenders.push(Contender {
        figure: figure(
            "limit/inflate",
            "one core's inflate of every module (libdeflate, one call each)",
            Kind::Limit,
            Some(fixture.out_bytes()),
        ),
        run: Box::new(move || {
            timed(|| {
                let mut d = libdeflater::Decompressor::new();
                for ((name, file), out) in fixture.modules.iter().zip(buffers.iter_mut()) {
                    if !out.is_empty() {
                        d.gzip_decompress(file, out).map_err(|e| format!("{name}: {e}"))?;
                    }
                }
                Ok(())
            })
        }),
    });
}

fn inflate_one(file: &[u8]) -> Result<Vec<u8>, String> {
    let size = gzip_isize(file).ok_or("not gzip")?;
    let mut out = vec![0u8; size as usize];
    let n = libdeflater::Decompressor::new().gzip_decompress(file, &mut out).map_err(|e| e.to_string())?;
    out.truncate(n);
    Ok(out)
}

/// Each module's inflate, CRC32 and MD5s timed alone on one core (the
/// median of `passes`), and the MD5 of the uncompressed `s.v00` (the
/// longest digest chain).
fn breakdown_pass(fixture: &Fixture, passes: u32) -> Option<(f64, Vec<ModuleCost>)> {
    let mut modules = Vec::new();
    let mut chain = 0.0;
    for ((name, file), &size) in fixture.modules.iter().zip(&fixture.sizes) {
        let mut out = vec![0u8; size as usize];
        let (mut inflate, mut crc, mut md5, mut md5_out) = (vec![], vec![], vec![], vec![]);
        for _ in 0..passes {
            let mut d = libdeflater::Decompressor::new();
            let t = Instant::now();
            if size > 0 {
                d.gzip_decompress(file, &mut out).ok()?;
            }
            inflate.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            std::hint::black_box(crc32fast::hash(&out));
            crc.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            std::hint::black_box(Md5::digest(file));
            let compressed = t.elapsed().as_secs_f64();
            let t = Instant::now();
            std::hint::black_box(Md5::digest(&out));
            let uncompressed = t.elapsed().as_secs_f64();
            md5.push(compressed + uncompressed);
            md5_out.push(uncompressed);
        }
        let med = |v: &[f64]| Spread::of(v).map_or(0.0, |s| s.median);
        if name == "s.v00" {
            chain = med(&md5_out);
        }
        modules.push(ModuleCost {
            name: name.clone(),
            compressed: file.len() as u64,
            size,
            inflate: med(&inflate),
            crc32: med(&crc),
            md5: med(&md5),
        });
    }
    Some((chain, modules))
}

/// Crash states per second of `explore` for `op`, and the external-tools
/// path on a sample of the same states.
fn explore<'a>(
    op: Operation,
    explore_options: &'a ExploreOptions,
    prepared: &'a Result<Exploration, String>,
    options: &SuiteOptions,
    contenders: &mut Vec<Contender<'a>>,
) {
    let name = op.name();
    let mut own = figure(
        &format!("explore/{name}"),
        &format!("explore --op {name} --depth 1: one crash state judged in-process (every k-th state, all cores)"),
        Kind::Other,
        None,
    );
    own.per = "state".into();
    own.versus = Some(format!("explore/{name}_external"));
    let mut external = figure(
        &format!("explore/{name}_external"),
        &format!("{name}: one crash state written to a file, fsck.fat -n on the bank, mtype boot.cfg"),
        Kind::Other,
        None,
    );
    external.per = "state".into();
    let exploration = match prepared {
        Ok(e) => e,
        Err(e) => {
            own.missing = Some(e.clone());
            external.missing = own.missing.clone();
            contenders.push(Contender { figure: own, run: Box::new(|| Err(String::new())) });
            contenders.push(Contender { figure: external, run: Box::new(|| Err(String::new())) });
            return;
        }
    };
    let run_options = explore_options;
    contenders.push(Contender {
        figure: own,
        run: Box::new(move || {
            let started = Instant::now();
            let results = exploration.run(run_options);
            let secs = started.elapsed().as_secs_f64();
            if results.is_empty() {
                return Err("no crash state".into());
            }
            Ok(secs / results.len() as f64)
        }),
    });
    let tools = (super::peers::find_on_path("fsck.fat"), super::peers::find_on_path("mtype"));
    let (Some(fsck), Some(mtype)) = tools else {
        external.missing = Some("fsck.fat or mtype is not installed (apt-get install dosfstools mtools)".into());
        contenders.push(Contender { figure: external, run: Box::new(|| Err(String::new())) });
        return;
    };
    let sample = if options.quick { 2 } else { 10 };
    let dir = options.work_dir.join(format!("explore-{name}"));
    contenders.push(Contender {
        figure: external,
        run: Box::new(move || {
            std::fs::create_dir_all(&dir).map_err(|e| format!("Creating {}: {e}", dir.display()))?;
            let states = exploration.states();
            let step = (states.len() / sample).max(1);
            let started = Instant::now();
            let mut n = 0usize;
            for state in states.iter().step_by(step).take(sample) {
                let disk = exploration.crash_disk(state).map_err(|e| e.to_string())?;
                external_check(&disk, &dir, &fsck, &mtype)?;
                n += 1;
            }
            Ok(started.elapsed().as_secs_f64() / n.max(1) as f64)
        }),
    });
}

/// What one would do without visorsim: the crash image to a file, the
/// bank cut out of it, `fsck.fat -n` on the bank, `mtype` of `boot.cfg`.
fn external_check(disk: &MemDisk, dir: &Path, fsck: &Path, mtype: &Path) -> Result<(), String> {
    let image = dir.join("crash.img");
    FileDisk::save_sparse(disk, &image).map_err(|e| format!("Writing {}: {e}", image.display()))?;
    let mut scan = disk.fork();
    let volumes = visorsim_boot::volume::scan_volumes(&mut scan).volumes;
    let bank = volumes.iter().find(|v| v.number == 5).ok_or("no partition 5 in the crash state")?;
    let ss = disk.sector_size().bytes_u64();
    let (start, len) = (bank.first_lba * ss, bank.sectors * ss);
    let bank_path = dir.join("bank5.img");
    let dst = std::fs::File::create(&bank_path).map_err(|e| format!("Creating {}: {e}", bank_path.display()))?;
    dst.set_len(len).map_err(|e| e.to_string())?;
    for (offset, data) in disk.stored_chunks() {
        if offset >= start && offset < start + len {
            let keep = data.len().min((start + len - offset) as usize);
            dst.write_all_at(&data[..keep], offset - start).map_err(|e| e.to_string())?;
        }
    }
    drop(dst);
    let quiet = |c: &mut Command| c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    // fsck.fat's exit code says what it found; any answer is an answer.
    quiet(Command::new(fsck).arg("-n").arg(&bank_path)).map_err(|e| format!("fsck.fat: {e}"))?;
    quiet(Command::new(mtype).arg("-i").arg(format!("{}@@{start}", image.display())).arg("::/boot.cfg"))
        .map_err(|e| format!("mtype: {e}"))?;
    Ok(())
}

/// Building the image with a warm payload cache against writing its bytes.
fn build_vs_write<'a>(fixture: &'a Fixture, options: &SuiteOptions, contenders: &mut Vec<Contender<'a>>) {
    let bytes = fixture.disk.resident_bytes();
    let built = options.work_dir.join("built.img");
    let cache_dir = options.cache_dir.clone();
    let mut build = figure(
        "build/warm_cache",
        "build the image (payloads cached), install, write the sparse raw file",
        Kind::Other,
        Some(bytes),
    );
    build.versus = Some("build/dd".into());
    if cache_dir.is_none() {
        build.missing = Some("no payload cache (--no-cache or no cache directory)".into());
        contenders.push(Contender { figure: build, run: Box::new(|| Err(String::new())) });
    } else {
        contenders.push(Contender {
            figure: build,
            run: Box::new(move || {
                timed(|| {
                    let image = SystemImage::build(&fixture.spec, cache_dir.as_deref(), &mut |_, _| {})
                        .map_err(|e| e.to_string())?;
                    let (disk, _) = install_fresh(&image, &fixture.install).map_err(|e| e.to_string())?;
                    FileDisk::save_sparse(&disk, &built).map_err(|e| format!("Writing {}: {e}", built.display()))
                })
            }),
        });
    }
    let copy = options.work_dir.join("dd.img");
    contenders.push(Contender {
        figure: figure(
            "build/dd",
            "write the same bytes at their offsets to a file on the same file system, synced (dd-style)",
            Kind::Other,
            Some(bytes),
        ),
        run: Box::new(move || {
            timed(|| {
                let io = |e: std::io::Error| format!("Writing {}: {e}", copy.display());
                let file = std::fs::File::create(&copy).map_err(io)?;
                file.set_len(fixture.disk.size_bytes()).map_err(io)?;
                for (offset, data) in fixture.disk.stored_chunks() {
                    file.write_all_at(data, offset).map_err(io)?;
                }
                file.sync_all().map_err(io)
            })
        }),
    });
}
