//! [`RamBank`]: a bank path that points into the RAM-disk's `/tmp`, as
//! when the boot device was not claimed in time (KB 2148321).
//!
//! Invariants: every step succeeds as on a roomy file system and none
//! touches the device; files are kept by path (`dir/file`), directories
//! exist only through their files; it serialises as the bare map.

use std::collections::BTreeMap;

use visorsim_disk::BlockDevice;

use super::{Bank, BankEntry, BankError, BankId, Capacity};

/// Files of a bank in the RAM-disk, by path.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RamBank {
    files: BTreeMap<String, Vec<u8>>,
}

impl RamBank {
    /// Every file, by path (`dir/file` for files in a directory).
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }
}

impl<D: BlockDevice> Bank<D> for RamBank {
    fn id(&self) -> BankId {
        BankId::Ram
    }

    fn list(&self, _dev: &mut D, dir: Option<&str>) -> Result<Vec<BankEntry>, BankError> {
        let prefix = dir.map(|d| format!("{d}/")).unwrap_or_default();
        Ok(self
            .files
            .iter()
            .filter_map(|(name, data)| {
                let rest = name.strip_prefix(&prefix)?;
                (!rest.contains('/')).then(|| BankEntry {
                    name: rest.to_owned(),
                    size: data.len() as u64,
                    is_dir: false,
                })
            })
            .collect())
    }

    fn read(&self, _dev: &mut D, name: &str, _max: u64) -> Result<Vec<u8>, BankError> {
        self.files.get(name).cloned().ok_or_else(|| BankError::not_found(BankId::Ram, name))
    }

    fn exists(&self, _dev: &mut D, name: &str) -> Result<bool, BankError> {
        Ok(self.files.contains_key(name))
    }

    fn write(&mut self, _dev: &mut D, name: &str, data: &[u8]) -> Result<(), BankError> {
        self.files.insert(name.to_owned(), data.to_vec());
        Ok(())
    }

    fn remove(&mut self, _dev: &mut D, name: &str) -> Result<(), BankError> {
        self.files.remove(name);
        Ok(())
    }

    fn remove_dir(&mut self, _dev: &mut D, dir: &str) -> Result<(), BankError> {
        let prefix = format!("{dir}/");
        self.files.retain(|k, _| !k.starts_with(&prefix));
        Ok(())
    }

    fn mkdir(&mut self, _dev: &mut D, _dir: &str) -> Result<(), BankError> {
        Ok(())
    }

    fn move_into(&mut self, _dev: &mut D, src: &str, dir: &str, dst: &str) -> Result<(), BankError> {
        let data = self.files.remove(src).ok_or_else(|| BankError::not_found(BankId::Ram, src))?;
        self.files.insert(format!("{dir}/{dst}"), data);
        Ok(())
    }

    fn rename_replace(&mut self, _dev: &mut D, src: &str, dst: &str) -> Result<(), BankError> {
        let data = self.files.remove(src).ok_or_else(|| BankError::not_found(BankId::Ram, src))?;
        self.files.insert(dst.to_owned(), data);
        Ok(())
    }

    fn sync(&self, _dev: &mut D) -> Result<(), BankError> {
        Ok(())
    }

    fn capacity(&self, _dev: &mut D) -> Result<Capacity, BankError> {
        Ok(Capacity { bytes: u64::MAX, cluster: 4096 })
    }
}
