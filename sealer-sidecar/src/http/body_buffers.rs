//! Request bodies of `POST /v1/events` are read into buffers kept from earlier requests.
//!
//! A batch from the audit filter is about a megabyte. Allocated for each request and freed
//! after it, such a buffer goes back to the kernel every time (glibc unmaps it, or trims the
//! arena it came from), and the next request faults in and zeroes a megabyte of fresh pages:
//! under `cargo xtask bench` that was most of the sealer's page faults and cost about a fifth
//! of its ingest rate. Kept buffers are already mapped.
//!
//! A body is handed back once its batch is answered. The sealed events may still share the
//! body's bytes (a canonical line is a slice of the body), so a buffer is kept only when nothing
//! else refers to it ([`Bytes::try_into_mut`]); the writer drops a batch's events before it
//! answers. At most [`MAX_KEPT_BYTES`] of capacity are kept, so a burst of concurrent batches
//! does not leave its memory behind.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

/// The capacity kept for later requests, at most: four batches of the filter's default size
/// with room to spare.
pub const MAX_KEPT_BYTES: usize = 8 << 20;

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// It is longer than the limit.
    TooLarge,
    /// The connection failed while it was being read.
    Io(String),
}

/// Free buffers, and the capacity they hold.
#[derive(Default)]
pub struct BodyBuffers {
    free: Mutex<(Vec<BytesMut>, usize)>,
}

impl BodyBuffers {
    /// Read `body` whole into a kept buffer (or a new one), refusing more than `limit` bytes.
    /// `declared` is the request's `Content-Length`, if any: the buffer is sized for it at once.
    pub async fn read(
        &self,
        mut body: axum::body::Body,
        declared: Option<u64>,
        limit: usize,
    ) -> Result<Bytes, ReadError> {
        let mut buf = self.take();
        if let Some(n) = declared {
            buf.reserve((n as usize).min(limit));
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ReadError::Io(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(ReadError::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }

    /// Keep `body`'s buffer for a later request, if nothing else refers to it and the kept
    /// capacity allows.
    pub fn give_back(&self, body: Bytes) {
        let Ok(mut buf) = body.try_into_mut() else {
            return;
        };
        buf.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let (buffers, kept) = &mut *free;
        if *kept + buf.capacity() <= MAX_KEPT_BYTES {
            *kept += buf.capacity();
            buffers.push(buf);
        }
    }

    fn take(&self) -> BytesMut {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let (buffers, kept) = &mut *free;
        match buffers.pop() {
            Some(buf) => {
                *kept -= buf.capacity();
                buf
            }
            None => BytesMut::new(),
        }
    }

    /// The capacity kept now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.lock().unwrap().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> axum::body::Body {
        let stream = futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        );
        axum::body::Body::from_stream(stream)
    }

    #[tokio::test]
    async fn a_body_is_read_whole_and_its_buffer_used_again() {
        let buffers = BodyBuffers::default();
        let first = buffers
            .read(body(&[b"{\"a\":1}\n", b"{\"b\":2}\n"]), Some(16), 1024)
            .await
            .unwrap();
        assert_eq!(&first[..], b"{\"a\":1}\n{\"b\":2}\n");
        let address = first.as_ptr();
        buffers.give_back(first);
        assert!(buffers.kept() >= 16);
        let second = buffers.read(body(&[b"xyz"]), None, 1024).await.unwrap();
        assert_eq!(&second[..], b"xyz");
        assert_eq!(second.as_ptr(), address, "the kept buffer is used again");
        assert_eq!(buffers.kept(), 0, "a buffer in use is not counted as kept");
    }

    #[tokio::test]
    async fn a_body_still_shared_is_not_kept() {
        let buffers = BodyBuffers::default();
        let read = buffers.read(body(&[b"abcdef"]), None, 1024).await.unwrap();
        let slice = read.slice(1..3);
        buffers.give_back(read);
        assert_eq!(buffers.kept(), 0);
        assert_eq!(&slice[..], b"bc", "the bytes others hold are untouched");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let buffers = BodyBuffers::default();
        let result = buffers.read(body(&[b"abc", b"def"]), None, 5).await;
        assert!(matches!(result, Err(ReadError::TooLarge)), "{result:?}");
        let exact = buffers.read(body(&[b"abc", b"de"]), None, 5).await;
        assert_eq!(&exact.unwrap()[..], b"abcde");
    }

    #[tokio::test]
    async fn a_connection_that_fails_midway_is_an_io_error() {
        let stream = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("connection reset")),
        ]);
        let result = BodyBuffers::default()
            .read(axum::body::Body::from_stream(stream), None, 100)
            .await;
        assert!(
            matches!(&result, Err(ReadError::Io(m)) if m.contains("connection reset")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn no_more_than_the_bound_is_kept() {
        let buffers = BodyBuffers::default();
        let mut held = Vec::new();
        for _ in 0..5 {
            let mut big = BytesMut::with_capacity(3 << 20);
            big.extend_from_slice(b"x");
            held.push(big.freeze());
        }
        for b in held {
            buffers.give_back(b);
        }
        let kept = buffers.kept();
        assert!(kept <= MAX_KEPT_BYTES, "{kept}");
        assert!(kept >= 2 * (3 << 20), "two of the five fit: {kept}");
    }
}
