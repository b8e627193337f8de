//! Crash-point exploration (issue 9): deduplication by content is sound,
//! and depth 2's cap is reported.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

use visorsim_boot::boot::ModuleCache;
use visorsim_scenario::explore::{ContentKeys, Exploration, ExploreOptions, Operation};

fn options(op: Operation) -> ExploreOptions {
    ExploreOptions { op, payload_mb: 0.3, ..ExploreOptions::default() }
}

/// States with the same content key get the same verdict when each is
/// judged on its own (no sharing), FAT classes included; and the run that
/// shares verdicts gives each state the verdict it would get alone.
#[test]
fn states_with_the_same_content_have_the_same_verdict() {
    let opts = options(Operation::Boot);
    let x = Exploration::prepare(&opts).expect("prepare");
    let keys = ContentKeys::new(x.log(), 512);
    let mut cache = ModuleCache::new(64);
    let mut by_key: HashMap<u64, (u64, String, Vec<String>)> = HashMap::new();
    let shared = x.run_counting(&opts, &AtomicUsize::new(0));
    let mut twins = 0;
    for (state, run) in x.states().iter().zip(&shared) {
        let alone = x.check(state, &mut cache, false);
        assert_eq!((run.id, &run.outcome, &run.fat), (alone.id, &alone.outcome, &alone.fat), "{state:?}");
        let classes: Vec<String> = alone.fat.values().flatten().cloned().collect();
        let entry =
            by_key.entry(keys.key(x.log(), state)).or_insert((state.id, alone.outcome.clone(), classes.clone()));
        if entry.0 != state.id {
            twins += 1;
            assert_eq!((&entry.1, &entry.2), (&alone.outcome, &classes), "state {} and its twin {}", state.id, entry.0);
        }
    }
    assert!(twins > 0, "some states share their content");
    assert!(shared.iter().any(|r| r.same_as.is_some()));
}

/// Depth 2 follows at most `max_follow` states and says how many it left.
#[test]
fn depth_2_reports_what_it_did_not_follow() {
    let opts = ExploreOptions { depth: 2, max_follow: 1, ..options(Operation::Backup) };
    let x = Exploration::prepare(&opts).expect("prepare");
    let mut results = x.run_counting(&opts, &AtomicUsize::new(0));
    let (deeper, summary) = x.follow(&opts, &mut results, &AtomicUsize::new(0));
    assert_eq!(summary.followed, 1, "{summary:?}");
    assert_eq!(summary.not_followed, summary.candidates - 1, "{summary:?}");
    assert!(summary.candidates > 1, "{summary:?}");
    assert_eq!(summary.next, "next backup");
    assert_eq!(deeper.len(), summary.states);
    let parent = deeper[0].parent.expect("depth-2 states name their parent");
    assert!(deeper.iter().all(|r| r.depth == 2 && r.parent == Some(parent)));
    let followed = results.iter().find(|r| r.id == parent).unwrap();
    assert!(!followed.fat.is_empty(), "the most damaged state is followed first: {followed:?}");
}
