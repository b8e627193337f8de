//! Reproducers: a scenario file per distinct violation that `visorsim run`
//! replays to the same outcome.
//!
//! A crash state becomes `fault` steps around the operation:
//! `power_cut_after_writes` (the cut right after that write of the
//! operation), `torn_sectors` (the write the cut interrupts lands partly)
//! and `lost_writes` (unflushed writes that never landed). A depth-2
//! violation is its depth-1 parent's crash, the boot, the next operation
//! with its own crash, and the boot after it.
//!
//! On a customer's disk the scenario starts from the image the user named
//! (`disk.image`, absolute: the file itself, which the runner only reads),
//! with the explorer's seed, loader and cache.
//!
//! The expectations are what the explorer saw (the boot's outcome, the
//! build, the host name the host came up with): the scenario *passes* while
//! the crash window exists, and fails once a change closes it.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};
use visorsim_boot::safeboot::LoaderVersion;

use super::{Exploration, NextOperation, Operation, StateResult};

/// The `fault` step that cuts power as `r`'s crash state says.
fn fault(r: &StateResult) -> Value {
    let mut fault = json!({ "power_cut_after_writes": r.cut_after });
    if let Some(sectors) = r.torn_sectors {
        fault["torn_sectors"] = json!(sectors);
    }
    if !r.lost.is_empty() {
        fault["lost_writes"] = json!(r.lost);
    }
    json!({ "fault": fault })
}

/// What the boot after `r`'s crash showed, as an `expect` step.
fn expect(r: &StateResult) -> Value {
    let mut expect = json!({ "outcome": r.boot.clone().unwrap_or_else(|| "booted".into()) });
    if r.boot.as_deref() == Some("booted") {
        if let Some(build) = &r.build {
            expect["booted_build"] = json!(build);
        }
        if let Some(hostname) = &r.hostname {
            expect["config"] = json!({ "hostname": hostname });
        }
    } else {
        expect["running"] = json!(false);
    }
    json!({ "expect": expect })
}

/// The steps of the operation explored at depth 1, cut as `r` says, then
/// the boot.
fn first(x: &Exploration, r: &StateResult) -> Vec<Value> {
    let mut steps = x.setup_steps.clone();
    steps.push(fault(r));
    steps.push(x.op_step.clone());
    steps.push(json!({ "fault": { "clear": true } }));
    if x.op != Operation::Boot {
        steps.push(json!("power_cut"));
    }
    steps.push(json!({ "boot": {} }));
    steps
}

/// The scenario's `disk`: the built disk's seed and payload, or the
/// customer's image itself (`disk.image`, never a copy; `seed` then seeds
/// the host's randomness, and `payload_mb`, given when an upgrade runs,
/// sizes the upgrade's build); the loader when it is not the current one.
fn disk(x: &Exploration) -> Value {
    let mut disk = json!({ "seed": x.seed, "cache": x.boot.cache.name() });
    if x.image.is_none() || x.op != Operation::Backup {
        disk["payload_mb"] = json!(x.payload_mb);
    }
    if let Some(image) = &x.image {
        disk["image"] = json!(image);
    }
    let loader = x.boot.loader.loader;
    if loader != LoaderVersion::Current {
        disk["loader"] = json!(loader.name());
    }
    disk
}

/// See [`Exploration::reproducer`].
pub(super) fn reproducer(x: &Exploration, r: &StateResult, results: &[StateResult]) -> Option<Value> {
    if !r.violation {
        return None;
    }
    let (parent, child) = match (r.depth, r.leads_to, r.parent) {
        (1, None, _) => (r, None),
        (1, Some(child), _) => (r, results.iter().find(|c| c.depth == 2 && c.parent == Some(r.id) && c.id == child)),
        (_, _, Some(parent)) => (results.iter().find(|p| p.depth == 1 && p.id == parent)?, Some(r)),
        _ => return None,
    };
    let mut steps = first(x, parent);
    let description = match child {
        None => {
            steps.push(expect(parent));
            format!("Crash-point exploration of {}: {} — {}", x.op.name(), parent.description, parent.outcome)
        }
        Some(child) => {
            let next = x.op.next();
            // The host came up as the explorer saw it...
            let mut came_up = expect(parent);
            came_up["expect"].as_object_mut()?.remove("outcome");
            steps.push(came_up);
            // ...then does the next thing a host does, and loses power in it.
            match next {
                NextOperation::Backup => {
                    steps.push(json!({ "set_hostname": "next-config" }));
                    steps.push(fault(child));
                    steps.push(json!("backup"));
                }
                NextOperation::Reboot => {
                    steps.push(fault(child));
                    steps.push(json!({ "reboot": {} }));
                }
            }
            steps.push(json!({ "fault": { "clear": true } }));
            steps.push(json!("power_cut"));
            steps.push(json!({ "boot": {} }));
            steps.push(expect(child));
            format!(
                "Crash-point exploration of {} at depth 2: {}, then the {}: {} — {}",
                x.op.name(),
                parent.description,
                next.label(),
                child.description,
                child.outcome
            )
        }
    };
    Some(json!({
        "description": description,
        "references": ["visorsim explore"],
        "disk": disk(x),
        "steps": steps,
    }))
}

/// Writes a reproducer for each distinct violation of `results` into `dir`
/// (one per outcome; a depth-2 violation through the depth-1 state that
/// led to it); returns the paths.
///
/// # Errors
/// The directory or a file cannot be written.
pub fn write_reproducers(
    exploration: &Exploration,
    results: &[StateResult],
    dir: &Path,
) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut seen = BTreeSet::new();
    let mut written = Vec::new();
    for r in results.iter().filter(|r| r.violation && r.depth == 1) {
        if !seen.insert(r.outcome.clone()) {
            continue;
        }
        let Some(scenario) = exploration.reproducer(r, results) else { continue };
        let name = match r.leads_to {
            None => format!("{}_crash_state_{}.json", exploration.op.name(), r.id),
            Some(child) => format!("{}_crash_state_{}_then_state_{child}.json", exploration.op.name(), r.id),
        };
        let path = dir.join(&name);
        std::fs::write(&path, serde_json::to_string_pretty(&scenario).expect("json"))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
