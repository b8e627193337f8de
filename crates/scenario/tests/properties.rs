//! Property tests: random sequences of host operations and faults, with
//! shrinking. Invariants: a bank always boots after any sequence once the
//! faults stop (safety, then liveness); an orderly shutdown never loses
//! configuration; a failed upgrade never leaves the host without a bootable
//! bank. A failing case prints its seed and a scenario file reproducing it.

use proptest::prelude::*;
use visorsim_scenario::model::{BootOutcome, BootStep, Expect, FaultStep, Scenario, Step, UpgradeStep};

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Boot(BootStep::default())),
        2 => (0u32..100).prop_map(|n| Step::SetHostname(format!("host-{n}"))),
        2 => prop_oneof![Just("30m"), Just("1h"), Just("2h")].prop_map(|d| Step::Advance(d.to_owned())),
        2 => Just(Step::Backup),
        1 => (2000u32..2003, prop::bool::weighted(0.3)).prop_map(|(build, broken)| Step::Upgrade(UpgradeStep {
            build,
            seed: None,
            broken: broken.then(|| "s.v00".to_owned()),
            extra_mb: 0,
        })),
        2 => Just(Step::Reboot(BootStep::default())),
        1 => Just(Step::Shutdown),
        2 => Just(Step::PowerCut),
        1 => (1u64..40).prop_map(|n| Step::Fault(FaultStep { power_cut_after_writes: Some(n), ..Default::default() })),
        1 => Just(Step::Reboot(BootStep { shift_r: Some(visorsim_scenario::model::ShiftRWhen::Safeboot), ..Default::default() })),
    ]
}

fn scenario(seed: u64, steps: Vec<Step>) -> Scenario {
    let json = serde_json::json!({ "disk": { "seed": seed, "payload_mb": 0.1 }, "steps": [] });
    let mut s: Scenario = serde_json::from_value(json).unwrap();
    s.steps = steps;
    s
}

fn show(s: &Scenario) -> String {
    serde_json::to_string_pretty(s).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// After any sequence, once the faults stop a power cycle boots a bank.
    #[test]
    fn a_bank_always_boots_once_faults_stop(seed in 1u64..1000, steps in prop::collection::vec(arb_step(), 1..10)) {
        let mut all = vec![Step::Boot(BootStep::default())];
        all.extend(steps);
        all.push(Step::Fault(FaultStep { clear: true, ..Default::default() }));
        all.push(Step::PowerCut);
        // A trial that failed its first boot is rolled back at the next one,
        // so allow two power cycles.
        all.push(Step::Boot(BootStep::default()));
        all.push(Step::PowerCut);
        all.push(Step::Boot(BootStep::default()));
        all.push(Step::Expect(Expect { outcome: Some(BootOutcome::Booted), ..Default::default() }));
        let s = scenario(seed, all);
        let result = visorsim_scenario::run(&s, std::path::Path::new(".")).unwrap();
        prop_assert!(result.passed(), "seed {seed}; reproduce with this scenario file:\n{}\n{}", show(&s), result.render());
    }

    /// An orderly shutdown never loses configuration.
    #[test]
    fn orderly_shutdown_keeps_configuration(seed in 1u64..1000, prefix in prop::collection::vec(arb_step(), 0..6), name in 0u32..1000) {
        let mut all = vec![Step::Boot(BootStep::default())];
        all.extend(prefix);
        all.push(Step::Fault(FaultStep { clear: true, ..Default::default() }));
        all.push(Step::PowerCut);
        all.push(Step::Boot(BootStep::default()));
        all.push(Step::PowerCut);
        all.push(Step::Boot(BootStep::default()));
        let hostname = format!("kept-{name}");
        all.push(Step::SetHostname(hostname.clone()));
        all.push(Step::Shutdown);
        all.push(Step::Boot(BootStep::default()));
        let mut expect = Expect::default();
        expect.config.insert("hostname".into(), hostname);
        all.push(Step::Expect(expect));
        let s = scenario(seed, all);
        let result = visorsim_scenario::run(&s, std::path::Path::new(".")).unwrap();
        prop_assert!(result.passed(), "seed {seed}; reproduce with this scenario file:\n{}\n{}", show(&s), result.render());
    }

    /// A failed upgrade (broken image, power cut or full device mid-copy)
    /// never leaves the host without a bootable bank.
    #[test]
    fn failed_upgrade_keeps_a_bootable_bank(seed in 1u64..1000, cut in prop::option::of(1u64..200), broken in prop::bool::ANY) {
        let mut all = vec![Step::Boot(BootStep::default())];
        if let Some(n) = cut {
            all.push(Step::Fault(FaultStep { power_cut_after_writes: Some(n), ..Default::default() }));
        }
        all.push(Step::Upgrade(UpgradeStep { build: 2000, seed: None, broken: broken.then(|| "s.v00".into()), extra_mb: 0 }));
        all.push(Step::Fault(FaultStep { clear: true, ..Default::default() }));
        all.push(Step::Reboot(BootStep::default()));
        all.push(Step::PowerCut);
        all.push(Step::Boot(BootStep::default()));
        all.push(Step::Expect(Expect { outcome: Some(BootOutcome::Booted), ..Default::default() }));
        let s = scenario(seed, all);
        let result = visorsim_scenario::run(&s, std::path::Path::new(".")).unwrap();
        prop_assert!(result.passed(), "seed {seed}; reproduce with this scenario file:\n{}\n{}", show(&s), result.render());
    }
}
