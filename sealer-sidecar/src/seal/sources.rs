//! Replay and loss detection: turns missing ranges into gaps and drops replays.
//!
//! Two kinds of producer:
//!
//! - A gateway worker incarnation numbers its events 1, 2, 3, ... The tracker remembers the
//!   highest number sealed per source. A number at or below it is a replay (a retry whose
//!   acknowledgement was lost) and is not sealed twice; a number above the next expected one
//!   means events were lost on the way, which is sealed as a `gap`.
//! - The Kubernetes API server does not number its audit events; it names them
//!   (`auditID` + `stage`) and redelivers a batch whose answer it did not get. The tracker
//!   remembers the most recent [`MAX_RECENT_KEYS`] names sealed, so a redelivery is sealed
//!   once, also across restarts (recovery reads them back from the log).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How many event names ([`SourceTracker::observe_key`]) are remembered. The API server
/// redelivers within minutes; this covers far more than that at any realistic rate of
/// changes to the selected resources, in about 100 MiB at most.
pub const MAX_RECENT_KEYS: usize = 1_000_000;

/// How many of the most recent event names a snapshot keeps: a redelivery comes within the
/// API server's retry backoff, seconds to minutes after the first delivery.
pub const SNAPSHOT_KEYS: usize = 100_000;

/// What the tracker knows at one log size, saved beside the WAL when a segment closes so a
/// restart resumes from it instead of reading every entry of the log.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The log size the snapshot is of: every entry before it is accounted for.
    pub size: u64,
    pub last: Vec<(String, u64)>,
    pub ended: Vec<String>,
    /// The most recent event names, oldest first.
    pub keys: Vec<String>,
}

/// Where the snapshot of log size `size` is kept.
pub fn snapshot_path(dir: &std::path::Path, size: u64) -> std::path::PathBuf {
    dir.join(format!("{size:020}.sources"))
}

/// The snapshots in `dir`: `(size, path)`, smallest size first.
pub fn snapshots(dir: &std::path::Path) -> std::io::Result<Vec<(u64, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let size = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".sources"))
            .and_then(|n| n.parse().ok());
        if let Some(size) = size {
            out.push((size, path));
        }
    }
    out.sort();
    Ok(out)
}

/// What to do with an incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The next event of the source.
    Next,
    /// Already sealed: skip.
    Duplicate,
    /// Events `first..=last` never arrived; seal a gap, then this event.
    Gap { first: u64, last: u64 },
}

#[derive(Debug, Clone, Default)]
pub struct SourceTracker {
    last: HashMap<String, u64>,
    /// Sources whose `source_end` is sealed (and that sent nothing after it).
    ended: HashSet<String>,
    keys: RecentKeys,
}

/// Names of the most recently sealed keyed events, oldest first.
#[derive(Debug, Clone, Default)]
struct RecentKeys {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentKeys {
    /// Remember `key`; false if it was already there.
    fn insert(&mut self, key: &str) -> bool {
        if self.set.contains(key) {
            return false;
        }
        self.set.insert(key.to_owned());
        self.order.push_back(key.to_owned());
        if self.order.len() > MAX_RECENT_KEYS
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        true
    }

    /// Forget the newest key, which must be `key`.
    fn forget_newest(&mut self, key: &str) {
        if self.order.back().map(String::as_str) == Some(key) {
            self.order.pop_back();
        }
        self.set.remove(key);
    }
}

enum UndoStep {
    /// A source's watermark was `previous` (`None`: the source was new).
    Seq(String, Option<u64>),
    /// A source's ended mark was `was` before.
    Ended(String, bool),
    /// A key was remembered.
    Key(String),
}

/// How to undo observations made for a group that failed to become durable.
#[derive(Default)]
pub struct Undo(Vec<UndoStep>);

impl Undo {
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl SourceTracker {
    /// Record that `seq` of `source` is being sealed.
    pub fn observe(&mut self, source: &str, seq: u64, undo: &mut Undo) -> Observation {
        let previous = self.last.get(source).copied();
        let expected = previous.map_or(1, |l| l + 1);
        if seq < expected {
            return Observation::Duplicate;
        }
        undo.0.push(UndoStep::Seq(source.to_owned(), previous));
        self.last.insert(source.to_owned(), seq);
        if self.ended.remove(source) {
            // A source that ended speaks again: it is open again.
            undo.0.push(UndoStep::Ended(source.to_owned(), true));
        }
        if seq == expected {
            Observation::Next
        } else {
            Observation::Gap {
                first: expected,
                last: seq - 1,
            }
        }
    }

    /// Record that the event named `key` is being sealed: [`Observation::Duplicate`] if it
    /// was sealed recently, [`Observation::Next`] otherwise.
    pub fn observe_key(&mut self, key: &str, undo: &mut Undo) -> Observation {
        if !self.keys.insert(key) {
            return Observation::Duplicate;
        }
        undo.0.push(UndoStep::Key(key.to_owned()));
        Observation::Next
    }

    /// Record that `source` ends at `last_seq` (its `source_end` is being sealed): raises its
    /// watermark to `last_seq`. `false` if it had ended already with nothing since (a
    /// repeated close), which is not sealed again.
    pub fn end(&mut self, source: &str, last_seq: u64, undo: &mut Undo) -> bool {
        if self.ended.contains(source) && self.last.get(source).copied() >= Some(last_seq) {
            return false;
        }
        let previous = self.last.get(source).copied();
        undo.0.push(UndoStep::Seq(source.to_owned(), previous));
        self.last
            .insert(source.to_owned(), previous.unwrap_or(0).max(last_seq));
        let was = !self.ended.insert(source.to_owned());
        undo.0.push(UndoStep::Ended(source.to_owned(), was));
        true
    }

    /// Raise the watermark of a source without sealing anything (used by recovery).
    pub fn restore(&mut self, source: &str, seq: u64) {
        let e = self.last.entry(source.to_owned()).or_default();
        *e = (*e).max(seq);
        self.ended.remove(source);
    }

    /// Mark a source ended without sealing anything (used by recovery).
    pub fn restore_end(&mut self, source: &str, last_seq: u64) {
        self.restore(source, last_seq);
        self.ended.insert(source.to_owned());
    }

    /// The sources seen that have not ended.
    pub fn open_sources(&self) -> impl Iterator<Item = (&str, u64)> {
        self.last
            .iter()
            .filter(|(id, _)| !self.ended.contains(*id))
            .map(|(id, seq)| (id.as_str(), *seq))
    }

    /// Remember a sealed event's name without sealing anything (used by recovery).
    pub fn restore_key(&mut self, key: &str) {
        self.keys.insert(key);
    }

    /// Revert the observations recorded in `undo`, newest first.
    pub fn rollback(&mut self, undo: &mut Undo) {
        for step in undo.0.drain(..).rev() {
            match step {
                UndoStep::Seq(source, Some(p)) => {
                    self.last.insert(source, p);
                }
                UndoStep::Seq(source, None) => {
                    self.last.remove(&source);
                }
                UndoStep::Ended(source, true) => {
                    self.ended.insert(source);
                }
                UndoStep::Ended(source, false) => {
                    self.ended.remove(&source);
                }
                UndoStep::Key(key) => self.keys.forget_newest(&key),
            }
        }
    }

    /// The highest number sealed for `source` (events and gaps), if any.
    pub fn watermark(&self, source: &str) -> Option<u64> {
        self.last.get(source).copied()
    }

    /// Number of numbered sources seen.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Number of event names remembered.
    pub fn recent_keys(&self) -> usize {
        self.keys.order.len()
    }

    /// What the tracker knows, for a log of `size` entries.
    pub fn snapshot(&self, size: u64) -> Snapshot {
        let skip = self.keys.order.len().saturating_sub(SNAPSHOT_KEYS);
        Snapshot {
            size,
            last: self.last.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            ended: self.ended.iter().cloned().collect(),
            keys: self.keys.order.iter().skip(skip).cloned().collect(),
        }
    }

    /// The tracker a snapshot was taken of.
    pub fn from_snapshot(snapshot: Snapshot) -> SourceTracker {
        let mut t = SourceTracker {
            last: snapshot.last.into_iter().collect(),
            ended: snapshot.ended.into_iter().collect(),
            keys: RecentKeys::default(),
        };
        for key in &snapshot.keys {
            t.keys.insert(key);
        }
        t
    }

    /// Save a snapshot of the tracker at log size `size` in `dir` (written to a temporary
    /// file, then renamed). A snapshot that is lost or damaged only makes the next start read
    /// more of the log.
    pub fn save_snapshot(&self, dir: &std::path::Path, size: u64) -> std::io::Result<()> {
        let path = snapshot_path(dir, size);
        let tmp = path.with_extension("sources.tmp");
        let bytes = serde_json::to_vec(&self.snapshot(size)).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    }
}

/// Which sources are open (not ended), when each was last heard from, and the highest
/// number each announced (`audit-source-seq`: events it numbered, delivered or not yet).
///
/// A gateway worker sends something at least every heartbeat interval, and says so when it
/// closes. A source silent for longer than the timeout, which never said it closed, ended
/// without a clean close: the writer seals that (`source_end`, `clean: false`), so a
/// gateway killed with events still in its buffer leaves a visible mark, never silence.
#[derive(Debug)]
pub struct Liveness {
    timeout: Duration,
    open: HashMap<String, Heard>,
}

#[derive(Debug, Clone, Copy)]
struct Heard {
    at: Instant,
    announced: u64,
}

/// A source that went silent: its id and the highest number it announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silent {
    pub id: String,
    pub announced: u64,
}

impl Liveness {
    pub fn new(timeout: Duration) -> Liveness {
        Liveness {
            timeout,
            open: HashMap::new(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `id` was heard from at `at`, announcing numbers up to `announced`.
    pub fn heard(&mut self, id: &str, announced: u64, at: Instant) {
        match self.open.get_mut(id) {
            Some(h) => {
                h.at = h.at.max(at);
                h.announced = h.announced.max(announced);
            }
            None => {
                self.open.insert(id.to_owned(), Heard { at, announced });
            }
        }
    }

    /// The highest number `id` announced, if it is open.
    pub fn announced(&self, id: &str) -> Option<u64> {
        self.open.get(id).map(|h| h.announced)
    }

    /// `id` ended (its `source_end` entry is durable).
    pub fn ended(&mut self, id: &str) {
        self.open.remove(id);
    }

    /// The open sources silent for longer than the timeout at `now`, by id.
    pub fn silent(&self, now: Instant) -> Vec<Silent> {
        let mut out: Vec<Silent> = self
            .open
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.at) > self.timeout)
            .map(|(id, h)| Silent {
                id: id.clone(),
                announced: h.announced,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Number of open sources.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_silent_past_the_timeout_is_reported_until_it_ends() {
        let start = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(60));
        l.heard("a", 3, start);
        l.heard("b", 0, start + Duration::from_secs(30));
        l.heard("a", 2, start + Duration::from_secs(10));
        assert_eq!(l.announced("a"), Some(3), "announcements never go back");
        assert!(l.silent(start + Duration::from_secs(60)).is_empty());
        let silent = l.silent(start + Duration::from_secs(71));
        assert_eq!(
            silent,
            [Silent {
                id: "a".into(),
                announced: 3
            }]
        );
        l.ended("a");
        assert!(l.silent(start + Duration::from_secs(80)).is_empty());
        assert_eq!(l.silent(start + Duration::from_secs(91)).len(), 1, "b");
        assert_eq!(l.open(), 1);
    }

    #[test]
    fn gaps_duplicates_and_rollback() {
        let mut t = SourceTracker::default();
        let mut undo = Undo::default();
        assert_eq!(t.observe("a", 1, &mut undo), Observation::Next);
        assert_eq!(t.observe("a", 2, &mut undo), Observation::Next);
        assert_eq!(t.observe("a", 2, &mut undo), Observation::Duplicate);
        assert_eq!(
            t.observe("a", 6, &mut undo),
            Observation::Gap { first: 3, last: 5 }
        );
        assert_eq!(
            t.observe("b", 4, &mut undo),
            Observation::Gap { first: 1, last: 3 }
        );
        undo.clear();
        assert_eq!(t.observe("a", 7, &mut undo), Observation::Next);
        assert_eq!(t.observe("c", 1, &mut undo), Observation::Next);
        t.rollback(&mut undo);
        assert_eq!(t.observe("a", 7, &mut undo), Observation::Next);
        assert_eq!(t.observe("c", 1, &mut undo), Observation::Next);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn an_end_is_sealed_once_and_a_source_that_speaks_again_is_open() {
        let mut t = SourceTracker::default();
        let mut undo = Undo::default();
        assert_eq!(t.observe("a", 1, &mut undo), Observation::Next);
        assert!(t.end("a", 3, &mut undo));
        assert_eq!(t.watermark("a"), Some(3));
        assert!(!t.end("a", 3, &mut undo), "a repeated close");
        assert_eq!(t.open_sources().count(), 0);
        undo.clear();
        assert_eq!(t.observe("a", 4, &mut undo), Observation::Next);
        assert_eq!(t.open_sources().collect::<Vec<_>>(), [("a", 4)]);
        t.rollback(&mut undo);
        assert_eq!(t.open_sources().count(), 0, "the reopening was rolled back");
        assert!(!t.end("a", 3, &mut undo));
    }

    #[test]
    fn keyed_events_are_sealed_once_unless_the_group_failed() {
        let mut t = SourceTracker::default();
        let mut undo = Undo::default();
        t.restore_key("from-recovery");
        assert_eq!(
            t.observe_key("from-recovery", &mut undo),
            Observation::Duplicate
        );
        assert_eq!(t.observe_key("k1", &mut undo), Observation::Next);
        assert_eq!(t.observe_key("k1", &mut undo), Observation::Duplicate);
        undo.clear();
        assert_eq!(t.observe_key("k2", &mut undo), Observation::Next);
        assert_eq!(t.observe("a", 1, &mut undo), Observation::Next);
        t.rollback(&mut undo);
        assert_eq!(t.recent_keys(), 2, "k2 was never durable: forgotten");
        assert_eq!(t.observe_key("k2", &mut undo), Observation::Next);
        assert_eq!(t.observe_key("k1", &mut undo), Observation::Duplicate);
    }

    #[test]
    fn the_oldest_keys_are_forgotten_past_the_bound() {
        let mut keys = RecentKeys::default();
        for i in 0..=MAX_RECENT_KEYS {
            assert!(keys.insert(&i.to_string()));
        }
        assert_eq!(keys.order.len(), MAX_RECENT_KEYS);
        assert!(keys.insert("0"), "the oldest key was forgotten");
        assert!(!keys.insert(&MAX_RECENT_KEYS.to_string()));
    }
}
