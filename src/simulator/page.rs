//! One page of a window: which records a query selects (window edges at
//! millisecond precision, visibility by the API's clock, filters), in which
//! order (by time, or shuffled), with which ids, and the cursor to the next.
//!
//! A window is a range of slots, two per record index (the record and its
//! identical copy, when it has one). A cursor holds a position in that
//! range plus the API time it was issued, bound to its query by a hash.
//! Shuffling maps positions to slots through a keyed permutation (a Feistel
//! network with cycle walking), so any order costs no memory.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::behaviour::{Behaviour, IdShape};
use super::{Faults, SimState};
use crate::config::{API_RETENTION, MAX_SITES_PER_QUERY, MAX_WINDOW};
use crate::fingerprint::hash_bytes;
use crate::forge::model::LogRecord;
use crate::simulator::data::Generator;
use crate::timefmt::parse_millis;

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
const NS_PER_MS: i64 = 1_000_000;

pub(super) struct Params {
    pub environment_id: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub levels: Vec<String>,
    pub message: Option<String>,
    pub sites: Vec<String>,
    pub cursor: Option<String>,
}

pub(super) fn parse_params(query: &str) -> Result<Params, String> {
    let mut p = Params {
        environment_id: None,
        start: None,
        end: None,
        levels: Vec::new(),
        message: None,
        sites: Vec::new(),
        cursor: None,
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "environmentId" => p.environment_id = Some(v),
            "startDate" => p.start = Some(v),
            "endDate" => p.end = Some(v),
            "level" => p.levels.push(v),
            "message" => p.message = Some(v),
            "installationContext" => p.sites.push(v),
            "cursor" => p.cursor = Some(v),
            other => return Err(format!("unknown query parameter `{other}`")),
        }
    }
    Ok(p)
}

pub(super) struct BuiltPage {
    pub body: String,
    pub broken: bool,
}

/// Whether a record at `ts_ns` is in `[start_ms, end_ms)`, with either edge
/// moved as the knobs say. Like an API that compares the record's
/// millisecond with the dates: an exclusive start leaves out the whole of
/// startDate's millisecond, an inclusive end takes in the whole of endDate's.
pub(super) fn in_window(ts_ns: i64, start_ms: i64, end_ms: i64, b: &Behaviour) -> bool {
    let ms = ts_ns.div_euclid(NS_PER_MS);
    let after_start = if b.start_exclusive { ms > start_ms } else { ms >= start_ms };
    let before_end = if b.end_inclusive { ms <= end_ms } else { ms < end_ms };
    after_start && before_end
}

/// Builds the page `p` asks for, at the API's time `api_now_ms`.
pub(super) fn build_page(
    st: &SimState,
    app_id: &str,
    env: &str,
    p: &Params,
    faults: &Faults,
    b: &Behaviour,
    api_now_ms: i64,
) -> Result<BuiltPage, String> {
    let start_text = p.start.as_deref().ok_or("startDate is required")?;
    let end_text = p.end.as_deref().ok_or("endDate is required")?;
    let start =
        parse_millis(start_text).ok_or_else(|| format!("startDate `{start_text}` is not yyyy-MM-ddTHH:mm:ss.SSSZ"))?;
    let end = parse_millis(end_text).ok_or_else(|| format!("endDate `{end_text}` is not yyyy-MM-ddTHH:mm:ss.SSSZ"))?;
    if end < start {
        return Err("endDate is before startDate".into());
    }
    if end - start > MAX_WINDOW.as_millis() as i64 {
        return Err("the window between startDate and endDate is over 1 hour".into());
    }
    if start < api_now_ms - API_RETENTION.as_millis() as i64 {
        return Err("startDate is older than 14 days".into());
    }
    if b.refuse_future_end && end > api_now_ms {
        return Err("endDate is in the future".into());
    }
    for level in &p.levels {
        if !LEVELS.contains(&level.as_str()) {
            return Err(format!("level `{level}` is not one of {}", LEVELS.join(", ")));
        }
    }
    if p.sites.len() > MAX_SITES_PER_QUERY {
        return Err(format!("at most {MAX_SITES_PER_QUERY} installationContext values"));
    }
    let qhash = query_hash(app_id, env, start, end, p);
    let mut from = 0;
    if let Some(c) = &p.cursor {
        let (pos, issued_ms) = decode_cursor(c, qhash).ok_or("invalid cursor")?;
        if b.cursor_ttl_ms > 0 && api_now_ms.saturating_sub(issued_ms) > b.cursor_ttl_ms as i64 {
            return Err(format!("cursor expired (issued {} ms ago); start the query again", api_now_ms - issued_ms));
        }
        from = pos;
    }
    let stream =
        st.streams.iter().find(|s| s.app_id == app_id && s.environment_id == env).ok_or("unknown environment")?;
    let g = &st.generator;
    // Record indexes that may fall in the window, as slots (two per index).
    let lo = g.first_index_at(start * NS_PER_MS);
    let last_ns = end * NS_PER_MS + if b.end_inclusive { NS_PER_MS - 1 } else { 0 };
    let hi = if last_ns < g.t0_ns { 0 } else { ((last_ns - g.t0_ns) / g.step_ns.max(1)) as u64 + 1 };
    let slots = hi.saturating_sub(lo).saturating_mul(2);
    let key = st.config.seed ^ qhash;
    let now_ns = api_now_ms.saturating_mul(NS_PER_MS);
    let mut records = Vec::new();
    let mut pos = from;
    let mut next = None;
    while pos < slots {
        let slot = if b.shuffle { permute(pos, slots, key) } else { pos };
        pos += 1;
        let (i, copy) = (lo + slot / 2, slot % 2 == 1);
        if copy && b.copies(i) < 2 {
            continue;
        }
        let m = g.meta(stream, i);
        let visible_ns = if copy { m.visible_ns + b.twin_delay_ns(i) } else { m.visible_ns };
        if !in_window(m.ts_ns, start, end, b) || visible_ns > now_ns {
            continue;
        }
        if !p.levels.is_empty() && !p.levels.iter().any(|l| l == Generator::level_name(m.level)) {
            continue;
        }
        if !p.sites.is_empty() && !g.site_of(&m).is_some_and(|s| p.sites.iter().any(|x| x == s)) {
            continue;
        }
        if m.ts_ns >= faults.silent_after_ms.saturating_mul(NS_PER_MS) && faults.silent_sites.contains(&m.site) {
            continue;
        }
        let mut record = g.record(stream, &m);
        if let Some(extra) = b.privacy_sample(i)
            && let Some(text) = record.body.as_mut().and_then(|b| b.string_value.as_mut())
        {
            text.push_str(&extra);
        }
        if let Some(text) = &p.message {
            let body = record.body.as_ref().and_then(|b| b.string_value.as_deref()).unwrap_or("");
            if !body.contains(text.as_str()) {
                continue;
            }
        }
        shape_ids(&mut record, b.id_shape(i), m.seq ^ st.config.seed);
        records.push(record);
        if records.len() >= st.config.page_size.max(1) {
            if pos < slots {
                next = Some(encode_cursor(qhash, pos, api_now_ms));
            }
            break;
        }
    }
    if faults.cursor_loop {
        next = Some(p.cursor.clone().unwrap_or_else(|| encode_cursor(qhash, pos, api_now_ms)));
    }
    // The API's end of pages may be an absent, null or empty cursor: show all three.
    let cursor = match next {
        Some(c) => format!(",\"cursor\":{}", serde_json::Value::String(c)),
        None => ["", ",\"cursor\":null", ",\"cursor\":\"\""][(qhash % 3) as usize].to_string(),
    };
    let records = serde_json::to_string(&records).map_err(|e| e.to_string())?;
    let body = format!("{{\"appLogs\":{records}{cursor}}}");
    let broken = faults.broken_at_ms.is_some_and(|x| start <= x && x < end) && p.cursor.is_none();
    Ok(BuiltPage { body, broken })
}

fn query_hash(app_id: &str, env: &str, start: i64, end: i64, p: &Params) -> u64 {
    let mut levels = p.levels.clone();
    levels.sort();
    let mut sites = p.sites.clone();
    sites.sort();
    hash_bytes(
        format!(
            "{app_id}|{env}|{start}|{end}|{}|{}|{}",
            levels.join(","),
            p.message.as_deref().unwrap_or(""),
            sites.join(",")
        )
        .as_bytes(),
    )
}

/// Trace and span ids of the shape the knobs ask for; the rest of the record stays as it is.
fn shape_ids(record: &mut LogRecord, shape: IdShape, salt: u64) {
    let hex = |n: usize| {
        let mut s = String::with_capacity(n + 16);
        let mut k = 0u64;
        while s.len() < n {
            s.push_str(&format!("{:016x}", mix(salt.wrapping_add(k))));
            k += 1;
        }
        s.truncate(n);
        s
    };
    let trace_len = match shape {
        IdShape::Normal => return,
        IdShape::Short => 16,
        IdShape::Odd20 => 20,
        IdShape::Odd31 => 31,
        IdShape::OddSpan => 32,
    };
    record.trace_id = Some(hex(trace_len));
    record.span_id = Some(hex(if shape == IdShape::OddSpan { 10 } else { 16 }));
}

/// splitmix64's finaliser: a cheap bijective mixer.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A bijection of `[0, n)` keyed by `key`: a balanced Feistel network over
/// the smallest even number of bits covering `n`, walked until it lands
/// inside the range (at most a few steps on average).
pub(super) fn permute(x: u64, n: u64, key: u64) -> u64 {
    if n <= 1 {
        return x;
    }
    let bits = (64 - (n - 1).leading_zeros()).max(2).div_ceil(2) * 2;
    let half = bits / 2;
    let mask = (1u64 << half) - 1;
    let mut y = x;
    loop {
        let (mut l, mut r) = (y >> half, y & mask);
        for round in 0..4u64 {
            let f = mix(r ^ key.rotate_left(round as u32 * 16) ^ round) & mask;
            (l, r) = (r, l ^ f);
        }
        y = (l << half) | r;
        if y < n {
            return y;
        }
    }
}

fn encode_cursor(qhash: u64, pos: u64, issued_ms: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{qhash:016x}:{pos}:{issued_ms}"))
}

/// (position, API time of issue) of a cursor made for the query `qhash`.
fn decode_cursor(cursor: &str, qhash: u64) -> Option<(u64, i64)> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split(':');
    let (h, pos, issued) = (parts.next()?, parts.next()?, parts.next()?);
    (u64::from_str_radix(h, 16).ok()? == qhash && parts.next().is_none()).then_some(())?;
    Some((pos.parse().ok()?, issued.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_is_a_bijection() {
        for n in [1u64, 2, 3, 7, 64, 100, 1001, 4096] {
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = permute(x, n, 0xfeed ^ n);
                assert!(y < n && !seen[y as usize], "n={n} x={x} y={y}");
                seen[y as usize] = true;
            }
        }
        let moved = (0..1000).filter(|x| permute(*x, 1000, 5) != *x).count();
        assert!(moved > 900, "{moved}");
    }

    #[test]
    fn edges_at_millisecond_precision() {
        let b = |s, e| Behaviour { start_exclusive: s, end_inclusive: e, ..Behaviour::default() };
        let (start, end) = (1_000, 2_000);
        let ns = |ms: i64, extra: i64| ms * NS_PER_MS + extra;
        // On the start edge, and inside startDate's millisecond.
        for extra in [0, 500_000] {
            assert!(in_window(ns(start, extra), start, end, &b(false, false)));
            assert!(!in_window(ns(start, extra), start, end, &b(true, false)));
        }
        // On the end edge, and inside endDate's millisecond.
        for extra in [0, 999_999] {
            assert!(!in_window(ns(end, extra), start, end, &b(false, false)));
            assert!(in_window(ns(end, extra), start, end, &b(false, true)));
        }
        assert!(in_window(ns(start + 1, 0), start, end, &b(true, true)));
        assert!(!in_window(ns(end + 1, 0), start, end, &b(true, true)));
    }

    #[test]
    fn cursors_carry_position_and_issue_time() {
        let c = encode_cursor(7, 42, 1_700_000_000_123);
        assert_eq!(decode_cursor(&c, 7), Some((42, 1_700_000_000_123)));
        assert_eq!(decode_cursor(&c, 8), None);
        assert_eq!(decode_cursor("garbage!", 7), None);
    }
}
