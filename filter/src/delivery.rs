//! The per-worker delivery queue: events wait here until the sealer acknowledges them.
//!
//! Events are numbered 1, 2, 3, ... per source (this worker VM's incarnation) and sent in
//! order, one batch at a time, so the sealer sees each source's numbers rise. A batch leaves
//! the queue only on the sealer's 2xx; anything else puts the queue into backoff and the same
//! events are sent again. The queue is bounded in bytes: when it is full, the oldest events
//! that are not in flight are dropped and counted, and the first event sent after them
//! declares how many (`source.dropped_before`), so the sealer records the hole in their
//! sequence numbers as a `gap` entry `declared_by_source`: loss is visible, never silent.

use std::collections::VecDeque;

use crate::event::LINE_SOURCE_PREFIX;

/// A queued event: its sequence number, how many events were dropped just before it, and its
/// ingest line.
#[derive(Debug)]
struct Queued {
    seq: u64,
    dropped_before: u64,
    line: Vec<u8>,
}

/// Limits and timings, from the plugin configuration.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryLimits {
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
    pub max_buffer_bytes: usize,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
}

/// A batch ready to send: an NDJSON body of `count` events.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    pub body: Vec<u8>,
    pub count: usize,
    pub first_seq: u64,
    pub last_seq: u64,
}

#[derive(Debug)]
pub struct Delivery {
    limits: DeliveryLimits,
    next_seq: u64,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// Events at the front of the queue that are being sent.
    in_flight: Option<usize>,
    failures: u32,
    retry_at_ms: u64,
    dropped: u64,
    /// Events lost while the queue was empty (a refused batch): the next event declares them.
    lost_before_next: u64,
}

impl Delivery {
    pub fn new(limits: DeliveryLimits) -> Self {
        Delivery {
            limits,
            next_seq: 1,
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: None,
            failures: 0,
            retry_at_ms: 0,
            dropped: 0,
            lost_before_next: 0,
        }
    }

    /// The sequence number the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Queue the line built for sequence number [`Delivery::next_seq`]. Returns how many old
    /// events were dropped to make room.
    pub fn push(&mut self, line: Vec<u8>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queued_bytes += line.len() + 1;
        self.queue.push_back(Queued {
            seq,
            dropped_before: std::mem::take(&mut self.lost_before_next),
            line,
        });
        let mut dropped = 0;
        let keep = self.in_flight.unwrap_or(0);
        while self.queued_bytes > self.limits.max_buffer_bytes && self.queue.len() > keep + 1 {
            let old = self.queue.remove(keep).expect("index is within the queue");
            self.queued_bytes -= old.line.len() + 1;
            // The next event carries the loss forward, with any it carried itself.
            self.queue[keep].dropped_before += old.dropped_before + 1;
            dropped += 1;
        }
        self.dropped += dropped;
        dropped
    }

    /// The next batch to send, if nothing is in flight, the backoff has passed and events wait.
    pub fn next_batch(&mut self, now_ms: u64) -> Option<Batch> {
        if self.in_flight.is_some() || self.queue.is_empty() || now_ms < self.retry_at_ms {
            return None;
        }
        let mut body = Vec::new();
        let mut count = 0;
        for q in &self.queue {
            if count == self.limits.max_batch_events
                || (count > 0 && body.len() + q.line.len() + 1 > self.limits.max_batch_bytes)
            {
                break;
            }
            match q.line.strip_prefix(LINE_SOURCE_PREFIX.as_bytes()) {
                Some(rest) if q.dropped_before > 0 => {
                    body.extend_from_slice(LINE_SOURCE_PREFIX.as_bytes());
                    body.extend_from_slice(
                        format!("\"dropped_before\":{},", q.dropped_before).as_bytes(),
                    );
                    body.extend_from_slice(rest);
                }
                _ => body.extend_from_slice(&q.line),
            }
            body.push(b'\n');
            count += 1;
        }
        self.in_flight = Some(count);
        Some(Batch {
            body,
            count,
            first_seq: self.queue[0].seq,
            last_seq: self.queue[count - 1].seq,
        })
    }

    /// An empty batch (a heartbeat, or a clean close with nothing left to send), if nothing is
    /// in flight or waiting and no backoff is running.
    pub fn empty_batch(&mut self, now_ms: u64) -> Option<Batch> {
        if self.in_flight.is_some() || !self.queue.is_empty() || now_ms < self.retry_at_ms {
            return None;
        }
        self.in_flight = Some(0);
        Some(Batch {
            body: Vec::new(),
            count: 0,
            first_seq: self.next_seq,
            last_seq: self.next_seq - 1,
        })
    }

    /// The sealer acknowledged the batch in flight.
    pub fn delivered(&mut self) -> usize {
        self.remove_in_flight().0
    }

    /// Remove the batch in flight: how many events, and how many drops they declared.
    fn remove_in_flight(&mut self) -> (usize, u64) {
        let n = self.in_flight.take().unwrap_or(0);
        let mut declared = 0;
        for _ in 0..n {
            if let Some(q) = self.queue.pop_front() {
                self.queued_bytes -= q.line.len() + 1;
                declared += q.dropped_before;
            }
        }
        self.failures = 0;
        self.retry_at_ms = 0;
        (n, declared)
    }

    /// The sealer refused the batch in flight as invalid: drop it (it would be refused again);
    /// the next event declares the loss. Returns how many events were dropped.
    pub fn rejected(&mut self) -> usize {
        let (n, declared) = self.remove_in_flight();
        self.dropped += n as u64;
        if let Some(next) = self.queue.front_mut() {
            next.dropped_before += declared + n as u64;
        } else {
            self.lost_before_next += declared + n as u64;
        }
        n
    }

    /// The batch in flight (or its dispatch) failed: keep it, back off, send it again later.
    pub fn failed(&mut self, now_ms: u64) {
        self.in_flight = None;
        self.failures = self.failures.saturating_add(1);
        let shift = (self.failures - 1).min(20);
        let backoff = (self.limits.backoff_min_ms << shift).min(self.limits.backoff_max_ms);
        self.retry_at_ms = now_ms + backoff;
    }

    /// Whether a request should be refused under `fail_closed`: the last delivery failed, or
    /// the buffer is full.
    pub fn unavailable(&self) -> bool {
        self.failures > 0 || self.queued_bytes >= self.limits.max_buffer_bytes
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn queued_events(&self) -> usize {
        self.queue.len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A batch at its count or byte limit can be sent now: nothing is in flight and no
    /// retry is waiting out its backoff (retries go on the timer).
    pub fn full_batch_waiting(&self) -> bool {
        self.in_flight.is_none()
            && self.failures == 0
            && (self.queue.len() >= self.limits.max_batch_events
                || self.queued_bytes >= self.limits.max_batch_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn limits() -> DeliveryLimits {
        DeliveryLimits {
            max_batch_events: 3,
            max_batch_bytes: 1024,
            max_buffer_bytes: 130,
            backoff_min_ms: 100,
            backoff_max_ms: 1000,
        }
    }

    #[test]
    fn an_empty_batch_only_when_nothing_waits() {
        let mut d = Delivery::new(limits());
        let empty = d.empty_batch(0).expect("nothing waits");
        assert_eq!((empty.count, empty.body.len()), (0, 0));
        assert!(d.empty_batch(0).is_none(), "one in flight at a time");
        d.delivered();
        push(&mut d);
        assert!(
            d.empty_batch(0).is_none(),
            "an event waits: it goes in a real batch"
        );
        let batch = d.next_batch(0).unwrap();
        assert_eq!(batch.count, 1);
        d.failed(0);
        assert!(d.empty_batch(50).is_none(), "backing off");
    }

    /// Queue a line shaped as `ingest_line` writes it: 24 bytes with its newline.
    fn push(d: &mut Delivery) -> u64 {
        let seq = d.next_seq();
        d.push(format!("{LINE_SOURCE_PREFIX}\"n\":\"{seq:04}\"}}}}").into_bytes());
        seq
    }

    /// `(seq, dropped_before)` of each line of a batch, which must be JSON.
    fn sent(batch: &Batch) -> Vec<(u64, Option<u64>)> {
        String::from_utf8(batch.body.clone())
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let seq = v["source"]["n"].as_str().unwrap().parse().unwrap();
                (seq, v["source"]["dropped_before"].as_u64())
            })
            .collect()
    }

    fn seqs(batch: &Batch) -> Vec<u64> {
        sent(batch).into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn batches_in_order_and_only_one_in_flight() {
        let mut d = Delivery::new(DeliveryLimits {
            max_buffer_bytes: 1000,
            ..limits()
        });
        for _ in 0..5 {
            push(&mut d);
        }
        let b = d.next_batch(0).unwrap();
        assert_eq!((b.count, b.first_seq, b.last_seq), (3, 1, 3));
        assert_eq!(seqs(&b), vec![1, 2, 3]);
        assert!(d.next_batch(0).is_none(), "one batch at a time");
        assert_eq!(d.delivered(), 3);
        let b = d.next_batch(0).unwrap();
        assert_eq!(sent(&b), vec![(4, None), (5, None)]);
        d.delivered();
        assert!(d.next_batch(0).is_none());
        assert_eq!(d.queued_bytes(), 0);
    }

    #[test]
    fn a_full_batch_is_ready_at_its_count_or_size_unless_one_is_in_flight_or_backing_off() {
        let mut d = Delivery::new(DeliveryLimits {
            max_buffer_bytes: 1000,
            ..limits()
        });
        push(&mut d);
        push(&mut d);
        assert!(!d.full_batch_waiting(), "2 of 3 events");
        push(&mut d);
        assert!(d.full_batch_waiting(), "3 events: full by count");
        d.next_batch(0).unwrap();
        for _ in 0..3 {
            push(&mut d);
        }
        assert!(!d.full_batch_waiting(), "a batch is in flight");
        d.failed(0);
        assert!(!d.full_batch_waiting(), "a retry waits for the timer");
        d.next_batch(100).unwrap();
        d.delivered();
        assert!(d.full_batch_waiting(), "the retry got through");

        let mut d = Delivery::new(DeliveryLimits {
            max_batch_bytes: 48,
            max_buffer_bytes: 1000,
            ..limits()
        });
        push(&mut d);
        assert!(!d.full_batch_waiting(), "24 of 48 bytes");
        push(&mut d);
        assert!(d.full_batch_waiting(), "48 bytes: full by size");
    }

    #[test]
    fn failures_back_off_and_resend_the_same_events() {
        let mut d = Delivery::new(limits());
        push(&mut d);
        push(&mut d);
        let first = d.next_batch(0).unwrap();
        d.failed(1000);
        assert!(d.unavailable());
        assert!(d.next_batch(1099).is_none(), "backing off");
        let again = d.next_batch(1100).unwrap();
        assert_eq!(again, first, "the same events, unchanged");
        d.failed(1100);
        assert!(d.next_batch(1299).is_none(), "backoff doubled");
        assert!(d.next_batch(1300).is_some());
        d.delivered();
        assert!(!d.unavailable());
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_waiting_events_and_the_next_declares_them() {
        let mut d = Delivery::new(limits());
        for _ in 0..3 {
            push(&mut d);
        }
        let in_flight = d.next_batch(0).unwrap();
        assert_eq!(seqs(&in_flight), vec![1, 2, 3]);
        // 3 lines in flight (72 bytes) leave room for 2 waiting in the 130-byte buffer.
        for _ in 0..7 {
            push(&mut d);
        }
        assert_eq!(d.dropped(), 5);
        assert!(d.queued_bytes() <= 130);
        d.delivered();
        let next = d.next_batch(0).unwrap();
        // Events 4 to 8 were dropped; 9 says so, and the sealer records a declared gap.
        assert_eq!(sent(&next), vec![(9, Some(5)), (10, None)]);
    }

    #[test]
    fn a_refused_batch_is_declared_by_the_next_event_with_what_it_carried() {
        let mut d = Delivery::new(limits());
        for _ in 0..3 {
            push(&mut d);
        }
        d.next_batch(0).unwrap();
        for _ in 0..4 {
            push(&mut d); // 4 and 5 dropped; 6 declares 2, 7 waits
        }
        d.delivered();
        let refused = d.next_batch(0).unwrap();
        assert_eq!(sent(&refused), vec![(6, Some(2)), (7, None)]);
        assert_eq!(d.rejected(), 2);
        assert_eq!(d.dropped(), 4);
        // Nothing waits: the next event declares 6 and 7, and the 2 that 6 declared.
        push(&mut d);
        let next = d.next_batch(0).unwrap();
        assert_eq!(sent(&next), vec![(8, Some(4))]);
    }

    #[test]
    fn batch_bytes_limit_splits_but_never_starves() {
        let mut d = Delivery::new(DeliveryLimits {
            max_batch_bytes: 20,
            ..limits()
        });
        push(&mut d);
        push(&mut d);
        let b = d.next_batch(0).unwrap();
        assert_eq!(b.count, 1);
    }
}
