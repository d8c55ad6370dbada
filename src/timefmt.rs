//! The API's date format, `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`, in UTC, to and
//! from milliseconds since the Unix epoch.

/// Formats milliseconds since the epoch as `2024-02-13T10:50:44.939Z`.
pub fn format_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Parses exactly `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`; anything else is `None`.
pub(crate) fn parse_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 24 {
        return None;
    }
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    for (c, want) in b.iter().zip(shape) {
        let ok = if *want == b'd' { c.is_ascii_digit() } else { c == want };
        if !ok {
            return None;
        }
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(days * 86_400_000 + h * 3_600_000 + mi * 60_000 + sec * 1000 + ms)
}

/// Parses an ISO 8601 / RFC 3339 time: `yyyy-MM-ddTHH:mm:ss`, optional
/// fraction (milliseconds kept), then `Z` or `±HH:MM`. `None` otherwise.
pub fn parse_iso8601_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 {
        return None;
    }
    let shape = b"dddd-dd-ddTdd:dd:dd";
    for (c, want) in b.iter().zip(shape) {
        let ok = if *want == b'd' { c.is_ascii_digit() } else { c.eq_ignore_ascii_case(want) };
        if !ok {
            return None;
        }
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let digits = b.get(i..)?.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (k, c) in b.get(i..i + digits.min(3))?.iter().enumerate() {
            ms += i64::from(c - b'0') * [100, 10, 1][k];
        }
        i += digits;
    }
    let offset_min = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) => {
            let v = i64::from((h1 - b'0') * 10 + (h2 - b'0')) * 60 + i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(days * 86_400_000 + h * 3_600_000 + mi * 60_000 + sec * 1000 + ms - offset_min * 60_000)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// Milliseconds since the epoch of a `SystemTime` (negative before 1970).
pub fn system_millis(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_forms() {
        let base = parse_millis("2024-02-13T10:50:44.939Z");
        assert_eq!(parse_iso8601_millis("2024-02-13T10:50:44.939Z"), base);
        assert_eq!(parse_iso8601_millis("2024-02-13T10:50:44.939123Z"), base);
        assert_eq!(parse_iso8601_millis("2024-02-13T11:50:44.939+01:00"), base);
        assert_eq!(parse_iso8601_millis("2024-02-13T10:50:44Z"), base.map(|b| b - 939));
        for bad in ["2024-02-13 10:50:44Z", "2024-02-13T10:50:44", "2024-02-30T10:50:44Z", "2024-02-13T10:50:44.Z", "x"]
        {
            assert_eq!(parse_iso8601_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_the_documented_example() {
        let ms = parse_millis("2024-02-13T10:50:44.939Z");
        assert_eq!(ms, Some(1_707_821_444_939));
        assert_eq!(format_millis(1_707_821_444_939), "2024-02-13T10:50:44.939Z");
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_millis("2024-02-29T23:59:59.999Z"), Some(1_709_251_199_999));
        for t in [0i64, 951_782_400_000, 1_709_251_199_999, 4_102_444_800_000] {
            assert_eq!(parse_millis(&format_millis(t)), Some(t));
        }
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "2024-02-13T10:50:44Z",
            "2024-02-13T10:50:44.939",
            "2024-02-13 10:50:44.939Z",
            "2024-02-13T10:50:44.9390Z",
            "2023-02-29T10:50:44.939Z",
            "2024-13-01T10:50:44.939Z",
            "2024-02-13T24:00:00.000Z",
            "2024-02-13T10:50:44.939+00:00",
            "",
        ] {
            assert_eq!(parse_millis(bad), None, "{bad}");
        }
    }
}
