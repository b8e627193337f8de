//! The module cache: a warm boot of an unchanged copy-on-write fork takes
//! every module from the cache and reports exactly what a cold boot does;
//! a changed module is loaded again.

use visorsim_boot::boot::{boot, BootOptions, ModuleCache, Outcome};
use visorsim_disk::MemDisk;
use visorsim_image::install::write_files;
use visorsim_image::system::{ImageFile, SystemImage};

use crate::util::{esxi6, esxi6_partition};

/// A fork of the shared install, and its image.
fn disk() -> (MemDisk, &'static SystemImage) {
    let fixture = esxi6();
    (fixture.disk.fork(), &fixture.image)
}

fn strip(report: &visorsim_boot::boot::BootReport) -> Vec<(String, u64, Option<String>, Option<String>)> {
    report.modules.iter().map(|m| (m.name.clone(), m.size, m.md5.clone(), m.md5_compressed.clone())).collect()
}

#[test]
fn warm_boot_of_a_fork_reads_no_module_again() {
    let (disk, _) = disk();
    let options = BootOptions::default();
    let mut cache = ModuleCache::new(32);
    let cold = boot(&mut disk.fork(), &options, Some(&mut cache));
    assert_eq!(cold.outcome, Outcome::Booted);
    assert!(cold.modules.iter().all(|m| !m.cached));
    let warm = boot(&mut disk.fork(), &options, Some(&mut cache));
    assert_eq!(warm.outcome, Outcome::Booted);
    assert!(warm.modules.iter().all(|m| m.cached), "every module from the cache");
    assert_eq!(strip(&warm), strip(&cold), "the report is the same");
    assert_eq!(warm.kernel_cmdline, cold.kernel_cmdline);
}

#[test]
fn a_changed_module_is_loaded_again_and_its_failure_reported() {
    let (disk, image) = disk();
    let options = BootOptions::default();
    let mut cache = ModuleCache::new(32);
    assert_eq!(boot(&mut disk.fork(), &options, Some(&mut cache)).outcome, Outcome::Booted);
    let mut changed = disk.fork();
    let mut sv00 = image.files.iter().find(|f| f.name == "s.v00").unwrap().clone();
    let n = sv00.data.len();
    sv00.data[n - 8] ^= 1; // trailer CRC
    let mut files = image.files.clone();
    for f in files.iter_mut() {
        if f.name == "s.v00" {
            *f = sv00.clone();
        }
    }
    let mut cfg = image.boot_cfg.clone();
    cfg.updated = 1;
    files.push(ImageFile { name: "boot.cfg".into(), data: cfg.render().into_bytes() });
    write_files(&mut changed, &esxi6_partition(5), &files).unwrap();
    let report = boot(&mut changed, &options, Some(&mut cache));
    assert!(
        matches!(report.outcome, Outcome::LoadFailed { ref module, .. } if module.as_deref() == Some("s.v00")),
        "{:?}",
        report.outcome
    );
    // The untouched original still boots warm.
    let again = boot(&mut disk.fork(), &options, Some(&mut cache));
    assert_eq!(again.outcome, Outcome::Booted);
}
