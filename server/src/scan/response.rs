//! Encoded response messages, written in place by the scan into pooled buffers (see
//! [`super::memory`]): a response holds a few bytes per catalog item, megabytes for a large
//! catalog, and a buffer given back after its response was sent is already mapped.

use std::ops::{Deref, DerefMut};

use super::memory::ScratchBytes;

/// An encoded response message. Dropped, its buffer goes back to the pool; turned into
/// [`bytes::Bytes`] with [`ResponseMessage::into_bytes`], it goes back once the last
/// reference to those bytes (e.g. the HTTP body being sent) is dropped.
pub struct ResponseMessage {
    bytes: ScratchBytes,
}

impl ResponseMessage {
    /// A message of `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        ResponseMessage {
            bytes: ScratchBytes::take(len),
        }
    }

    /// The message as shared bytes (for an HTTP body) without a copy; the buffer returns
    /// to the pool when they are dropped.
    pub fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
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

impl std::fmt::Debug for ResponseMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponseMessage({} bytes)", self.bytes.len())
    }
}

impl PartialEq for ResponseMessage {
    fn eq(&self, other: &Self) -> bool {
        *self.bytes == *other.bytes
    }
}

impl Eq for ResponseMessage {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_written_in_place_and_shared_without_a_copy() {
        let mut message = ResponseMessage::zeroed(100_000);
        assert!(message.iter().all(|&b| b == 0));
        message[3] = 7;
        let address = message.as_ptr();
        let bytes = message.into_bytes();
        assert_eq!(bytes.len(), 100_000);
        assert_eq!(bytes[3], 7);
        assert_eq!(bytes.as_ptr(), address, "the same buffer, not a copy");
    }
}
