//! Counter-based, seekable randomness: every random draw is a pure function of (seed, stream, counter).
//!
//! Nothing in bertfit uses a thread-local or global generator. Data order, splits, dropout masks and
//! weight initialisation each derive their own stream from the run seed and a purpose-specific key, so any
//! draw can be reproduced after a resume without replaying the run.

/// SplitMix64 finaliser: a bijective 64-bit mixer with good avalanche behaviour.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Combines keys into one 64-bit stream key (order matters).
pub fn key(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9e37_79b9_7f4a_7c15, |acc, &p| mix64(acc ^ mix64(p.wrapping_add(0x632b_e59b_d9b4_e019))))
}

/// Hashes a purpose label ("shuffle", "dropout") into a key part.
pub fn label(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The `i`-th 64-bit draw of stream `key`.
#[inline]
pub fn draw(key: u64, i: u64) -> u64 {
    mix64(key ^ mix64(i.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1)))
}

/// The `i`-th uniform draw in [0, 1) of stream `key` (24 bits of precision, like an f32 mantissa).
#[inline]
pub fn uniform_f32(key: u64, i: u64) -> f32 {
    (draw(key, i) >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// A sequential generator over one stream; its whole state is `(key, counter)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stream {
    /// The stream key.
    pub key: u64,
    /// How many draws have been taken.
    pub counter: u64,
}

impl Stream {
    /// A fresh stream for the given key parts.
    pub fn new(parts: &[u64]) -> Self {
        Stream { key: key(parts), counter: 0 }
    }
    /// Next 64-bit draw.
    pub fn next_u64(&mut self) -> u64 {
        let v = draw(self.key, self.counter);
        self.counter += 1;
        v
    }
    /// Uniform integer in `0..n` (n > 0), by rejection, so it has no modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
    /// Uniform f64 in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Fisher-Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let mut a = Stream::new(&[42, label("shuffle"), 0]);
        let mut b = Stream::new(&[42, label("shuffle"), 0]);
        let mut c = Stream::new(&[42, label("shuffle"), 1]);
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
    }

    #[test]
    fn seeking_equals_sequential() {
        let mut s = Stream::new(&[7]);
        let seq: Vec<u64> = (0..5).map(|_| s.next_u64()).collect();
        let direct: Vec<u64> = (0..5).map(|i| draw(s.key, i)).collect();
        assert_eq!(seq, direct);
    }

    #[test]
    fn uniform_is_roughly_uniform() {
        let k = key(&[1, 2, 3]);
        let n = 100_000;
        let mean: f64 = (0..n).map(|i| uniform_f32(k, i) as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let below_tenth = (0..n).filter(|&i| uniform_f32(k, i) < 0.1).count() as f64 / n as f64;
        assert!((below_tenth - 0.1).abs() < 0.01, "share {below_tenth}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..100).collect();
        Stream::new(&[5]).shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut s = Stream::new(&[9]);
        let xs: Vec<f64> = (0..50_000).map(|_| s.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03, "mean {mean} var {var}");
    }
}
