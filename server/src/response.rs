//! Encoded response messages in buffers reused from a small process-wide pool.
//!
//! A response holds a few bytes per catalog item: megabytes for a large catalog. Written
//! into fresh memory, every page of it costs a fault and a clear by the kernel (about 4%
//! of a batch pass at 1M items); a buffer given back after its response was sent is
//! already mapped. A pooled buffer (64 KiB to 16 MiB) is zeroed when given back; smaller
//! and larger ones are freed as they are. They hold encrypted scores only, which reveal
//! nothing without the query's key: the zeroing keeps them from lingering in reused
//! memory, it is not what privacy rests on.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers kept for reuse at most: one batch's worth.
const KEPT: usize = 16;

/// Smaller buffers are not worth keeping (the allocator serves them from memory it
/// already has).
const SMALLEST_KEPT: usize = 64 << 10;

/// Larger buffers are let go, so the pool never holds more than `KEPT` times this.
const LARGEST_KEPT: usize = 16 << 20;

static POOL: Pool = Pool::new();

/// Zeroed buffers kept for reuse.
struct Pool(Mutex<Vec<Vec<u8>>>);

impl Pool {
    const fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }

    /// `len` zero bytes in the smallest kept buffer big enough, if there is one.
    fn take(&self, len: usize) -> Option<Vec<u8>> {
        if len < SMALLEST_KEPT {
            return None;
        }
        let mut bytes = {
            let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let best = (0..pool.len())
                .filter(|&i| pool[i].capacity() >= len)
                .min_by_key(|&i| pool[i].capacity())?;
            pool.swap_remove(best)
        };
        // Kept buffers hold zeros up to their length (see `give`).
        if bytes.len() >= len {
            bytes.truncate(len);
        } else {
            bytes.resize(len, 0);
        }
        Some(bytes)
    }

    /// Keep `bytes` (zeroed) for reuse, if it is worth keeping and there is room.
    fn give(&self, mut bytes: Vec<u8>) {
        if !(SMALLEST_KEPT..=LARGEST_KEPT).contains(&bytes.capacity()) {
            return;
        }
        bytes.fill(0);
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < KEPT {
            pool.push(bytes);
        }
    }
}

/// An encoded response message. Dropped, its buffer goes back to the pool; turned into
/// [`axum::body::Bytes`] with [`ResponseMessage::into_bytes`], it goes back once the last
/// reference to those bytes (e.g. the HTTP body being sent) is dropped.
#[derive(Debug, Default)]
pub struct ResponseMessage {
    bytes: Vec<u8>,
}

impl ResponseMessage {
    /// A message of `len` zero bytes, in a pooled buffer when one is big enough.
    pub fn zeroed(len: usize) -> Self {
        // A new buffer is zeroed by the allocator: fresh pages need no clearing.
        let bytes = POOL.take(len).unwrap_or_else(|| vec![0u8; len]);
        ResponseMessage { bytes }
    }

    /// The message as shared bytes (for an HTTP body) without a copy; the buffer returns
    /// to the pool when they are dropped.
    pub fn into_bytes(self) -> axum::body::Bytes {
        axum::body::Bytes::from_owner(self)
    }

    /// The message as a plain vector, taken out of the pool's reach.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

impl From<Vec<u8>> for ResponseMessage {
    fn from(bytes: Vec<u8>) -> Self {
        ResponseMessage { bytes }
    }
}

impl Deref for ResponseMessage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl DerefMut for ResponseMessage {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl AsRef<[u8]> for ResponseMessage {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq for ResponseMessage {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for ResponseMessage {}

impl Drop for ResponseMessage {
    fn drop(&mut self) {
        POOL.give(std::mem::take(&mut self.bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_buffer_is_reused_zeroed_and_sized() {
        let pool = Pool::new();
        let len = SMALLEST_KEPT + 100;
        let dirty = vec![0xABu8; len];
        let address = dirty.as_ptr();
        pool.give(dirty);
        let shorter = pool.take(len - 50).expect("a kept buffer");
        assert_eq!(shorter.as_ptr(), address, "the kept buffer is reused");
        assert_eq!(shorter.len(), len - 50);
        assert!(
            shorter.iter().all(|&b| b == 0),
            "stale bytes in a reused buffer"
        );
        pool.give(shorter);
        let longer = pool.take(len).expect("the same buffer, grown back");
        assert_eq!(longer.len(), len);
        assert!(longer.iter().all(|&b| b == 0));
        assert!(pool.take(len).is_none(), "the pool is empty again");
    }

    #[test]
    fn small_and_huge_buffers_are_not_kept() {
        let pool = Pool::new();
        pool.give(vec![1u8; SMALLEST_KEPT - 1]);
        pool.give(vec![1u8; LARGEST_KEPT + 1]);
        assert!(pool.take(1).is_none());
        assert!(pool.take(SMALLEST_KEPT).is_none());
    }

    #[test]
    fn into_vec_keeps_the_bytes() {
        let mut message = ResponseMessage::zeroed(10);
        message[3] = 7;
        let v = message.into_vec();
        assert_eq!(v.len(), 10);
        assert_eq!(v[3], 7);
    }
}
