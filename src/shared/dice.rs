//! Deterministic randomness: splitmix64, for the load generator's tape and
//! for the faults a server injects on purpose. Small, fast, repeatable
//! from a seed, and good enough for test traffic (not for anything secret).

/// The next value of the splitmix64 generator.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random stream for one connection or socket.
#[derive(Debug, Clone, Copy)]
pub struct Dice(u64);

impl Dice {
    /// The stream for `seed` and the serial number `n` of what rolls it.
    pub fn new(seed: u64, n: u64) -> Dice {
        let mut state = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // One step mixes the two, so neighbouring numbers part at once.
        splitmix64(&mut state);
        Dice(state)
    }

    /// A whole number from 0 to `max`, both included, near uniform.
    pub fn upto(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(span) => splitmix64(&mut self.0) % span,
            None => splitmix64(&mut self.0),
        }
    }

    /// True with probability `p` (0 to 1).
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits make a uniform float in [0, 1).
        let x = (splitmix64(&mut self.0) >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed and serial number draw the same delays; another
    /// connection draws others.
    #[test]
    fn the_seed_makes_the_dice_repeatable() {
        let roll = |seed, id| {
            let mut d = Dice::new(seed, id);
            (0..8).map(|_| d.upto(1000)).collect::<Vec<_>>()
        };
        assert_eq!(roll(9, 1), roll(9, 1));
        assert_ne!(roll(9, 1), roll(9, 2));
        assert_ne!(roll(9, 1), roll(10, 1));
        let mut d = Dice::new(0, 0);
        assert!((0..1000).all(|_| d.upto(3) <= 3));
        // The whole range draws without overflowing (max + 1 does not fit).
        let draws: Vec<u64> = (0..64).map(|_| d.upto(u64::MAX)).collect();
        assert!(draws.iter().any(|&x| x > u64::MAX / 2), "{draws:?}");
    }

    /// `chance(p)` comes up about p of the time.
    #[test]
    fn chance_matches_its_probability() {
        let mut d = Dice::new(5, 0);
        let hits = (0..100_000).filter(|_| d.chance(0.1)).count();
        // 10,000 expected; the standard deviation is about 95.
        assert!((9_500..=10_500).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| d.chance(0.0)));
        assert!((0..1000).all(|_| d.chance(1.0)));
    }
}
