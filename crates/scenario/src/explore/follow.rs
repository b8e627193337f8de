//! Depth 2, the follow-through: a depth-1 crash state is booted by the host
//! that ran the operation (power lost, then the boot, as a scenario replays
//! it), the host does the next thing a host does ([`Operation::next`]), and
//! the crash states of that second operation are judged like the first's.
//!
//! Contract:
//! - only distinct (by content), non-violating depth-1 states that booted
//!   are followed, at most `max_follow` of them, in [`candidates`]' order:
//!   states with FAT damage first, the most serious class first, taking one
//!   state of each outcome in turn so that every kind of state is followed
//!   before a second of any kind;
//! - a depth-2 state is acceptable when it boots a fully written build with
//!   the configuration the host came up with or the one the second
//!   operation saved; anything else makes its depth-1 parent (and the
//!   parent's twins by content) a violation, `leads to: <cause>`;
//! - what was not followed is counted in [`FollowSummary`], never dropped
//!   silently; the result is the same for the same inputs (parents are
//!   taken in a fixed order, not as threads finish).
//!
//! [`Operation::next`]: super::Operation::next

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use visorsim_boot::boot::{ModuleCache, Outcome};
use visorsim_disk::{crash_states, BlockDevice, CrashState, MemDisk, WriteLog};
use visorsim_host::host::Host;

use super::judge::{write_numbers, BankVerdicts, ContentKeys, Expected, Judge};
use super::{came_up_with_defaults, etc_pairs, space, Exploration, ExploreOptions, NextOperation, StateResult};

/// What depth 2 followed, and what it did not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FollowSummary {
    /// The second operation (`next backup`, `trial reboot`).
    pub next: String,
    /// Distinct, non-violating depth-1 states that booted: the candidates.
    pub candidates: usize,
    /// Of them, followed.
    pub followed: usize,
    /// Of them, not followed (the `max_follow` cap).
    pub not_followed: usize,
    /// Depth-2 crash states judged (duplicates by content included).
    pub states: usize,
    /// Of them, distinct by content.
    pub distinct: usize,
    /// Depth-1 states whose follow-through could not run, with why.
    pub failed: Vec<String>,
}

/// Severity rank of a FAT damage class for the follow-through order (lower
/// first): damage to files' chains first, then directory damage, then the
/// flags a clean unmount clears.
fn rank(class: &str) -> u8 {
    match class {
        "cross_link" => 0,
        "free_in_chain" => 1,
        "chain_ends_early" => 2,
        "chain_loop" => 3,
        "chain_out_of_range" => 4,
        "bad_cluster" => 5,
        "lost_clusters" => 6,
        "size_mismatch" => 7,
        "bad_dir_entry" | "duplicate_entry" | "bad_dot_entries" => 8,
        "bad_long_name" => 9,
        "boot_sector" | "fat_media" | "volume_label" | "unsupported" => 10,
        "fat_copies_differ" => 11,
        "dirty_bit" => 12,
        _ => 13,
    }
}

/// Indexes into `results` of the depth-1 states to follow, in order (see
/// the module's contract).
pub(super) fn candidates(results: &[StateResult]) -> Vec<usize> {
    let mut groups: BTreeMap<(u8, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        if r.depth != 1 || r.same_as.is_some() || r.violation || r.boot.as_deref() != Some("booted") {
            continue;
        }
        let worst = r.fat.values().flatten().map(|c| rank(c)).min().unwrap_or(14);
        groups.entry((worst, r.outcome.clone())).or_default().push(i);
    }
    let mut order = Vec::new();
    let mut round = 0;
    loop {
        let before = order.len();
        order.extend(groups.values().filter_map(|g| g.get(round).copied()));
        if order.len() == before {
            return order;
        }
        round += 1;
    }
}

/// See [`Exploration::follow`].
pub(super) fn follow(
    x: &Exploration,
    options: &ExploreOptions,
    results: &mut [StateResult],
    followed: &AtomicUsize,
) -> (Vec<StateResult>, FollowSummary) {
    let next = x.op.next();
    let order = candidates(results);
    let chosen: Vec<usize> = order.iter().copied().take(options.max_follow).collect();
    let mut summary = FollowSummary {
        next: next.label().to_owned(),
        candidates: order.len(),
        followed: chosen.len(),
        not_followed: order.len() - chosen.len(),
        ..FollowSummary::default()
    };
    let mut cache = ModuleCache::new(64);
    let mut deeper = Vec::new();
    for &i in &chosen {
        let parent_id = results[i].id;
        let Some(state) = x.states.iter().find(|s| s.id == parent_id) else { continue };
        match follow_one(x, options, state, next, &mut cache) {
            Ok(found) => {
                if let Some(bad) = found.iter().find(|r| r.violation) {
                    let cause = format!("leads to: {}", bad.cause.as_deref().unwrap_or("violation"));
                    let said = bad.outcome.strip_prefix("violation: ").unwrap_or(&bad.outcome);
                    let (bad_id, said) = (bad.id, format!("{}: {said}", next.label()));
                    for r in results
                        .iter_mut()
                        .filter(|r| r.depth == 1 && (r.id == parent_id || r.same_as == Some(parent_id)))
                    {
                        let own = r.outcome.split_once(": ").map_or(r.outcome.as_str(), |(_, rest)| rest).to_owned();
                        r.outcome = format!("violation: {own}; then {said}");
                        r.violation = true;
                        r.cause = Some(cause.clone());
                        r.leads_to = Some(bad_id);
                    }
                }
                summary.states += found.len();
                summary.distinct += found.iter().filter(|r| r.same_as.is_none()).count();
                deeper.extend(found);
            }
            Err(why) => summary.failed.push(format!("crash state {parent_id}: {why}")),
        }
        followed.fetch_add(1, Ordering::Relaxed);
    }
    (deeper, summary)
}

/// Boots crash state `state` with the host that ran the operation, runs
/// `next`, and judges the next operation's crash states.
fn follow_one(
    x: &Exploration,
    options: &ExploreOptions,
    state: &CrashState,
    next: NextOperation,
    cache: &mut ModuleCache,
) -> Result<Vec<StateResult>, String> {
    let mut disk = x.crash_disk(state).map_err(|e| e.to_string())?;
    // As a scenario replays it: the operation failed at the cut, power was
    // lost, power came back and the host booted.
    let mut host = Host::restore(&x.host_after);
    host.power_off();
    let report = host.boot(&mut disk, &x.boot, Some(cache));
    if report.outcome != Outcome::Booted || host.running().is_none() {
        return Err("the host did not come up again".to_owned());
    }
    let came_up_with = etc_pairs(host.etc());
    let defaults_before = came_up_with_defaults(&host);
    let base: MemDisk = disk.fork();
    let mut recorder = WriteLog::new(disk);
    match next {
        NextOperation::Backup => {
            host.set_hostname("next-config").map_err(|e| format!("set_hostname: {e}"))?;
            // A failing backup still issued writes: their crash states are judged.
            let _ = host.backup(&mut recorder, false);
        }
        NextOperation::Reboot => {
            host.reboot(&mut recorder, &x.boot, Some(cache));
        }
    }
    let saved = etc_pairs(host.etc());
    let (_, log) = recorder.into_parts();
    let states = crash_states(&log, base.sector_size().len(), &space(options));
    let mut verdict_disk = base.fork();
    let base_verdicts = BankVerdicts::of(&mut verdict_disk);
    let mut builds = vec![("old build", x.old_build.clone())];
    if let Some(new) = &x.new_build {
        builds.push(("new build", new.clone()));
    }
    let judge = Judge {
        base: &base,
        log: &log,
        base_verdicts: &base_verdicts,
        seed: x.seed,
        boot: &x.boot,
        depth: 2,
        parent: Some(state.id),
        expected: Expected {
            builds,
            configs: vec![("next config", saved), ("config before", came_up_with)],
            defaults_before,
        },
        numbers: write_numbers(&log),
    };
    let all: Vec<&CrashState> = states.iter().collect();
    let keys = ContentKeys::new(&log, base.sector_size().len());
    Ok(judge.judge_all(&all, &keys, options.fsck_every, &AtomicUsize::new(0)))
}
