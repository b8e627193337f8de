//! The seeded randomness of the fault layer: SplitMix64 and the one choice
//! drawn from it, which cached writes a power cut loses.
//!
//! Contract: [`lost_at_cut`] is a pure function of its arguments, exactly
//! as step 2 of [the cut](super#the-cut-exactly) states it. The generator is
//! written out here (no dependency) so a run's outcome for a seed never
//! changes with a crate version, a platform or a build; the unit test pins
//! the reference outputs.

use super::CacheModel;

/// SplitMix64 (Steele, Lea, Flood 2014), written out so a cut's outcome
/// never changes with a dependency's version.
struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator of a cut in `epoch` under `seed`.
    fn for_epoch(seed: u64, epoch: u64) -> SplitMix64 {
        SplitMix64(seed ^ SplitMix64(epoch).next_u64())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Indexes (ascending) of the candidates lost at a cut; see step 2 of
/// [the cut](super#the-cut-exactly).
pub(super) fn lost_at_cut(seed: u64, epoch: u64, candidates: usize, model: CacheModel) -> Vec<usize> {
    let mut rng = SplitMix64::for_epoch(seed, epoch);
    let k = model.max_reorder.min(candidates);
    let mut pool: Vec<usize> = (0..candidates).collect();
    for i in 0..k {
        let j = i + rng.below((candidates - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool.sort_unstable();
    let percent = u64::from(model.drop_probability_percent);
    pool.retain(|_| rng.below(100) < percent);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 1234567 from the reference implementation.
        let mut rng = SplitMix64(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }
}
