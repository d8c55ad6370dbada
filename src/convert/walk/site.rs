//! Where a record's site (its `installationContext` string) lies in the
//! bytes the walk wrote.

use super::super::proto::*;

/// Within `KeyValue` content written here (`start..end` of `buf`): the
/// range of its value's string, when the value is a string.
pub(super) fn site_string(buf: &[u8], (start, end): (usize, usize)) -> Option<(usize, usize)> {
    let (_, key_end) = field_at(buf, start, end, KV_KEY)?;
    let (value, value_end) = field_at(buf, key_end, end, KV_VALUE)?;
    field_at(buf, value, value_end, ANY_STRING)
}

/// The content range of the length-delimited field `tag` starting at `at`.
fn field_at(buf: &[u8], at: usize, end: usize, tag: u8) -> Option<(usize, usize)> {
    if *buf.get(at)? != tag {
        return None;
    }
    let mut len = 0usize;
    let mut i = at + 1;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(i)?;
        i += 1;
        len |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return (i + len <= end).then_some((i, i + len));
        }
    }
    None
}
