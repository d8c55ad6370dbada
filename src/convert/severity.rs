//! Severity and ids: the finishing rules shared by the page walk and the
//! reference path. OpenTelemetry severity numbers from the record's text,
//! else from Forge's pino-style numbers (DESIGN.md 8).

/// OpenTelemetry severity from the record's text, else its number.
pub fn severity(text: Option<&str>, number: Option<i64>) -> i32 {
    const NAMES: [(&str, i32); 7] =
        [("TRACE", 1), ("DEBUG", 5), ("INFO", 9), ("WARN", 13), ("WARNING", 13), ("ERROR", 17), ("FATAL", 21)];
    if let Some(t) = text.map(str::trim) {
        let (name, step) = match t.as_bytes().last() {
            Some(d @ b'2'..=b'4') => (t.get(..t.len() - 1).unwrap_or(t), i32::from(d - b'1')),
            _ => (t, 0),
        };
        if let Some((_, base)) = NAMES.iter().find(|(n, _)| name.eq_ignore_ascii_case(n)) {
            return base + step;
        }
    }
    match number {
        Some(10) => 1,
        Some(20) => 5,
        Some(30) => 9,
        Some(40) => 13,
        Some(50) => 17,
        Some(60) => 21,
        Some(n @ 1..=24) => n as i32,
        _ => 0,
    }
}

/// Hex → exactly `out.len()` bytes; `false` when malformed.
/// A trace id into its 16 bytes: 32 hex characters, or a 64-bit B3 id of
/// 16 hex characters left-padded with zeros (what B3 → W3C bridges do).
pub fn trace_id_into(s: &str, out: &mut [u8; 16]) -> bool {
    match s.trim().len() {
        16 => {
            out[..8].fill(0);
            hex_into(s, &mut out[8..])
        }
        _ => hex_into(s, out),
    }
}

/// Hex text into exactly `out.len()` bytes; false for any other length or a non-hex digit.
pub fn hex_into(s: &str, out: &mut [u8]) -> bool {
    let b = s.trim().as_bytes();
    if b.len() != out.len() * 2 {
        return false;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else { return false };
        *o = hi << 4 | lo;
    }
    true
}
