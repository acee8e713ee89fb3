//! Reading a proxy-wasm header map in place.
//!
//! `proxy_get_header_map_pairs` returns the whole map serialized as the ABI defines it: the
//! number of pairs (u32, little-endian), then each pair's key and value lengths (two u32),
//! then each key and value, each followed by a NUL byte. The SDK's reader copies every name
//! and value into its own allocation; inside Envoy's V8 those allocations cost more than the
//! filter's whole use of the map, which is a handful of named headers. [`pairs`] yields
//! slices of the buffer instead, and stops at the first thing that does not fit (a host bug
//! must not trap the VM).

/// The `(name, value)` pairs of a serialized header map, borrowed from it.
pub fn pairs(map: &[u8]) -> Pairs<'_> {
    let count = read_u32(map, 0).unwrap_or(0);
    Pairs {
        map,
        count,
        index: 0,
        // Data starts after the count and the count's length pairs.
        data: 4usize.saturating_add(count.saturating_mul(8)),
    }
}

pub struct Pairs<'a> {
    map: &'a [u8],
    count: usize,
    index: usize,
    data: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let lengths = 4 + self.index * 8;
        let key_len = read_u32(self.map, lengths)?;
        let value_len = read_u32(self.map, lengths + 4)?;
        let key = self.take(key_len);
        let value = key.and_then(|_| self.take(value_len));
        match (key, value) {
            (Some(key), Some(value)) => {
                self.index += 1;
                Some((key, value))
            }
            _ => {
                // Malformed: stop here for good.
                self.index = self.count;
                None
            }
        }
    }
}

impl<'a> Pairs<'a> {
    /// The next `len` bytes of data and the NUL after them.
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.data.checked_add(len)?;
        let bytes = self.map.get(self.data..end)?;
        if self.map.get(end) != Some(&0) {
            return None;
        }
        self.data = end + 1;
        Some(bytes)
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialize pairs the way the host does.
    pub(super) fn serialize(map: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (map.len() as u32).to_le_bytes().to_vec();
        for (k, v) in map {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in map {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_what_the_host_writes() {
        let map: &[(&[u8], &[u8])] = &[
            (b":method", b"GET"),
            (b":path", b"/a?b=c"),
            (b"empty", b""),
            (b"x-bin", b"\xff\x00\xfe"),
        ];
        let bytes = serialize(map);
        assert_eq!(pairs(&bytes).collect::<Vec<_>>(), map.to_vec());
        assert_eq!(pairs(&serialize(&[])).count(), 0);
        assert_eq!(pairs(b"").count(), 0);
    }

    #[test]
    fn malformed_maps_end_the_pairs_without_panicking() {
        let good = serialize(&[(b"a", b"1"), (b"bb", b"22")]);
        // Every truncation: a prefix of the pairs, never a panic or a wrong pair.
        for cut in 0..good.len() {
            let got: Vec<_> = pairs(&good[..cut]).collect();
            assert!(got.len() < 2, "cut at {cut}: {got:?}");
            if let Some(first) = got.first() {
                assert_eq!(*first, (&b"a"[..], &b"1"[..]));
            }
        }
        // A missing NUL, and a count far beyond the data.
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(pairs(&no_nul).count(), 1);
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pairs(&huge).count(), 0);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod arbitrary {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_map_reads_back(map in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..40)),
            0..12,
        )) {
            let borrowed: Vec<(&[u8], &[u8])> =
                map.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let bytes = tests::serialize(&borrowed);
            prop_assert_eq!(pairs(&bytes).collect::<Vec<_>>(), borrowed);
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = pairs(&bytes).count();
        }
    }
}
