//! String operations of the rules: truncation that never splits a UTF-8
//! character, and the keyed hash written as hex.

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Appends the hex HMAC-SHA256 of `value` under `key`.
pub fn hex_hmac(key: &ring::hmac::Key, value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let tag = ring::hmac::sign(key, value);
    for b in tag.as_ref() {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("hello", 10), "hello");
        assert_eq!(truncate_utf8("hello", 3), "hel");
        // "é" is two bytes: a cut inside it moves back.
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("😀x", 3), "");
        assert_eq!(truncate_utf8("😀x", 4), "😀");
    }

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let mut out = Vec::new();
        hex_hmac(&key, b"what do ya want for nothing?", &mut out);
        assert_eq!(out, b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
