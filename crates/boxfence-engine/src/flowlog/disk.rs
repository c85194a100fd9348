//! The flow log on disk, so that a restart keeps each box's last events
//! and whether its allowed connections are logged. Per box, under the
//! log's directory (`<state_dir>/flowlog`):
//!
//! - `<id>.jsonl`: its events as JSON lines, appended as they are kept;
//! - `<id>.old.jsonl`: the segment before, which the current one replaces
//!   once it holds [`HISTORY_PER_BOX`] lines (so at most twice that many
//!   events per box are on disk, about 600 KB);
//! - `<id>.allowed`: present while the box's allowed connections are
//!   logged.
//!
//! Appends are plain writes (no fsync): they survive the daemon's crash,
//! not the host's. A torn last line is skipped when read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use boxfence_policy::FlowEvent;

use super::HISTORY_PER_BOX;

const CURRENT: &str = ".jsonl";
const OLD: &str = ".old.jsonl";
const ALLOWED: &str = ".allowed";

/// The log's directory.
#[derive(Debug)]
pub(super) struct Disk {
    dir: PathBuf,
}

/// The segment a box appends to.
#[derive(Debug, Default)]
pub(super) struct Segment {
    file: Option<File>,
    /// Lines in it.
    lines: usize,
}

/// What a restart finds.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// Per box, its last events (oldest first) and its segment.
    pub(super) boxes: HashMap<String, (VecDeque<FlowEvent>, Segment)>,
    /// Boxes whose allowed connections are logged.
    pub(super) allowed: HashSet<String>,
}

/// Only ids that are plain file names get files (every id the daemon
/// makes is); others are kept in memory alone.
fn plain(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Disk {
    /// The log in `dir`, made (mode 0700: events name what boxes reach)
    /// if missing, and what it holds.
    pub(super) fn open(dir: &Path) -> std::io::Result<(Self, Found)> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let disk = Self {
            dir: dir.to_owned(),
        };
        let mut found = Found::default();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(ALLOWED).filter(|id| plain(id)) {
                found.allowed.insert(id.to_owned());
            } else if let Some(id) = name
                .strip_suffix(CURRENT)
                .filter(|id| plain(id) && !name.ends_with(OLD))
            {
                found.boxes.insert(id.to_owned(), disk.load(id)?);
            }
        }
        Ok((disk, found))
    }

    fn path(&self, id: &str, suffix: &str) -> PathBuf {
        self.dir.join(format!("{id}{suffix}"))
    }

    /// A box's last events, from its old segment and its current one.
    fn load(&self, id: &str) -> std::io::Result<(VecDeque<FlowEvent>, Segment)> {
        let mut events = VecDeque::new();
        let mut lines = 0;
        for suffix in [OLD, CURRENT] {
            let file = match File::open(self.path(id, suffix)) {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            let mut counted = 0;
            for line in BufReader::new(file).lines() {
                counted += 1;
                if let Ok(event) = serde_json::from_str::<FlowEvent>(&line?) {
                    if events.len() == HISTORY_PER_BOX {
                        events.pop_front();
                    }
                    events.push_back(event);
                }
            }
            if suffix == CURRENT {
                lines = counted;
            }
        }
        Ok((events, Segment { file: None, lines }))
    }

    /// Appends `event` to the box's current segment, rotating it first
    /// when full.
    pub(super) fn append(&self, segment: &mut Segment, event: &FlowEvent) -> std::io::Result<()> {
        let id = &event.machine_id;
        if !plain(id) {
            return Ok(());
        }
        if segment.lines >= HISTORY_PER_BOX {
            segment.file = None;
            std::fs::rename(self.path(id, CURRENT), self.path(id, OLD))?;
            segment.lines = 0;
        }
        let file = match &mut segment.file {
            Some(file) => file,
            None => segment.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path(id, CURRENT))?,
            ),
        };
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write per line: a crash tears at most the last one.
        file.write_all(&line)?;
        segment.lines += 1;
        Ok(())
    }

    /// Marks (or unmarks) the box's allowed connections as logged.
    pub(super) fn set_allowed(&self, id: &str, on: bool) -> std::io::Result<()> {
        if !plain(id) {
            return Ok(());
        }
        let path = self.path(id, ALLOWED);
        if on {
            File::create(path).map(drop)
        } else {
            remove(&path)
        }
    }

    /// Removes a deleted box's files; every one is tried.
    pub(super) fn forget(&self, id: &str) -> std::io::Result<()> {
        if !plain(id) {
            return Ok(());
        }
        let mut result = Ok(());
        for suffix in [CURRENT, OLD, ALLOWED] {
            if let Err(error) = remove(&self.path(id, suffix)) {
                result = Err(error);
            }
        }
        result
    }
}

/// Removes `path`; one already gone is fine.
fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::FlowLog;
    use boxfence_policy::FlowEventKind;

    fn event(machine: &str, n: u64) -> FlowEvent {
        FlowEvent::new(
            n,
            machine.into(),
            FlowEventKind::DnsQuery,
            "deny",
            format!("event {n}"),
        )
    }

    fn lines(path: &Path) -> usize {
        std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
    }

    #[test]
    fn segments_rotate_at_the_bound_and_a_reopening_keeps_the_last_events_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (disk, found) = Disk::open(dir.path()).expect("opens");
        assert!(found.boxes.is_empty());
        let mut segment = Segment::default();
        let total = 2 * HISTORY_PER_BOX + 250;
        for n in 0..total {
            disk.append(&mut segment, &event("m1", n as u64))
                .expect("appends");
        }
        let (current, old) = (dir.path().join("m1.jsonl"), dir.path().join("m1.old.jsonl"));
        assert_eq!(lines(&old), HISTORY_PER_BOX, "the full segment before");
        assert_eq!(lines(&current), 250, "the current one");
        let (_, found) = Disk::open(dir.path()).expect("reopens");
        let (events, segment) = &found.boxes["m1"];
        assert_eq!(events.len(), HISTORY_PER_BOX);
        let times: Vec<u64> = events.iter().map(|e| e.time_ms).collect();
        let last: Vec<u64> = ((total - HISTORY_PER_BOX) as u64..total as u64).collect();
        assert_eq!(times, last, "the last events, oldest first");
        assert_eq!(segment.lines, 250, "appends go on where they stopped");
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (disk, _) = Disk::open(dir.path()).expect("opens");
        let mut segment = Segment::default();
        disk.append(&mut segment, &event("m1", 1)).expect("appends");
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("m1.jsonl"))
            .expect("open");
        file.write_all(b"{\"time_ms\": 2, \"machi")
            .expect("torn write");
        let (_, found) = Disk::open(dir.path()).expect("reopens");
        assert_eq!(found.boxes["m1"].0.len(), 1);
    }

    #[test]
    fn a_reopened_log_has_the_boxes_events_and_log_allowed_until_the_box_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = FlowLog::persistent(dir.path());
        for n in 1..=3 {
            log.record(event("m1", n), None);
        }
        log.record(event("m2", 9), None);
        log.set_allowed("m1", true);
        log.set_allowed("m2", true);
        log.set_allowed("m2", false);
        drop(log);

        let log = FlowLog::persistent(dir.path());
        let times = |log: &FlowLog, id| {
            (log.history(id, None, None, usize::MAX).iter())
                .map(|e| e.time_ms)
                .collect::<Vec<_>>()
        };
        assert_eq!(times(&log, "m1"), [1, 2, 3]);
        assert_eq!(times(&log, "m2"), [9]);
        assert_eq!(log.allowed_at_open(), ["m1".to_owned()].into());
        log.record(event("m1", 4), None);
        log.forget("m2");
        drop(log);

        let log = FlowLog::persistent(dir.path());
        assert_eq!(times(&log, "m1"), [1, 2, 3, 4]);
        assert!(times(&log, "m2").is_empty());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["m1.allowed", "m1.jsonl"]);
    }
}
