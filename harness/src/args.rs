//! Closed sets of command-line values, as clap [`ValueEnum`]s, and what each
//! maps to in the library.
//!
//! Variants carry `//` comments, not doc comments: clap would show doc
//! comments as per-value help and change `--help`'s layout.

use std::fs::File;
use std::path::Path;

use clap::{Args, ValueEnum};
use visorsim_boot::boot::{BootOptions, ShiftR};
use visorsim_boot::load::LoadOptions;
use visorsim_boot::safeboot::{Answer, LoaderVersion};
use visorsim_disk::SectorSize;
use visorsim_media::layout::Layout;
use visorsim_scenario::explore::Operation;
use visorsim_tools::ImageFormat;

/// `--sector-size`: the logical sector size of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SectorSizeArg {
    // 512-byte sectors.
    #[value(name = "512")]
    S512,
    // 4Kn.
    #[value(name = "4096")]
    S4096,
}

impl SectorSizeArg {
    /// The sector size.
    pub fn sector_size(self) -> SectorSize {
        match self {
            SectorSizeArg::S512 => SectorSize::S512,
            SectorSizeArg::S4096 => SectorSize::S4096,
        }
    }

    /// The sector size to open `image` with: `flag` (`--sector-size`) when
    /// given, else what the image's protective MBR and GPT header say
    /// (`visorsim_media::sector`), else 512. An unreadable image gets 512:
    /// opening it then says what is wrong.
    pub fn resolve(flag: Option<SectorSizeArg>, image: &Path) -> SectorSize {
        if let Some(flag) = flag {
            return flag.sector_size();
        }
        File::open(image)
            .and_then(|mut f| visorsim_media::sector::detect_sector_size(&mut f))
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// `boot --answer`: the answer to "DO YOU REALLY WANT TO ROLL BACK?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AnswerArg {
    // Roll back.
    Yes,
    // Do not.
    No,
}

impl AnswerArg {
    /// The answer.
    pub fn answer(self) -> Answer {
        match self {
            AnswerArg::Yes => Answer::Yes,
            AnswerArg::No => Answer::No,
        }
    }
}

/// `--loader`: which esx-boot release decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LoaderArg {
    // ESXi 7.0 to 9.0 (and 6.7u3).
    #[default]
    Current,
    // ESXi 6.7u1 and 6.7u2.
    #[value(name = "6.7u1")]
    V67u1,
}

impl LoaderArg {
    /// The loader version.
    pub fn loader(self) -> LoaderVersion {
        match self {
            LoaderArg::Current => LoaderVersion::Current,
            LoaderArg::V67u1 => LoaderVersion::V67u1,
        }
    }
}

/// `build --layout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    // ESXi 5.x/6.x.
    Esxi6,
    // ESXi 7.x.
    Esxi7,
}

impl LayoutArg {
    /// The layout.
    pub fn layout(self) -> Layout {
        match self {
            LayoutArg::Esxi6 => Layout::Esxi6,
            LayoutArg::Esxi7 => Layout::Esxi7,
        }
    }
}

/// `export --format` and `import --format` (in the order `--help` lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    // VMware.
    Vmdk,
    // QEMU.
    Qcow2,
    // Hyper-V.
    Vhdx,
    // Sector by sector.
    Raw,
}

impl FormatArg {
    /// The image format.
    pub fn format(self) -> ImageFormat {
        match self {
            FormatArg::Vmdk => ImageFormat::Vmdk,
            FormatArg::Qcow2 => ImageFormat::Qcow2,
            FormatArg::Vhdx => ImageFormat::Vhdx,
            FormatArg::Raw => ImageFormat::Raw,
        }
    }
}

/// `explore --op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OperationArg {
    // backup.sh 0.
    Backup,
    // An upgrade.
    Upgrade,
    // A shutdown with an upgrade staged.
    Shutdown,
    // The trial boot.
    Boot,
}

impl OperationArg {
    /// The operation.
    pub fn operation(self) -> Operation {
        match self {
            OperationArg::Backup => Operation::Backup,
            OperationArg::Upgrade => Operation::Upgrade,
            OperationArg::Shutdown => Operation::Shutdown,
            OperationArg::Boot => Operation::Boot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(v: impl ValueEnum) -> String {
        v.to_possible_value().expect("not skipped").get_name().to_owned()
    }

    /// Each value's command-line name is the library's own name for it.
    #[test]
    fn names_match_the_library() {
        for &v in LayoutArg::value_variants() {
            assert_eq!(name(v), v.layout().name());
        }
        for &v in FormatArg::value_variants() {
            assert_eq!(name(v), v.format().name());
        }
        for &v in OperationArg::value_variants() {
            assert_eq!(name(v), v.operation().name());
        }
        for &v in SectorSizeArg::value_variants() {
            assert_eq!(name(v), v.sector_size().bytes().to_string());
        }
        assert_eq!(AnswerArg::value_variants().iter().map(|&v| name(v)).collect::<Vec<_>>(), ["yes", "no"]);
        for &v in LoaderArg::value_variants() {
            assert_eq!(name(v), v.loader().name());
        }
    }
}

/// The bootloader's own flags, the same on `visorsim boot` and on
/// `visorsim host IMAGE boot|reboot`.
#[derive(Args, Clone, Debug)]
pub struct LoaderFlags {
    /// Hold Shift+R as safeboot starts (`safeboot -r`): one scan, then roll back.
    #[arg(long, conflicts_with = "shift_r_in_mboot")]
    pub shift_r: bool,
    /// Press Shift+R during mboot's countdown: a second scan after the first one's writes.
    #[arg(long)]
    pub shift_r_in_mboot: bool,
    /// Answer to "DO YOU REALLY WANT TO ROLL BACK?".
    #[arg(long, value_enum, default_value_t = AnswerArg::Yes)]
    pub answer: AnswerArg,
    /// safeboot's `-f`: every bootstate write is skipped and reported as failed.
    #[arg(long)]
    pub fake_write_error: bool,
    /// Which bootloader decides: current (ESXi 7.0 to 9.0) or 6.7u1 (ESXi 6.7u1/6.7u2: banks 5 and 6 only).
    #[arg(long, value_enum, default_value_t = LoaderArg::Current)]
    pub loader: LoaderArg,
    /// The host's memory (64M to 1T): mboot loads the modules into it (past it: "Out of resources") and the RAM-disk's /etc is restored from it.
    #[arg(long, value_parser = parse_ram, default_value = "4G")]
    pub ram: u64,
}

/// `--ram`: a size within the range a scenario's `disk.ram` accepts.
pub fn parse_ram(text: &str) -> Result<u64, String> {
    use visorsim_scenario::checked::{MAX_RAM_BYTES, MIN_RAM_BYTES};
    let bytes = visorsim_scenario::size::parse_size(text).map_err(|e| e.to_string())?;
    if !(MIN_RAM_BYTES..=MAX_RAM_BYTES).contains(&bytes) {
        return Err(format!("{text} is out of range (64M to 1T)"));
    }
    Ok(bytes)
}

impl LoaderFlags {
    /// The bootloader's options these flags ask for (everything else default).
    pub fn boot_options(&self) -> BootOptions {
        let answer = self.answer.answer();
        let shift_r = if self.shift_r {
            ShiftR::AtSafeboot(answer)
        } else if self.shift_r_in_mboot {
            ShiftR::InMboot(answer)
        } else {
            ShiftR::None
        };
        BootOptions {
            shift_r,
            fake_write_error: self.fake_write_error,
            loader: self.loader.loader(),
            load: LoadOptions { memory_budget: self.ram, ..LoadOptions::default() },
            ..Default::default()
        }
    }
}
