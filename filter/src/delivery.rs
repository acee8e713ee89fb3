//! The per-worker delivery queue: events wait here until the sealer acknowledges them.
//!
//! Events are numbered 1, 2, 3, ... per source (this worker VM's incarnation) and sent in
//! order, one batch at a time, so the sealer sees each source's numbers rise. A batch leaves
//! the queue only on the sealer's 2xx; anything else puts the queue into backoff and the same
//! events are sent again. The queue is bounded in bytes: when it is full, the oldest events
//! that are not in flight are dropped and counted, and the sealer records the hole in their
//! sequence numbers as a `gap` entry, so loss is visible, never silent.

use std::collections::VecDeque;

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
    queue: VecDeque<(u64, String)>,
    queued_bytes: usize,
    /// Events at the front of the queue that are being sent.
    in_flight: Option<usize>,
    failures: u32,
    retry_at_ms: u64,
    dropped: u64,
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
        }
    }

    /// The sequence number the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Queue the line built for sequence number [`Delivery::next_seq`]. Returns how many old
    /// events were dropped to make room.
    pub fn push(&mut self, line: String) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queued_bytes += line.len() + 1;
        self.queue.push_back((seq, line));
        let mut dropped = 0;
        let keep = self.in_flight.unwrap_or(0);
        while self.queued_bytes > self.limits.max_buffer_bytes && self.queue.len() > keep + 1 {
            let (_, old) = self.queue.remove(keep).expect("index is within the queue");
            self.queued_bytes -= old.len() + 1;
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
        for (_, line) in &self.queue {
            if count == self.limits.max_batch_events
                || (count > 0 && body.len() + line.len() + 1 > self.limits.max_batch_bytes)
            {
                break;
            }
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
            count += 1;
        }
        self.in_flight = Some(count);
        Some(Batch {
            body,
            count,
            first_seq: self.queue[0].0,
            last_seq: self.queue[count - 1].0,
        })
    }

    /// The sealer acknowledged the batch in flight.
    pub fn delivered(&mut self) -> usize {
        let n = self.in_flight.take().unwrap_or(0);
        for _ in 0..n {
            if let Some((_, line)) = self.queue.pop_front() {
                self.queued_bytes -= line.len() + 1;
            }
        }
        self.failures = 0;
        self.retry_at_ms = 0;
        n
    }

    /// The sealer refused the batch in flight as invalid: drop it (it would be refused again).
    /// Returns how many events were dropped.
    pub fn rejected(&mut self) -> usize {
        let n = self.delivered();
        self.dropped += n as u64;
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

    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DeliveryLimits {
        DeliveryLimits {
            max_batch_events: 3,
            max_batch_bytes: 1024,
            max_buffer_bytes: 100,
            backoff_min_ms: 100,
            backoff_max_ms: 1000,
        }
    }

    fn push(d: &mut Delivery) -> u64 {
        let seq = d.next_seq();
        d.push(format!("{{\"seq\":{seq:04}}}"));
        seq
    }

    fn seqs(batch: &Batch) -> Vec<u64> {
        String::from_utf8(batch.body.clone())
            .unwrap()
            .lines()
            .map(|l| l[7..11].parse().unwrap())
            .collect()
    }

    #[test]
    fn batches_in_order_and_only_one_in_flight() {
        let mut d = Delivery::new(limits());
        for _ in 0..5 {
            push(&mut d);
        }
        let b = d.next_batch(0).unwrap();
        assert_eq!((b.count, b.first_seq, b.last_seq), (3, 1, 3));
        assert_eq!(seqs(&b), vec![1, 2, 3]);
        assert!(d.next_batch(0).is_none(), "one batch at a time");
        assert_eq!(d.delivered(), 3);
        let b = d.next_batch(0).unwrap();
        assert_eq!(seqs(&b), vec![4, 5]);
        d.delivered();
        assert!(d.next_batch(0).is_none());
        assert_eq!(d.queued_bytes(), 0);
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
    fn a_full_buffer_drops_the_oldest_waiting_events_not_the_batch_in_flight() {
        let mut d = Delivery::new(limits());
        for _ in 0..3 {
            push(&mut d);
        }
        let in_flight = d.next_batch(0).unwrap();
        assert_eq!(seqs(&in_flight), vec![1, 2, 3]);
        // Each line is 13 bytes with its newline: the 100-byte buffer holds 7.
        for _ in 0..7 {
            push(&mut d);
        }
        assert_eq!(d.dropped(), 3);
        assert!(d.queued_bytes() <= 100);
        d.delivered();
        let next = d.next_batch(0).unwrap();
        // Events 4 to 6 were dropped: the sealer will see 3 → 7 and record a gap.
        assert_eq!(seqs(&next), vec![7, 8, 9]);
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
