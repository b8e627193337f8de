//! `etc/vmware/.backup.counter`, owned by backup.sh: four lines (header,
//! `# CREATED:`, `# MODIFIED:`, the count).
//!
//! Invariants: bumping keeps `CREATED`, sets `MODIFIED` to the given time
//! and the count to the old count + 1 (1 when missing or unreadable).

use super::{EtcTree, BACKUP_COUNTER, MODE_CONFIG};
use crate::clock::SimTime;

/// First line of [`BACKUP_COUNTER`].
const COUNTER_HEADER: &str = "# This file is owned and updated by /sbin/backup.sh";

impl EtcTree {
    /// The count in `etc/vmware/.backup.counter`: its last line that is not
    /// a comment, if that is a number.
    pub fn backup_counter(&self) -> Option<u64> {
        let data = &self.files.get(BACKUP_COUNTER)?.data;
        let text = std::str::from_utf8(data).ok()?;
        text.lines().map(str::trim).rfind(|l| !l.is_empty() && !l.starts_with('#'))?.parse().ok()
    }

    /// What backup.sh does first: rewrites the four-line counter file with
    /// the count plus one (1 if missing or unreadable), keeping its
    /// `CREATED` date (`now` for a new file) and setting `MODIFIED` to
    /// `now` in `date`'s format. Leaves it sticky; returns the new count.
    pub fn bump_backup_counter(&mut self, now: SimTime) -> u64 {
        let created = self
            .files
            .get(BACKUP_COUNTER)
            .and_then(|e| std::str::from_utf8(&e.data).ok())
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("# CREATED:")).map(|d| d.trim().to_string()))
            .unwrap_or_else(|| now.ctime());
        let count = self.backup_counter().unwrap_or(0).saturating_add(1);
        let text = format!("{COUNTER_HEADER}\n# CREATED: {created}\n# MODIFIED: {}\n{count}\n", now.ctime());
        self.put_config(BACKUP_COUNTER, text.into_bytes(), MODE_CONFIG);
        count
    }
}
