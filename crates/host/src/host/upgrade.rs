//! `esxcli software profile update` (docs/host.md, Upgrade): the new image into
//! `/altbootbank`, with `updated` = the booted bank's + 1 and `bootstate=1`,
//! and the configuration as `state.tgz`; the next boot tries it.
//!
//! Invariants:
//! - On ESXi 5.x/6.x ([`plan::alt_bank_checked`]) the alt bank's FAT is
//!   checked first (read only); one that does not check clean refuses the
//!   upgrade with KB 2033564's error ([`plan::AltBankUnclean`]) and nothing
//!   is written, on either bank.
//! - An image that does not fit ([`plan::fits`]) is refused before anything
//!   is written.
//! - The alt bank is emptied, then the modules, `state.tgz` and `boot.cfg`
//!   are written, boot.cfg last, so a bank without boot.cfg is never chosen;
//!   then one `sync`.
//! - A failed write reports `[Errno 28]` or `[Errno 5]` from the typed bank
//!   error's kind ([`plan::errno`]).

use visorsim_disk::BlockDevice;
use visorsim_image::archive;
use visorsim_image::system::SystemImage;

use visorsim_media::fat::check_volume;

use super::{EventKind, Host, HostError};
use crate::bank::{Bank, BankError, BankLocation, Capacity};
use crate::plan::{self, AltBankUnclean, Errno};

/// What a failed step was about, for `'/altbootbank<path>'`: `/<file>`,
/// or `//altbootbank` for a step on the bank itself (as the message always read).
const BANK_ITSELF: &str = "//altbootbank";

impl Host {
    /// `esxcli software profile update`: the new image goes into
    /// `/altbootbank` with `updated` = the booted bank's + 1 and
    /// `bootstate=1`, with the configuration; the next boot tries it.
    pub fn upgrade<D: BlockDevice>(&mut self, dev: &mut D, image: &SystemImage) -> Result<(), HostError> {
        let running = self.require_running()?.clone();
        let Some(mut alt) = running.altbootbank.clone() else {
            return Err(self.alert(HostError::NoAltBank));
        };
        if running.device_lost {
            return Err(self.alert(HostError::UpgradeWrite { errno: Errno::Io, path: String::new(), source: None }));
        }
        // esxupdate checks the file system of /altbootbank before it copies
        // anything into it (KB 2033564). How (which tool, which options) is
        // not public; our checker's verdict is fsck.fat -n's.
        if let BankLocation::Partition(bank) = &alt {
            if plan::alt_bank_checked(running.version()) {
                let check = check_volume(dev, bank.first_lba, bank.sectors);
                let summary = check.summary();
                self.event(EventKind::Fsck, format!("check of /altbootbank (partition {}): {summary}", bank.number));
                if !check.is_clean() {
                    let findings = check.damage_classes().into_iter().map(|c| c.name().to_owned()).collect();
                    let refused = AltBankUnclean { partition: bank.number, findings };
                    return Err(self.alert(HostError::AltBankUnclean(refused)));
                }
            }
        }
        let mtime = self.clock.now().0 as u32;
        let local = archive::local_tgz(&self.etc.saved_files(), mtime);
        let state = archive::state_tgz(&local, mtime);
        let cfg = plan::staged_boot_cfg(&image.boot_cfg, running.updated);
        let cfg_text = cfg.render();
        // Refuse before writing anything when the image does not fit.
        let capacity = alt.capacity(dev).unwrap_or(Capacity { bytes: 0, cluster: 4096 });
        let modules = || image.files.iter().filter(|f| f.name != "state.tgz");
        let sizes = modules().map(|f| f.data.len() as u64).chain([state.len() as u64, cfg_text.len() as u64]);
        if let Err(too_large) = plan::fits(plan::space_needed(sizes, capacity.cluster), capacity) {
            return Err(self.alert(HostError::UpgradeTooLarge(too_large)));
        }
        // Clear the alt bank, write the modules, the configuration, and
        // boot.cfg last, so a bank without boot.cfg is never selected.
        let on = |path: String| move |e: BankError| (path, e);
        let written = (|| -> Result<(), (String, BankError)> {
            for e in alt.list(dev, None).map_err(on(BANK_ITSELF.into()))? {
                if e.is_dir {
                    alt.remove_dir(dev, &e.name).map_err(on(format!("/{}", e.name)))?;
                } else {
                    alt.remove(dev, &e.name).map_err(on(format!("/{}", e.name)))?;
                }
            }
            for f in modules() {
                alt.write(dev, &f.name, &f.data).map_err(on(format!("/{}", f.name)))?;
            }
            alt.write(dev, "state.tgz", &state).map_err(on("/state.tgz".into()))?;
            alt.write(dev, "boot.cfg", cfg_text.as_bytes()).map_err(on("/boot.cfg".into()))?;
            alt.sync(dev).map_err(on(BANK_ITSELF.into()))
        })();
        if let Err((path, source)) = written {
            let errno = plan::errno(source.kind());
            return Err(self.alert(HostError::UpgradeWrite { errno, path, source: Some(source) }));
        }
        if let Some(r) = self.running.as_mut() {
            r.altbootbank = Some(alt);
        }
        self.event(
            EventKind::Upgrade,
            format!("build {} staged in /altbootbank (updated={}, bootstate=1)", cfg.build, cfg.updated),
        );
        Ok(())
    }
}
