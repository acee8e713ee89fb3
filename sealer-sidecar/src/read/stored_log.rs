//! One way to read a stored log: [`StoredLog`] answers what every reader of a store asks
//! (the newest checkpoint, the checkpoint of a given size, the segments of a range, the
//! log's origin) through the object names of `auditlog::layout`, for any [`Store`].

use std::ops::RangeInclusive;

use auditlog::layout;
use bytes::Bytes;

use crate::store::{ObjectInfo, Store, StoreError};

/// A signed checkpoint object, by its name: the tree size it covers and when it was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRef {
    pub key: String,
    pub size: u64,
    pub unix_nanos: u64,
}

/// A segment object: the entries `first..=last`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRef {
    pub key: String,
    pub first: u64,
    pub last: u64,
    /// The object's size in bytes.
    pub bytes: u64,
}

/// Why a stored object could not be read as what its name says.
#[derive(Debug, thiserror::Error)]
pub enum StoredLogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{key} was listed but is gone")]
    Vanished { key: String },
    #[error("{key} is not UTF-8 text")]
    NotText { key: String },
}

/// A log in a store.
#[derive(Clone, Copy, Debug)]
pub struct StoredLog<'a, S> {
    store: &'a S,
}

impl<'a, S: Store> StoredLog<'a, S> {
    pub fn new(store: &'a S) -> StoredLog<'a, S> {
        StoredLog { store }
    }

    pub fn store(&self) -> &'a S {
        self.store
    }

    /// Every checkpoint object with a valid name, in key order (by size, then signing time).
    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRef>, StoreError> {
        Ok(self
            .store
            .list(layout::CHECKPOINTS)
            .await?
            .into_iter()
            .filter_map(checkpoint_ref)
            .collect())
    }

    /// The checkpoint of the largest tree, signed last among those.
    pub async fn newest_checkpoint(&self) -> Result<Option<CheckpointRef>, StoreError> {
        Ok(self.checkpoints().await?.pop())
    }

    /// The newest checkpoint, listing only the checkpoints of at least `min_size` entries
    /// (a sealer knows the size of the last one it stored): the listing does not grow with
    /// the log's history.
    pub async fn newest_checkpoint_from(
        &self,
        min_size: u64,
    ) -> Result<Option<CheckpointRef>, StoreError> {
        let after = format!("{}{min_size:020}", layout::CHECKPOINTS);
        Ok(self
            .store
            .list_after(layout::CHECKPOINTS, &after)
            .await?
            .into_iter()
            .filter_map(checkpoint_ref)
            .next_back())
    }

    /// The newest checkpoint of exactly `size` entries.
    pub async fn checkpoint_at_size(&self, size: u64) -> Result<Option<CheckpointRef>, StoreError> {
        Ok(self
            .checkpoints()
            .await?
            .into_iter()
            .rev()
            .find(|c| c.size == size))
    }

    /// A checkpoint's signed note.
    pub async fn read_checkpoint(&self, c: &CheckpointRef) -> Result<String, StoredLogError> {
        let bytes = self.read(&c.key).await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| StoredLogError::NotText { key: c.key.clone() })
    }

    /// Every segment object with a valid name, in log order.
    pub async fn segments(&self) -> Result<Vec<SegmentRef>, StoreError> {
        Ok(self
            .store
            .list(layout::SEGMENTS)
            .await?
            .into_iter()
            .filter_map(segment_ref)
            .collect())
    }

    /// The segments that start at entry `first` or later, in log order. The listing starts
    /// there (segments are named `segments/<first>-<last>.ndjson`, 20 digits each), so it
    /// does not grow with the log's history.
    pub async fn segments_from(&self, first: u64) -> Result<Vec<SegmentRef>, StoreError> {
        Ok(self
            .store
            .list_after(layout::SEGMENTS, &segments_from_key(first))
            .await?
            .into_iter()
            .filter_map(segment_ref)
            .collect())
    }

    /// The segments holding any entry of `range`, in log order.
    pub async fn segments_in(
        &self,
        range: RangeInclusive<u64>,
    ) -> Result<Vec<SegmentRef>, StoreError> {
        Ok(self
            .segments()
            .await?
            .into_iter()
            .filter(|s| s.last >= *range.start() && s.first <= *range.end())
            .collect())
    }

    /// An object's bytes; a listed object that is gone is an error.
    pub async fn read(&self, key: &str) -> Result<Bytes, StoredLogError> {
        self.store
            .get(key)
            .await?
            .ok_or_else(|| StoredLogError::Vanished {
                key: key.to_owned(),
            })
    }

    /// The origin the log's first checkpoint names (its first line), if it has one.
    pub async fn origin(&self) -> Result<Option<String>, StoredLogError> {
        let Some(first) = self.checkpoints().await?.into_iter().next() else {
            return Ok(None);
        };
        let text = self.read_checkpoint(&first).await?;
        Ok(text.lines().next().map(str::to_owned))
    }
}

fn checkpoint_ref(o: ObjectInfo) -> Option<CheckpointRef> {
    let (size, unix_nanos) = layout::parse_checkpoint_key(&o.key)?;
    Some(CheckpointRef {
        key: o.key,
        size,
        unix_nanos,
    })
}

/// Entries before a checkpoint's size to list segments from, so as to find the segment that
/// ends at that size without listing the log's history: more than a segment holds (32 MiB at
/// most of records of 160 bytes or more, about 210,000). Where it is not among them, the
/// caller lists every segment.
pub const SEGMENT_SEARCH_WINDOW: u64 = 1 << 20;

/// The key after which the names of the segments from entry `first` on sort.
pub fn segments_from_key(first: u64) -> String {
    format!("{}{first:020}", layout::SEGMENTS)
}

fn segment_ref(o: ObjectInfo) -> Option<SegmentRef> {
    let (first, last) = layout::parse_segment_key(&o.key)?;
    Some(SegmentRef {
        key: o.key,
        first,
        last,
        bytes: o.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn answers_from_the_object_names() {
        let store = MemoryStore::default();
        for (key, body) in [
            (layout::checkpoint_key(3, 10), "origin.example/log\n3\n"),
            (
                layout::checkpoint_key(3, 20),
                "origin.example/log\n3\nlater\n",
            ),
            (layout::checkpoint_key(7, 30), "origin.example/log\n7\n"),
            (layout::segment_key(0, 2), "a"),
            (layout::segment_key(3, 6), "b"),
            ("checkpoints/not-a-checkpoint".to_owned(), "x"),
        ] {
            store.put_if_absent(&key, Bytes::from(body)).await.unwrap();
        }
        let log = StoredLog::new(&store);
        assert_eq!(log.newest_checkpoint().await.unwrap().unwrap().size, 7);
        let three = log.checkpoint_at_size(3).await.unwrap().unwrap();
        assert_eq!(three.unix_nanos, 20, "the newest of that size");
        assert!(
            log.read_checkpoint(&three)
                .await
                .unwrap()
                .ends_with("later\n")
        );
        assert_eq!(log.checkpoint_at_size(5).await.unwrap(), None);
        assert_eq!(
            log.origin().await.unwrap().as_deref(),
            Some("origin.example/log")
        );
        let firsts = |segs: Vec<SegmentRef>| segs.iter().map(|s| s.first).collect::<Vec<_>>();
        assert_eq!(firsts(log.segments().await.unwrap()), [0, 3]);
        assert_eq!(firsts(log.segments_in(2..=3).await.unwrap()), [0, 3]);
        assert_eq!(firsts(log.segments_in(4..=9).await.unwrap()), [3]);
        assert_eq!(firsts(log.segments_from(0).await.unwrap()), [0, 3]);
        assert_eq!(firsts(log.segments_from(1).await.unwrap()), [3]);
        assert_eq!(firsts(log.segments_from(3).await.unwrap()), [3]);
        assert!(firsts(log.segments_from(4).await.unwrap()).is_empty());
        assert!(log.segments_in(7..=9).await.unwrap().is_empty());
    }
}
