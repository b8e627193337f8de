//! The test a user writes for "upgrade, power cut during the trial boot,
//! the old bank boots", as a program: `cargo run -p visorsim --example
//! trial_boot_power_cut`. The same lines work in a `#[test]` of your own
//! crate with `visorsim` as a dev-dependency.

use visorsim::prelude::*;

fn main() -> Result<(), SimError> {
    let mut sim = Sim::builder().seed(7).build_sim()?;
    sim.boot();
    sim.upgrade(2000)?;
    sim.shutdown()?;
    sim.cut_power_after_writes(1); // the bootloader's UPGRADING -> DIRTY write lands, then power is lost
    sim.boot();
    assert!(!sim.is_running());
    assert_eq!(sim.bank_state(6), Some(BankState::Dirty));
    let report = sim.boot(); // DIRTY -> INVALID, the old bank boots
    assert_eq!(report.outcome, Outcome::Booted);
    assert_eq!(sim.running_bank(), Some(5));
    assert_eq!(sim.bank_state(6), Some(BankState::Invalid));
    for event in sim.timeline() {
        println!("{} {:<12} {}", event.time, event.kind, event.text);
    }
    Ok(())
}
