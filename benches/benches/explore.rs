//! Crash-point exploration speed: crash states judged per second for the
//! backup and upgrade operations on a small image (fork, apply the crash
//! state, the in-process FAT checker on every bank the state wrote, boot,
//! bring the host up, check the invariants), on all cores as `visorsim
//! explore --depth 1` runs them. States with the same content share one
//! verdict, so the line also gives the distinct states and their rate.
//!
//! In the same run, a sample of the same crash states is checked the way one
//! would without visorsim: write the crash image to a file, `fsck.fat -n`
//! the bank, read `boot.cfg` with `mtype`. The ratio is printed, per state
//! and per distinct state.

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use visorsim_disk::FileDisk;
use visorsim_scenario::explore::{Exploration, ExploreOptions, Operation};

fn external_check(exploration: &Exploration, sample: usize, dir: &std::path::Path) -> Option<Duration> {
    if Command::new("fsck.fat").arg("--help").output().is_err() || Command::new("mtype").arg("-V").output().is_err() {
        eprintln!("fsck.fat or mtype missing: skipping the external-tools comparison");
        return None;
    }
    let states = exploration.states();
    let step = (states.len() / sample).max(1);
    let started = Instant::now();
    let mut n = 0;
    for state in states.iter().step_by(step).take(sample) {
        let disk = exploration.crash_disk(state).ok()?;
        let image = dir.join("crash.img");
        FileDisk::save_sparse(&disk, &image).ok()?;
        let (start, len) = (8224u64 * 512, 511968u64 * 512);
        let bank = dir.join("bank5.img");
        let dst = std::fs::File::create(&bank).ok()?;
        dst.set_len(len).ok()?;
        use std::os::unix::fs::FileExt;
        for (offset, data) in disk.stored_chunks() {
            if offset >= start && offset < start + len {
                dst.write_all_at(data, offset - start).ok()?;
            }
        }
        drop(dst);
        let _ = Command::new("fsck.fat").arg("-n").arg(&bank).output().ok()?;
        let _ = Command::new("mtype")
            .arg("-i")
            .arg(format!("{}@@{start}", image.display()))
            .arg("::/boot.cfg")
            .output()
            .ok()?;
        n += 1;
    }
    Some(started.elapsed() / n.max(1) as u32)
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("explore");
    group.sample_size(10);
    for op in [Operation::Backup, Operation::Upgrade] {
        let options = ExploreOptions { op, fsck_every: 0, ..ExploreOptions::default() };
        let exploration = Exploration::prepare(&options).expect("prepare");
        let states = exploration.states().len();
        group.throughput(Throughput::Elements(states as u64));
        let distinct = exploration.run(&options).iter().filter(|r| r.same_as.is_none()).count();
        let mut per_state = Duration::ZERO;
        group.bench_function(format!("{}_all_{}_states", op.name(), states), |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    let results = exploration.run(&options);
                    assert_eq!(results.len(), states);
                }
                let elapsed = started.elapsed();
                per_state = elapsed / (iters as u32 * states as u32).max(1);
                elapsed
            })
        });
        if let Some(external) = external_check(&exploration, 20, dir.path()) {
            let per_distinct = per_state.as_secs_f64() * states as f64 / distinct.max(1) as f64;
            println!(
                "explore/{}: visorsim {:.0} crash states/s ({:?} each; {distinct} of {states} distinct: {:.0} distinct/s), FAT checked on every state; external tools (fsck.fat -n + mtype) {:?} per state: {:.0}x per state, {:.0}x per distinct state",
                op.name(),
                1.0 / per_state.as_secs_f64(),
                per_state,
                1.0 / per_distinct,
                external,
                external.as_secs_f64() / per_state.as_secs_f64(),
                external.as_secs_f64() / per_distinct
            );
        }
    }
    group.finish();
}

criterion_group!(explore_benches, benches);
criterion_main!(explore_benches);
