//! Why a boot did not boot, in visorsim's words and with the place that
//! failed: the partition table (header LBA, field), the partition (number,
//! first LBA) and what the scan made of it, the bank and the module path.
//!
//! The loader itself says little ("No hypervisor found.", "Fatal error: 28
//! (CRC error)"); its lines stay in the log as it prints them, and this is
//! the line beside them that says where. It is a pure function of what
//! the boot saw, so the report stays a value the CLI only renders.

use crate::boot::PartitionScan;
use crate::safeboot::{state_name, BankState};
use crate::volume::{PartKind, VolumeTable};

/// The table's own reason when it yields no partition at all: its error,
/// or that it lists none. `None` when it lists partitions.
pub fn table_reason(table: &VolumeTable) -> Option<String> {
    if let Some(error) = &table.error {
        return Some(match table.scheme {
            // esx-boot never falls back to the backup GPT (volume.rs).
            "gpt" => format!("{error}; esx-boot reads only the primary GPT, so it sees no partition"),
            _ => error.clone(),
        });
    }
    if table.volumes.iter().all(|v| v.kind == PartKind::Empty) {
        return Some(match table.scheme {
            "gpt" => format!(
                "the primary GPT (header at LBA 1) has no used entry among its {} entries: there is no partition",
                table.max_number
            ),
            _ => "LBA 0 holds no partition table (no protective MBR for a GPT, and its four MBR entries are empty): \
                  there is no partition"
                .to_owned(),
        });
    }
    None
}

/// Why safeboot found no hypervisor: the table's reason, else each
/// partition that is not a bank and each bank that is not bootable.
pub fn no_hypervisor(table: &VolumeTable, partitions: &[PartitionScan], banks: &[BankState]) -> String {
    if let Some(reason) = table_reason(table) {
        return reason;
    }
    // The partitions that could have been banks (a FAT partition with the
    // bank UUID) say most; the others only when there is nothing else.
    let skipped: Vec<&PartitionScan> = partitions.iter().filter(|p| p.result != "bank").collect();
    let candidates: Vec<&PartitionScan> = skipped
        .iter()
        .copied()
        .filter(|p| p.kind != PartKind::Other && !p.result.starts_with("skipped: no bank UUID"))
        .collect();
    let shown = if candidates.is_empty() { skipped } else { candidates };
    let mut why: Vec<String> =
        shown.iter().map(|p| format!("partition {} (LBA {}): {}", p.number, p.first_lba, p.result)).collect();
    why.extend(banks.iter().filter(|b| !b.bootable).map(|b| format!("bank {}: {}", b.number, not_bootable(b))));
    if why.is_empty() {
        // Every bank bootable but none chosen: the 6.7u1 loader's rule.
        return "no bank was selected although every scanned bank is bootable".to_owned();
    }
    if partitions.iter().all(|p| p.result != "bank") {
        format!("no partition holds a bank: {}", why.join("; "))
    } else {
        format!("no bootable bank: {}", why.join("; "))
    }
}

/// Why a scanned bank may not be selected (safeboot's rules, docs/bootloader.md).
fn not_bootable(b: &BankState) -> String {
    if b.quickboot {
        return "boot.cfg sets quickboot, which safeboot never boots".to_owned();
    }
    if !b.ok {
        return format!(
            "boot.cfg has updated={} and build={}: a bank needs updated > 0 and a build",
            b.updated,
            b.build.as_deref().map_or("(none)".to_owned(), |s| format!("{s:?}"))
        );
    }
    if b.state_after != b.state_before {
        format!("bootstate {} became {} in this scan", state_name(b.state_before), state_name(b.state_after))
    } else {
        format!("bootstate {}", state_name(b.state_after))
    }
}

/// Why the chainload failed: the bank's build.
pub fn chainload_failed(bank: u32, build: Option<&str>) -> String {
    format!(
        "bank {bank}: boot.cfg's build={} does not start with a digit, so safeboot cannot tell the ESXi version",
        build.map_or("(none)".to_owned(), |s| format!("{s:?}"))
    )
}

/// Why mboot stopped: the bank and file, then its own lines.
pub fn load_failed(bank: u32, path: Option<&str>, fatal_line: &str, lines: &[String]) -> String {
    let place = match path {
        Some(p) => format!("bank {bank} {p}"),
        None => format!("bank {bank}"),
    };
    if lines.is_empty() {
        format!("{place}: {fatal_line}")
    } else {
        format!("{place}: {fatal_line}: {}", lines.join("; "))
    }
}
