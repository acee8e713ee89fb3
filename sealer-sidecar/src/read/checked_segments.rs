//! Segments read and checked in parallel, handed over in log order.
//!
//! Verification absorbs segments one after the other (the chain and the tree are serial),
//! but reading and checking them need not be: [`CheckedSegments`] overlaps three stages.
//!
//! 1. **Read**: segments are fetched in log order, several at a time (S3 round trips
//!    overlap) but at most `READ_AHEAD_BYTES` (64 MiB) at once, each into a buffer that an
//!    earlier segment has finished with.
//! 2. **Check**: each segment is split into pieces of about `PIECE_BYTES` (8 MiB)
//!    ([`SegmentPlan`]) and the pieces are checked on blocking threads, about one per core
//!    at a time. Pieces are queued strictly in log order, so the segment that verification
//!    needs next is never starved by one it needs later, and one large segment keeps every
//!    core busy.
//! 3. **Hand over**: [`CheckedSegments::next`] joins a segment's pieces and returns its
//!    [`SegmentCheck`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use auditlog::chain::MacKey;
use auditlog::verify::{SegmentCheck, SegmentPlan};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::store::{ObjectInfo, Store, StoreError};

/// Segment reads in flight at once (S3 round trips overlap)...
const READS_IN_FLIGHT: usize = 8;

/// ... holding at most this many bytes (two full segments), unless one alone is larger.
const READ_AHEAD_BYTES: u64 = 64 << 20;

/// Segments are checked in pieces of about this size (a segment is up to 32 MiB).
const PIECE_BYTES: usize = 8 << 20;

/// Segments queued for hand-over. With the one being handed over and the one waiting to be
/// queued, at most three segments are being checked (and hold their buffers) at once.
const CHECKED_AHEAD: usize = 1;

/// A segment's pieces being checked: joined into its check, with its buffer.
type Checking = JoinHandle<(SegmentCheck, Vec<u8>)>;

/// The segments of a store, checked, in log order.
pub struct CheckedSegments {
    checked: mpsc::Receiver<Result<Checking, StoreError>>,
    /// The task that reads and queues, awaited when `checked` closes: if it panicked, the
    /// panic goes on to the caller instead of looking like the end of the log.
    producer: Option<JoinHandle<()>>,
    /// Buffers of segments handed over, for the next reads.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl CheckedSegments {
    /// Start reading and checking `segments` (in log order), with MACs if `mac_key` is given.
    pub fn start<S: Store + Clone>(
        store: &S,
        segments: Vec<ObjectInfo>,
        mac_key: Option<MacKey>,
    ) -> CheckedSegments {
        let spare = Arc::new(Mutex::new(Vec::new()));
        let (checked_tx, checked) = mpsc::channel(CHECKED_AHEAD);
        let producer = tokio::spawn(read_and_check(
            store.clone(),
            segments,
            mac_key,
            spare.clone(),
            checked_tx,
        ));
        CheckedSegments {
            checked,
            producer: Some(producer),
            spare,
        }
    }

    /// The next segment's check; `None` after the last one.
    pub async fn next(&mut self) -> Option<Result<SegmentCheck, StoreError>> {
        let Some(next) = self.checked.recv().await else {
            if let Some(producer) = self.producer.take()
                && let Err(e) = producer.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
            return None;
        };
        let checking = match next {
            Ok(checking) => checking,
            Err(e) => return Some(Err(e)),
        };
        let (check, buffer) = checking.await.expect("a segment check does not panic");
        self.spare.lock().expect("not poisoned").push(buffer);
        Some(Ok(check))
    }
}

/// Fetch the segments in order, a few at a time, and queue each one's pieces for checking
/// as soon as it is read, in order.
async fn read_and_check<S: Store + Clone>(
    store: S,
    segments: Vec<ObjectInfo>,
    mac_key: Option<MacKey>,
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    out: mpsc::Sender<Result<Checking, StoreError>>,
) {
    type Read = JoinHandle<Result<(String, Vec<u8>), StoreError>>;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // One more than the cores, so that a core finishing a piece finds the next one queued.
    let checkers = Arc::new(Semaphore::new(cores + 1));
    let mut reading: VecDeque<(u64, Read)> = VecDeque::new();
    let mut queue = segments.into_iter().peekable();
    loop {
        while let Some(next) = queue.peek() {
            let bytes: u64 = reading.iter().map(|(size, _)| size).sum();
            if !reading.is_empty()
                && (reading.len() >= READS_IN_FLIGHT || bytes + next.size > READ_AHEAD_BYTES)
            {
                break;
            }
            let obj = queue.next().expect("peeked");
            let buffer = spare
                .lock()
                .expect("not poisoned")
                .pop()
                .unwrap_or_default();
            let store = store.clone();
            let size = obj.size;
            reading.push_back((
                size,
                tokio::spawn(async move {
                    let bytes = store.get_into(&obj.key, buffer).await?.unwrap_or_default();
                    Ok((obj.key, bytes))
                }),
            ));
        }
        let Some((_, next)) = reading.pop_front() else {
            return;
        };
        let checking = match next.await.expect("a segment read does not panic") {
            Ok((key, bytes)) => Ok(check(key, bytes, &mac_key, &checkers).await),
            Err(e) => Err(e),
        };
        let failed = checking.is_err();
        if out.send(checking).await.is_err() || failed {
            return;
        }
    }
}

/// Split a segment into pieces and queue their checks, in order: this waits until the last
/// piece has a core. The handle joins the pieces' checks.
async fn check(
    key: String,
    bytes: Vec<u8>,
    mac_key: &Option<MacKey>,
    checkers: &Arc<Semaphore>,
) -> Checking {
    let bytes = Arc::new(bytes);
    let plan = {
        let bytes = bytes.clone();
        let pieces = bytes.len().div_ceil(PIECE_BYTES);
        tokio::task::spawn_blocking(move || SegmentPlan::new(&key, &bytes, pieces))
            .await
            .expect("planning does not panic")
    };
    let plan = Arc::new(plan);
    let mut pieces = Vec::with_capacity(plan.pieces());
    for i in 0..plan.pieces() {
        // Waiting here for a core keeps the queue in log order.
        let permit = checkers
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let (plan, bytes, mac_key) = (plan.clone(), bytes.clone(), mac_key.clone());
        pieces.push(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            plan.check_piece(i, &bytes, mac_key.as_ref())
        }));
    }
    let mac_key = mac_key.clone();
    tokio::spawn(async move {
        let mut checks = Vec::with_capacity(pieces.len());
        for piece in pieces {
            checks.push(piece.await.expect("a piece check does not panic"));
        }
        let plan = Arc::into_inner(plan).expect("every piece is checked");
        let buffer = Arc::into_inner(bytes).expect("every piece is checked");
        // Joining checks a piece again in the rare case that needs it (a damaged segment):
        // off the async threads.
        tokio::task::spawn_blocking(move || {
            let check = plan.finish(checks, &buffer, mac_key.as_ref());
            (check, buffer)
        })
        .await
        .expect("joining a segment's checks does not panic")
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::store::{MemoryStore, PutOutcome};

    /// A store whose segment reads panic.
    #[derive(Clone, Default)]
    struct PanicsOnRead(MemoryStore);

    impl Store for PanicsOnRead {
        async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, StoreError> {
            self.0.put_if_absent(key, bytes).await
        }

        async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
            self.0.get(key).await
        }

        async fn get_into(&self, key: &str, _: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
            panic!("reading {key} broke")
        }

        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
            self.0.list(prefix).await
        }

        fn describe(&self) -> String {
            "a store that panics".into()
        }
    }

    #[tokio::test]
    async fn a_panic_while_reading_reaches_the_caller_instead_of_ending_the_log() {
        let segments = vec![ObjectInfo {
            key: auditlog::layout::segment_key(0, 0),
            size: 100,
        }];
        let mut checked = CheckedSegments::start(&PanicsOnRead::default(), segments, None);
        let outcome = tokio::spawn(async move { checked.next().await.is_none() }).await;
        let panic = outcome.expect_err("the panic is not taken for the end of the log");
        assert!(panic.is_panic());
    }

    #[tokio::test]
    async fn segments_come_back_in_log_order_with_their_buffers_reused() {
        let store = MemoryStore::default();
        let mut segments = Vec::new();
        for first in [0u64, 1, 2, 3] {
            let key = auditlog::layout::segment_key(first, first);
            store
                .put_if_absent(&key, Bytes::from_static(b"not a record\n"))
                .await
                .unwrap();
            segments.push(ObjectInfo { key, size: 13 });
        }
        let mut checked = CheckedSegments::start(&store, segments.clone(), None);
        for expected in &segments {
            let check = checked.next().await.expect("one per segment").unwrap();
            assert_eq!(check.key, expected.key);
            assert_eq!(check.records, 1);
            assert_eq!(check.problems.len(), 1, "{:?}", check.problems);
        }
        assert!(checked.next().await.is_none());
        assert!(!checked.spare.lock().unwrap().is_empty());
    }
}
