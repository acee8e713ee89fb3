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

/// How many event names ([`SourceTracker::observe_key`]) are remembered. The API server
/// redelivers within minutes; this covers far more than that at any realistic rate of
/// changes to the selected resources, in about 100 MiB at most.
pub const MAX_RECENT_KEYS: usize = 1_000_000;

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

    /// Raise the watermark of a source without sealing anything (used by recovery).
    pub fn restore(&mut self, source: &str, seq: u64) {
        let e = self.last.entry(source.to_owned()).or_default();
        *e = (*e).max(seq);
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
                UndoStep::Key(key) => self.keys.forget_newest(&key),
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
