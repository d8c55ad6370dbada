//! A stable 64-bit hash for record fingerprints and checkpoint identities.
//!
//! The value is persisted in checkpoints, so it must not change between
//! builds or Rust versions (std's `DefaultHasher` makes no such promise).
//! Eight bytes per step with a multiply-fold mix; not cryptographic, which
//! is fine: a collision only drops one record already delivered or makes
//! a second-pass record look delivered, at odds of about n² / 2⁶⁴.

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Hashes a byte string.
pub(crate) fn hash_bytes(data: &[u8]) -> u64 {
    let mut h = K0 ^ (data.len() as u64).wrapping_mul(K1);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mix(h ^ u64::from_le_bytes(w), K1);
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    h = mix(h ^ u64::from_le_bytes(w) ^ K0, K1);
    mix(h, K0 ^ 0x9e37_79b9_7f4a_7c15)
}

/// [`hash_bytes`] of the concatenation of `parts`, without concatenating
/// them: the same value, bit for bit.
pub(crate) fn hash_parts(parts: &[&[u8]]) -> u64 {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut h = K0 ^ (len as u64).wrapping_mul(K1);
    // Bytes carried from one part into the next word.
    let mut w = [0u8; 8];
    let mut n = 0;
    for part in parts {
        let mut rest = *part;
        if n > 0 {
            let (head, tail) = rest.split_at((8 - n).min(rest.len()));
            if let Some(slot) = w.get_mut(n..n + head.len()) {
                slot.copy_from_slice(head);
            }
            n += head.len();
            rest = tail;
            if n < 8 {
                continue;
            }
            h = mix(h ^ u64::from_le_bytes(w), K1);
        }
        let mut chunks = rest.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            h = mix(h ^ u64::from_le_bytes(word), K1);
        }
        let tail = chunks.remainder();
        if let Some(slot) = w.get_mut(..tail.len()) {
            slot.copy_from_slice(tail);
        }
        n = tail.len();
    }
    if let Some(pad) = w.get_mut(n..) {
        pad.fill(0);
    }
    h = mix(h ^ u64::from_le_bytes(w) ^ K0, K1);
    mix(h, K0 ^ 0x9e37_79b9_7f4a_7c15)
}

/// A faster hash for keys that live in memory only and are never
/// persisted (so it may change between builds): sixteen bytes per multiply
/// on two independent lanes, about four times the speed of [`hash_bytes`]
/// on a record of a kilobyte. The same odds against a collision for
/// unrelated inputs; like [`hash_bytes`], not meant to resist crafted ones.
pub(crate) fn hash_wide(data: &[u8]) -> u64 {
    fn word(b: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        if let Some(s) = b.get(at..at + 8) {
            w.copy_from_slice(s);
        }
        u64::from_le_bytes(w)
    }
    let len = data.len() as u64;
    let (mut a, mut b) = (K0 ^ len.wrapping_mul(K1), K1 ^ len.rotate_left(32));
    let mut blocks = data.chunks_exact(32);
    for c in &mut blocks {
        a = mix(a ^ word(c, 0), K1 ^ word(c, 8));
        b = mix(b ^ word(c, 16), K0 ^ word(c, 24));
    }
    for c in blocks.remainder().chunks(8) {
        let mut w = [0u8; 8];
        if let Some(slot) = w.get_mut(..c.len()) {
            slot.copy_from_slice(c);
        }
        a = mix(a ^ u64::from_le_bytes(w), K1);
    }
    mix(mix(a ^ K0, b ^ K1), K0 ^ 0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_sensitive() {
        // Persisted in checkpoints: this value must never change.
        assert_eq!(hash_bytes(b"forge"), hash_bytes(b"forge"));
        assert_ne!(hash_bytes(b"forge"), hash_bytes(b"forgf"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
        assert_ne!(hash_bytes(b"12345678"), hash_bytes(b"123456780"));
        let golden = hash_bytes(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(format!("{golden:016x}"), GOLDEN);
    }

    #[test]
    fn parts_hash_as_their_concatenation() {
        let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..data.len() {
            let whole = &data[..len];
            assert_eq!(hash_parts(&[whole]), hash_bytes(whole), "{len}");
            for a in 0..=len {
                for b in a..=len {
                    let parts = [&whole[..a], &whole[a..b], &[][..], &whole[b..]];
                    assert_eq!(hash_parts(&parts), hash_bytes(whole), "{len} {a} {b}");
                }
            }
        }
        assert_eq!(format!("{:016x}", hash_parts(&[b"The quick brown ", b"fox", b" jumps over the lazy dog"])), GOLDEN);
    }

    #[test]
    fn wide_hash_tells_every_change_apart() {
        let data: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let mut seen = std::collections::HashSet::new();
        for len in 0..data.len() {
            assert!(seen.insert(hash_wide(&data[..len])), "prefix of {len} bytes");
            assert!(seen.insert(hash_wide(&vec![0u8; len + 1000])), "{len} zero bytes");
        }
        assert_eq!(hash_wide(&data), hash_wide(&data.clone()));
        for at in 0..data.len() {
            for bit in [0x01u8, 0x80] {
                let mut d = data.clone();
                d[at] ^= bit;
                assert!(seen.insert(hash_wide(&d)), "byte {at} bit {bit:#x}");
            }
        }
        // Two blocks swapped, in either lane: order counts.
        let mut d = data.clone();
        d[..32].rotate_left(16);
        assert_ne!(hash_wide(&d), hash_wide(&data));
        let mut d = data.clone();
        let (x, y) = d.split_at_mut(32);
        x.swap_with_slice(&mut y[..32]);
        assert_ne!(hash_wide(&d), hash_wide(&data));
    }

    const GOLDEN: &str = "94072547b9c2e099";
}
