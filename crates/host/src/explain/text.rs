//! The human rendering of an [`Explanation`]: the same facts as its JSON,
//! in the order a support engineer reads them, each point followed by the
//! rule that decides it in brackets.

use std::fmt::Write as _;

use visorsim_boot::safeboot::state_name;

use super::{BootStory, Explanation, Point};

fn points(out: &mut String, indent: &str, points: &[Point]) {
    for p in points {
        let _ = writeln!(out, "{indent}- {}  [{}]", p.text, p.rule);
    }
}

fn boot(out: &mut String, title: &str, story: &BootStory) {
    let _ = writeln!(out, "\n{title}: {}", story.outcome);
    for w in &story.writes {
        let _ = writeln!(out, "  writes {w}");
    }
    for l in &story.log {
        let _ = writeln!(out, "  loader: {l}");
    }
    points(out, "  ", &story.points);
}

/// Renders `e` as text.
pub(super) fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Loader: {} ({} bytes, {}-byte sectors)", e.loader, e.size, e.sector_size);
    let _ = writeln!(out, "\nPartition table");
    let _ = writeln!(out, "  primary GPT (what the loader reads): {}", e.partition_table.primary);
    let _ = writeln!(out, "  backup GPT (what diagnostic tools may show): {}", e.partition_table.backup);
    for d in &e.partition_table.differences {
        let _ = writeln!(out, "  differs: {d}");
    }
    points(&mut out, "  ", &e.partition_table.points);

    let _ = writeln!(out, "\nBanks in scan order");
    if e.banks.is_empty() {
        let _ = writeln!(out, "  (no partition scanned)");
    }
    for b in &e.banks {
        let _ = write!(out, "  BANK{}", b.number);
        if let Some(why) = &b.skipped {
            let _ = writeln!(out, ": skipped ({why})");
        } else {
            let _ = writeln!(
                out,
                ": UUID {}, bootstate {} ({}) on disk {}, updated {}, build {}, {}",
                b.uuid.as_deref().unwrap_or("-"),
                b.bootstate.map_or("-".to_owned(), |s| s.to_string()),
                b.bootstate.map_or("-", state_name),
                b.bootstate_on_disk.as_deref().unwrap_or("-"),
                b.updated.map_or("-".to_owned(), |u| u.to_string()),
                b.build.as_deref().unwrap_or("(unset)"),
                if b.bootable { "bootable" } else { "not bootable" }
            );
        }
        for l in &b.ignored_lines {
            let _ = writeln!(out, "    boot.cfg line {}: {:?}: {}", l.line, l.text, l.note);
        }
        for m in &b.modules {
            let _ = writeln!(out, "    module {} ({}): {}", m.name, m.short_name, m.health);
        }
        if let Some(fat) = &b.fat {
            let _ = writeln!(out, "    FAT: {fat}");
        }
        points(&mut out, "    ", &b.points);
    }

    boot(&mut out, "Next boot", &e.next_boot);
    boot(&mut out, "The boot after that", &e.boot_after);
    boot(&mut out, "Shift+R now", &e.shift_r);

    let _ = writeln!(out, "\nConfiguration the host restores");
    match &e.restore {
        None => {
            let _ = writeln!(out, "  none: the next boot does not reach the host");
        }
        Some(r) => {
            for f in &r.files {
                let _ = writeln!(out, "  saved: /{f}");
            }
            points(&mut out, "  ", &r.points);
        }
    }

    let _ = writeln!(out, "\nRisks ahead");
    if e.risks.is_empty() {
        let _ = writeln!(out, "  none found");
    }
    points(&mut out, "  ", &e.risks);
    out
}
