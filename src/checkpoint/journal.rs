//! The journal: an append-only file of delivered counts, one per source.
//!
//! Layout: an 8-byte header (`FOSJRNL` and a format byte), then entries of
//! [`ENTRY_LEN`] bytes, little-endian: payload length (u32, always 20),
//! minute of record time (i64), fingerprint (u64), count after delivery
//! (u32), CRC-32 of the 24 bytes before it. An entry states a count, not an
//! increment, and replay takes the maximum, so an entry written twice (a
//! retried append, a page delivered again) changes nothing.
//!
//! A page appends its own entries and nothing else: the bytes written per
//! page follow the page, never the horizon. Dead entries (stretches the
//! second pass has read, counts raised since) are dropped by rewriting the
//! file with the live counts once they outweigh them.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::delivered::{Delivered, minute_of};
use super::files;

/// Bytes per entry on disk.
pub const ENTRY_LEN: usize = 28;
/// The payload's length, the only one this format knows.
const PAYLOAD_LEN: u32 = 20;
const MAGIC: &[u8; 7] = b"FOSJRNL";
const FORMAT: u8 = 1;
pub(super) const HEADER_LEN: u64 = 8;
/// Dead bytes below which a journal is never rewritten: a small journal is
/// cheap to replay, and a rewrite costs two fsyncs.
const MIN_DEAD_BYTES: u64 = 1 << 20;

fn header() -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..7].copy_from_slice(MAGIC);
    h[7] = FORMAT;
    h
}

fn encode_entry(minute: i64, fp: u64, count: u32, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&PAYLOAD_LEN.to_le_bytes());
    out.extend_from_slice(&minute.to_le_bytes());
    out.extend_from_slice(&fp.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Decodes one entry; `None` when its length or checksum is wrong.
fn decode_entry(e: &[u8; ENTRY_LEN]) -> Option<(i64, u64, u32)> {
    let word4 = |i: usize| [e[i], e[i + 1], e[i + 2], e[i + 3]];
    let word8 = |i: usize| [e[i], e[i + 1], e[i + 2], e[i + 3], e[i + 4], e[i + 5], e[i + 6], e[i + 7]];
    if u32::from_le_bytes(word4(0)) != PAYLOAD_LEN || crc32fast::hash(&e[..24]) != u32::from_le_bytes(word4(24)) {
        return None;
    }
    Some((i64::from_le_bytes(word8(4)), u64::from_le_bytes(word8(12)), u32::from_le_bytes(word4(20))))
}

/// What was wrong with a journal; everything before it was replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Damage {
    /// The last entry cut short, or only unwritten (zero) bytes after the
    /// good ones: a crash in the middle of an append.
    TornTail { bytes: u64 },
    /// A bad entry with written data after it: replay stopped there.
    Corrupt { offset: u64, bytes: u64 },
    /// Not a journal (wrong magic).
    NotAJournal,
}

#[derive(Debug)]
pub(super) struct Replay {
    pub delivered: Delivered,
    pub entries: u64,
    /// Bytes of header and verified entries: where the next entry belongs.
    pub valid_len: u64,
    pub damage: Option<Damage>,
}

#[derive(Debug)]
pub(super) enum ReplayError {
    Io(io::Error),
    /// A format this version does not know.
    Newer(u8),
}

/// Reads as many bytes as there are, up to `buf.len()`.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Replays a journal: every verified entry raises its count, up to the
/// first bad entry. Never panics on any input.
pub(super) fn replay(mut r: impl Read) -> Result<Replay, ReplayError> {
    let mut out = Replay { delivered: Delivered::default(), entries: 0, valid_len: 0, damage: None };
    let mut head = [0u8; 8];
    let n = read_full(&mut r, &mut head).map_err(ReplayError::Io)?;
    if n == 0 {
        return Ok(out);
    }
    if n < head.len() || head[7] == 0 {
        out.damage = Some(if header()[..n] == head[..n] || head.iter().all(|&b| b == 0) {
            // Created, then the crash came before the header was whole.
            Damage::TornTail { bytes: n as u64 + drain(&mut r).map_err(ReplayError::Io)?.0 }
        } else {
            Damage::NotAJournal
        });
        return Ok(out);
    }
    if &head[..7] != MAGIC {
        out.damage = Some(Damage::NotAJournal);
        return Ok(out);
    }
    if head[7] > FORMAT {
        return Err(ReplayError::Newer(head[7]));
    }
    out.valid_len = HEADER_LEN;
    let mut e = [0u8; ENTRY_LEN];
    loop {
        let n = read_full(&mut r, &mut e).map_err(ReplayError::Io)?;
        if n == 0 {
            return Ok(out);
        }
        let entry = if n == ENTRY_LEN { decode_entry(&e) } else { None };
        let Some((minute, fp, count)) = entry else {
            let (rest, rest_zero) = drain(&mut r).map_err(ReplayError::Io)?;
            let bytes = n as u64 + rest;
            // Nothing written after the bad entry (a whole entry is never
            // zero: its length field is not): the append never finished.
            out.damage = Some(if rest_zero {
                Damage::TornTail { bytes }
            } else {
                Damage::Corrupt { offset: out.valid_len, bytes }
            });
            return Ok(out);
        };
        out.delivered.raise_minute(minute, fp, count);
        out.entries += 1;
        out.valid_len += ENTRY_LEN as u64;
    }
}

/// Reads to the end: how many bytes, and whether all were zero.
fn drain(r: &mut impl Read) -> io::Result<(u64, bool)> {
    let (mut total, mut zero) = (0u64, true);
    let mut buf = [0u8; 8192];
    loop {
        let n = read_full(r, &mut buf)?;
        if n == 0 {
            return Ok((total, zero));
        }
        zero &= buf[..n].iter().all(|&b| b == 0);
        total += n as u64;
    }
}

/// A journal kept open between appends, with its length as this process
/// wrote it: an append is one `write`, not an open, a `stat`, a `write`
/// and a close. Whoever replaces or removes the file drops it.
#[derive(Debug)]
pub(super) struct Open {
    file: File,
    len: u64,
}

impl Open {
    /// Makes what was appended through it durable (fdatasync).
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// [`append_open`] with a file opened for this append only.
#[cfg(test)]
pub(super) fn append(dir: &Path, path: &Path, entries: &[(i64, u64, u32)]) -> io::Result<u64> {
    append_open(dir, path, &mut None, entries)
}

/// Appends `entries` (record time in ns, fingerprint, count after delivery)
/// with one write, not synced ([`sync`] makes it durable); returns the
/// bytes written. Once this returns, the entries survive a crash of the
/// process (they are the kernel's); only a power loss can take them
/// before the next [`sync`]. A failed write is cut off again, so the next
/// append does not land behind half an entry.
///
/// `open` is the journal kept open from the last append (opened here when
/// `None`); it is left `None` when the file's state is not known after a
/// failure, so the next append opens it afresh and checks its length.
pub(super) fn append_open(
    dir: &Path,
    path: &Path,
    open: &mut Option<Open>,
    entries: &[(i64, u64, u32)],
) -> io::Result<u64> {
    if entries.is_empty() {
        return Ok(0);
    }
    let Open { file, len } = match open.take() {
        Some(o) => o,
        None => {
            let file = files::open_in(dir, path, files::private().append(true).create(true))?;
            let len = file.metadata()?.len();
            Open { file, len }
        }
    };
    // A tail that is not whole entries is what a failed append left when it
    // could not be cut off; entries must stay aligned behind it.
    let aligned = if len < HEADER_LEN { 0 } else { len - (len - HEADER_LEN) % ENTRY_LEN as u64 };
    if aligned != len {
        file.set_len(aligned)?;
    }
    let mut buf = Vec::with_capacity(HEADER_LEN as usize + entries.len() * ENTRY_LEN);
    if aligned == 0 {
        buf.extend_from_slice(&header());
    }
    for &(ts_ns, fp, count) in entries {
        encode_entry(minute_of(ts_ns), fp, count, &mut buf);
    }
    if let Err(e) = (&file).write_all(&buf) {
        if file.set_len(aligned).is_ok() {
            *open = Some(Open { file, len: aligned });
        }
        return Err(e);
    }
    if aligned == 0 {
        // A new journal: its name must be durable before anything relies on it.
        file.sync_data()?;
        files::sync_dir(dir);
    }
    *open = Some(Open { file, len: aligned + buf.len() as u64 });
    Ok(buf.len() as u64)
}

/// Makes what was appended durable (fdatasync), through a file opened for
/// it. A missing journal has nothing to sync.
pub(super) fn sync(path: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Replaces the journal with exactly `live`, atomically.
pub(super) fn rewrite(dir: &Path, path: &Path, live: &Delivered) -> io::Result<()> {
    let tmp = path.with_extension("journal.tmp");
    files::replace(dir, path, &tmp, |w: &mut BufWriter<&File>| {
        w.write_all(&header())?;
        let mut buf = Vec::with_capacity(ENTRY_LEN);
        for (minute, fp, count) in live.minute_entries() {
            buf.clear();
            encode_entry(minute, fp, count, &mut buf);
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// Whether a journal of `file_len` bytes holding `live` entries is worth
/// rewriting: when its dead bytes reach its live bytes (so a rewrite never
/// writes more than was appended since the last one: amortised, each
/// entry is written at most twice) and at least [`MIN_DEAD_BYTES`].
pub(super) fn should_compact(file_len: u64, live: usize) -> bool {
    let live_bytes = HEADER_LEN.saturating_add((live as u64).saturating_mul(ENTRY_LEN as u64));
    let dead = file_len.saturating_sub(live_bytes);
    dead >= live_bytes.max(MIN_DEAD_BYTES)
}

/// Cuts a journal back to its verified part.
pub(super) fn truncate(path: &Path, valid_len: u64) -> io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(valid_len)?;
    f.sync_all()
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
