//! Per-source sequence tracking: turns missing ranges into gaps and drops replays.
//!
//! Every producer (a gateway worker incarnation) numbers its events 1, 2, 3, ... The
//! tracker remembers the highest number sealed per source. A number at or below it is a
//! replay (a retry whose acknowledgement was lost) and is not sealed twice; a number above
//! the next expected one means events were lost on the way, which is sealed as a `gap`.

use std::collections::HashMap;

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
}

/// How to undo observations made for a group that failed to become durable.
#[derive(Debug, Default)]
pub struct Undo(Vec<(String, Option<u64>)>);

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
        undo.0.push((source.to_owned(), previous));
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

    /// Raise the watermark of a source without sealing anything (used by recovery).
    pub fn restore(&mut self, source: &str, seq: u64) {
        let e = self.last.entry(source.to_owned()).or_default();
        *e = (*e).max(seq);
    }

    /// Revert the observations recorded in `undo`, newest first.
    pub fn rollback(&mut self, undo: &mut Undo) {
        for (source, previous) in undo.0.drain(..).rev() {
            match previous {
                Some(p) => self.last.insert(source, p),
                None => self.last.remove(&source),
            };
        }
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
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
}
