//! What a source has stored, read without changing anything (no repair,
//! nothing moved aside): for the `reset` command, which names what it
//! throws away before it does.

use std::io;
use std::path::PathBuf;

use super::journal::HEADER_LEN;
use super::marks::{self, Checkpoint};
use super::{ENTRY_LEN, Store};

/// The small file as found.
#[derive(Debug)]
pub enum Marks {
    /// Read (a version 1 file is shown as converted).
    Read(Box<Checkpoint>),
    /// Present but not usable by this build: why.
    Unusable(String),
}

/// A source's files in the state directory.
#[derive(Debug)]
pub struct Stored {
    pub small: Option<(PathBuf, Marks)>,
    /// The journal and its length in bytes.
    pub journal: Option<(PathBuf, u64)>,
}

impl Stored {
    pub fn is_empty(&self) -> bool {
        self.small.is_none() && self.journal.is_none()
    }

    /// Entries in the journal (every append, live or dead; a torn tail not counted).
    pub fn journal_entries(&self) -> u64 {
        self.journal.as_ref().map_or(0, |(_, len)| len.saturating_sub(HEADER_LEN) / ENTRY_LEN as u64)
    }
}

fn found<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Reads what `source` has stored; changes nothing.
    pub fn inspect(&self, source: &str) -> io::Result<Stored> {
        let path = self.path(source);
        let small = found(std::fs::read(&path))?.map(|bytes| {
            let m = match marks::decode(&bytes) {
                marks::Decoded::Current(cp) | marks::Decoded::Migrated { cp, .. } => Marks::Read(Box::new(cp)),
                marks::Decoded::Newer(why) => Marks::Unusable(format!("written by a newer version: {why}")),
                marks::Decoded::Corrupt(why) => Marks::Unusable(why),
            };
            (path, m)
        });
        let jpath = self.journal_path(source);
        let journal = found(std::fs::metadata(&jpath))?.map(|m| (jpath, m.len()));
        Ok(Stored { small, journal })
    }
}
