//! One MConnection channel's state: its bounded send queue, the message being chunked, the
//! recently-sent byte count the scheduler weighs (protocol.md §4.4), and the lazily
//! allocated reassembly buffer for incoming chunks.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::config::ChannelDescriptor;
use super::MConnError;

/// Per-channel state inside an MConnection.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) id: u8,
    priority: u32,
    send_queue_capacity: usize,
    recv_message_capacity: usize,
    /// Bytes of each chunk: the payload size, less for channel ids ≥ 0x80.
    chunk_size: usize,
    queue: VecDeque<Bytes>,
    /// The rest of the message being chunked; `Some(empty)` still owes its eof packet.
    sending: Option<Bytes>,
    /// Bytes written recently (decays ×0.8 every 2 s).
    recently_sent: u64,
    /// Chunks of an incoming message received so far; `None` while idle.
    reassembly: Option<BytesMut>,
}

/// A chunk chosen for sending (a cheap slice of the queued message).
pub(crate) struct Chunk {
    pub(crate) data: Bytes,
    pub(crate) eof: bool,
}

impl Channel {
    pub(crate) fn new(descriptor: &ChannelDescriptor, chunk_size: usize) -> Self {
        Self {
            id: descriptor.id,
            priority: descriptor.priority,
            send_queue_capacity: descriptor.send_queue_capacity,
            recv_message_capacity: descriptor.recv_message_capacity,
            chunk_size,
            queue: VecDeque::new(),
            sending: None,
            recently_sent: 0,
            reassembly: None,
        }
    }

    /// Queues a message, or hands it back when the queue is full.
    pub(crate) fn push(&mut self, message: Bytes) -> Result<(), Bytes> {
        if self.queue.len() >= self.send_queue_capacity {
            return Err(message);
        }
        self.queue.push_back(message);
        Ok(())
    }

    /// Whether another message fits in the send queue.
    pub(crate) fn can_push(&self) -> bool {
        self.queue.len() < self.send_queue_capacity
    }

    /// Whether a chunk is waiting to be sent.
    pub(crate) fn has_pending(&self) -> bool {
        self.sending.is_some() || !self.queue.is_empty()
    }

    /// `recently_sent / priority` compared without floating point: `Less` means `self`
    /// deserves the link before `other`.
    pub(crate) fn cmp_share(&self, other: &Self) -> std::cmp::Ordering {
        // cannot panic: a product of two u64 values fits in a u128.
        let mine = u128::from(self.recently_sent) * u128::from(other.priority);
        let theirs = u128::from(other.recently_sent) * u128::from(self.priority);
        mine.cmp(&theirs)
    }

    /// Takes the next chunk of the current (or next queued) message; a message is fully
    /// chunked before the next one starts.
    pub(crate) fn next_chunk(&mut self) -> Option<Chunk> {
        let mut rest = match self.sending.take() {
            Some(rest) => rest,
            None => self.queue.pop_front()?,
        };
        let take = rest.len().min(self.chunk_size);
        let data = rest.split_to(take);
        let eof = rest.is_empty();
        if !eof {
            self.sending = Some(rest);
        }
        Some(Chunk { data, eof })
    }

    /// Counts bytes written for this channel.
    pub(crate) fn record_sent(&mut self, bytes: usize) {
        self.recently_sent = self
            .recently_sent
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// One 2-second decay step: `recently_sent = floor(recently_sent × 0.8)`.
    pub(crate) fn decay(&mut self) {
        let v = self.recently_sent;
        // cannot panic: v / 5 * 4 + (at most 3) <= v.
        self.recently_sent = v / 5 * 4 + v % 5 * 4 / 5;
    }

    /// Whether a decay step would change anything.
    pub(crate) fn is_decaying(&self) -> bool {
        self.recently_sent > 0
    }

    /// Takes in one received chunk; returns the whole message on its last chunk. A message
    /// that arrives as one chunk is handed out without copying.
    pub(crate) fn receive(&mut self, eof: bool, data: Bytes) -> Result<Option<Bytes>, MConnError> {
        let have = self.reassembly.as_ref().map_or(0, BytesMut::len);
        let len = have.saturating_add(data.len());
        if len > self.recv_message_capacity {
            return Err(MConnError::MessageOverCapacity {
                channel: self.id,
                len,
                capacity: self.recv_message_capacity,
            });
        }
        match (self.reassembly.take(), eof) {
            (None, true) => Ok(Some(data)),
            (None, false) => {
                let mut buf = BytesMut::with_capacity(data.len().saturating_mul(2));
                buf.extend_from_slice(&data);
                self.reassembly = Some(buf);
                Ok(None)
            }
            (Some(mut buf), eof) => {
                buf.extend_from_slice(&data);
                if eof {
                    Ok(Some(buf.freeze()))
                } else {
                    self.reassembly = Some(buf);
                    Ok(None)
                }
            }
        }
    }

    /// Whether the channel holds a reassembly buffer (only while a message is incomplete).
    #[cfg(test)]
    pub(crate) fn holds_reassembly_buffer(&self) -> bool {
        self.reassembly.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(capacity: usize) -> Channel {
        let d = ChannelDescriptor {
            id: 7,
            priority: 2,
            send_queue_capacity: 2,
            recv_message_capacity: capacity,
        };
        Channel::new(&d, 4)
    }

    #[test]
    fn queue_hands_back_when_full() {
        let mut c = channel(10);
        assert!(c.push(Bytes::from_static(b"a")).is_ok());
        assert!(c.push(Bytes::from_static(b"b")).is_ok());
        assert!(!c.can_push());
        assert_eq!(
            c.push(Bytes::from_static(b"c")),
            Err(Bytes::from_static(b"c"))
        );
    }

    #[test]
    fn chunks_one_message_before_the_next() {
        let mut c = channel(10);
        c.push(Bytes::from_static(b"0123456789")).unwrap();
        c.push(Bytes::new()).unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = c.next_chunk() {
            got.push((chunk.data.to_vec(), chunk.eof));
        }
        let expect: Vec<(Vec<u8>, bool)> = vec![
            (b"0123".to_vec(), false),
            (b"4567".to_vec(), false),
            (b"89".to_vec(), true),
            (Vec::new(), true),
        ];
        assert_eq!(got, expect);
        assert!(!c.has_pending());
    }

    #[test]
    fn decay_is_floor_of_four_fifths() {
        let mut c = channel(10);
        for (start, expect) in [
            (0u64, 0u64),
            (1, 0),
            (4, 3),
            (1000, 800),
            (u64::MAX, 14757395258967641292),
        ] {
            c.recently_sent = start;
            c.decay();
            assert_eq!(c.recently_sent, expect, "{start}");
        }
    }

    #[test]
    fn reassembly_is_lazy_bounded_and_zero_copy() {
        let mut c = channel(6);
        let whole = Bytes::from_static(b"abc");
        let out = c.receive(true, whole.clone()).unwrap().unwrap();
        assert_eq!(
            out.as_ptr(),
            whole.as_ptr(),
            "single-chunk message is not copied"
        );
        assert!(!c.holds_reassembly_buffer());
        assert_eq!(c.receive(false, Bytes::from_static(b"abc")).unwrap(), None);
        assert!(c.holds_reassembly_buffer());
        assert_eq!(
            c.receive(true, Bytes::from_static(b"def")).unwrap(),
            Some(Bytes::from_static(b"abcdef"))
        );
        assert!(!c.holds_reassembly_buffer());
        c.receive(false, Bytes::from_static(b"abcd")).unwrap();
        assert_eq!(
            c.receive(true, Bytes::from_static(b"efg")),
            Err(MConnError::MessageOverCapacity {
                channel: 7,
                len: 7,
                capacity: 6
            })
        );
    }
}
