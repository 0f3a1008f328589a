//! Random amounts (lucky credits, ad rewards) from a configured distribution. The generator is
//! passed in: a cryptographically secure one in production, a seeded one in tests.

use crate::ledger::Credits;
use rand::Rng;
use serde::Deserialize;
use std::fmt;

/// Whole credits, drawn from `min..=max` uniformly or from a weighted table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Every whole amount from `min` to `max` (or the caller's cap) equally likely.
    Uniform { min: u32, max: u32 },
    /// Each amount with its weight.
    Weighted { table: Vec<(u32, u32)> },
}

/// Bounds on a distribution's size, so a config cannot make a draw slow or absurd.
pub const MAX_DRAW_CREDITS: u32 = 1_000_000;
pub const MAX_TABLE_ROWS: usize = 100;

impl Distribution {
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Distribution::Uniform { min, max } if *min == 0 || min > max || *max > MAX_DRAW_CREDITS => {
                Err(format!("a uniform draw needs 1 <= min <= max <= {MAX_DRAW_CREDITS}"))
            }
            Distribution::Weighted { table }
                if table.is_empty()
                    || table.len() > MAX_TABLE_ROWS
                    || table.iter().any(|(amount, weight)| *amount == 0 || *amount > MAX_DRAW_CREDITS || *weight == 0) =>
            {
                Err(format!("a weighted draw needs 1 to {MAX_TABLE_ROWS} rows of (amount 1..={MAX_DRAW_CREDITS}, weight >= 1)"))
            }
            _ => Ok(()),
        }
    }

    /// Draws an amount, never above `cap` (a plan's maximum) when one is given.
    pub fn sample(&self, rng: &mut impl Rng, cap: Option<u32>) -> Credits {
        let amount = match self {
            Distribution::Uniform { min, max } => {
                let max = cap.map_or(*max, |c| c.min(*max)).max(*min);
                rng.random_range(*min..=max)
            }
            Distribution::Weighted { table } => {
                let total: u64 = table.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut pick = rng.random_range(0..total);
                let mut chosen = table[table.len() - 1].0;
                for (amount, weight) in table {
                    if pick < u64::from(*weight) {
                        chosen = *amount;
                        break;
                    }
                    pick -= u64::from(*weight);
                }
                cap.map_or(chosen, |c| chosen.min(c))
            }
        };
        Credits::from_whole(i64::from(amount))
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Uniform { min, max } => write!(f, "uniform({min}..={max})"),
            Distribution::Weighted { table } => {
                let rows: Vec<String> = table.iter().map(|(a, w)| format!("{a}:{w}")).collect();
                write!(f, "weighted({})", rows.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Pearson's chi-square statistic of observed counts against expected probabilities, in
    /// exact rational arithmetic scaled to integers (no floating point near amounts).
    fn chi_square_times_n(observed: &[u64], weights: &[u64], n: u64) -> u128 {
        let total: u64 = weights.iter().sum();
        // sum (o - e)^2 / e with e = n w / total, times n: sum (o total - n w)^2 / (w total)
        observed
            .iter()
            .zip(weights)
            .map(|(o, w)| {
                let diff = i128::from(*o) * i128::from(total) - i128::from(n) * i128::from(*w);
                (diff * diff) as u128 / (u128::from(*w) * u128::from(total))
            })
            .sum()
    }

    #[test]
    fn weighted_draws_follow_their_weights() {
        let table = vec![(10, 50), (20, 30), (50, 15), (100, 5)];
        let distribution = Distribution::Weighted { table: table.clone() };
        let mut rng = StdRng::seed_from_u64(7);
        let n = 20_000u64;
        let mut observed = vec![0u64; table.len()];
        for _ in 0..n {
            let amount = distribution.sample(&mut rng, None);
            let row = table.iter().position(|(a, _)| Credits::from_whole(i64::from(*a)) == amount).expect("a table amount");
            observed[row] += 1;
        }
        let weights: Vec<u64> = table.iter().map(|(_, w)| u64::from(*w)).collect();
        // 3 degrees of freedom: chi-square < 16.27 at p = 0.001.
        assert!(chi_square_times_n(&observed, &weights, n) < u128::from(1627 * n / 100), "{observed:?}");
    }

    #[test]
    fn uniform_draws_are_uniform_and_never_exceed_the_cap() {
        let distribution = Distribution::Uniform { min: 1, max: 10 };
        let mut rng = StdRng::seed_from_u64(11);
        let n = 20_000u64;
        let mut observed = vec![0u64; 10];
        for _ in 0..n {
            let amount = distribution.sample(&mut rng, None).micros() / 1_000_000;
            assert!((1..=10).contains(&amount));
            observed[(amount - 1) as usize] += 1;
        }
        // 9 degrees of freedom: chi-square < 27.88 at p = 0.001.
        assert!(chi_square_times_n(&observed, &[1; 10], n) < u128::from(2788 * n / 100), "{observed:?}");
        for _ in 0..1_000 {
            assert!(distribution.sample(&mut rng, Some(3)) <= Credits::from_whole(3));
        }
        let weighted = Distribution::Weighted { table: vec![(100, 1), (5, 1)] };
        for _ in 0..1_000 {
            assert!(weighted.sample(&mut rng, Some(50)) <= Credits::from_whole(50));
        }
    }

    #[test]
    fn bad_distributions_are_refused() {
        assert!(Distribution::Uniform { min: 0, max: 5 }.validate().is_err());
        assert!(Distribution::Uniform { min: 6, max: 5 }.validate().is_err());
        assert!(Distribution::Weighted { table: vec![] }.validate().is_err());
        assert!(Distribution::Weighted { table: vec![(5, 0)] }.validate().is_err());
        assert!(Distribution::Weighted { table: vec![(5, 1)] }.validate().is_ok());
    }
}
