//! What the banks' boot.cfg files say, read the way safeboot reads them
//! (primary GPT, short names), for timelines and status lines.
//!
//! Invariants: reading only; a bank without a parsable boot.cfg is
//! `empty`, never an error.

use serde::{Deserialize, Serialize};
use visorsim_boot::bootcfg::SafebootConfig;
use visorsim_boot::volume::scan_volumes;
use visorsim_disk::BlockDevice;
use visorsim_media::fatread::FatReader;

use super::MAX_BOOT_CFG;

/// What a bank's boot.cfg says, for timelines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankSummary {
    /// Partition number.
    pub number: u32,
    /// bootstate, `None` when the bank has no parsable boot.cfg.
    pub bootstate: Option<i32>,
    /// updated.
    pub updated: Option<u32>,
    /// build.
    pub build: Option<String>,
}

impl BankSummary {
    /// `5:VALID/2` style text (`5:empty` without a boot.cfg).
    pub fn short(&self) -> String {
        match (self.bootstate, self.updated) {
            (Some(s), Some(u)) => format!("{}:{}/{}", self.number, visorsim_boot::safeboot::state_name(s), u),
            _ => format!("{}:empty", self.number),
        }
    }
}

/// Reads banks 5 and 6 the way safeboot would (primary GPT, short names).
pub fn bank_summaries<D: BlockDevice>(dev: &mut D) -> Vec<BankSummary> {
    let volumes = scan_volumes(dev).volumes;
    [5u32, 6]
        .into_iter()
        .map(|number| {
            let cfg = volumes.iter().find(|v| v.number == number).and_then(|v| {
                let reader = FatReader::open(dev, v.first_lba, v.sectors).ok()?;
                let file = reader.find(dev, "boot.cfg").ok()??;
                let text = reader.read(dev, &file, MAX_BOOT_CFG).ok()?;
                SafebootConfig::parse(&text).ok()
            });
            BankSummary {
                number,
                bootstate: cfg.as_ref().map(|c| c.bootstate),
                updated: cfg.as_ref().map(|c| c.updated),
                build: cfg.and_then(|c| c.build),
            }
        })
        .collect()
}
