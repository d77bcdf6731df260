//! BATCH frames: records appended one by one into a caller's buffer, and read back as
//! slices borrowed from the received bytes.

use super::{
    BATCH_HEADER_LEN, DecodeError, EncodeError, FrameType, HEADER_LEN, MAX_FRAME_LEN,
    MAX_RECORD_LEN, RECORD_HEADER_LEN, frame_buf, le_u32, pad8, write_header,
};

/// Bytes a record of `len` bytes takes in a BATCH frame: its 8-byte header (destination
/// task, length) and its bytes padded to a multiple of 8.
pub const fn record_size(len: usize) -> usize {
    RECORD_HEADER_LEN + pad8(len)
}

/// One record of a BATCH frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The task the record is for.
    pub dest_task: u32,
    /// The record's bytes (an encoded tuple), exactly as the sender handed them over.
    pub bytes: &'a [u8],
}

/// Builds a BATCH frame in a caller-provided buffer, one record at a time.
///
/// Records are copied straight into place: `[dest_task u32][len u32][bytes][zero padding
/// to 8]` after a 16-byte frame header. Nothing is allocated. [`finish`](Self::finish)
/// writes the header and returns the frame's length; the frame is `buf[..len]`.
///
/// ```
/// use squall_net::codec::{BatchEncoder, EncodeError, record_size};
///
/// let mut buf = [0u8; 64];
/// let mut batch = BatchEncoder::new(&mut buf).unwrap();
/// batch.push(1, b"abc").unwrap();
/// // Fill a record in place: reserve 16 bytes, use 5.
/// batch.push_with(2, 16, |out| { out[..5].copy_from_slice(b"hello"); 5 }).unwrap();
/// assert_eq!(batch.remaining(), 64 - 16 - 2 * record_size(5));
/// let refused = batch.push(3, &[0; 40]);
/// assert!(matches!(refused, Err(EncodeError::BufferTooSmall { .. })));
/// assert_eq!(batch.finish(), 48);
/// ```
#[derive(Debug)]
pub struct BatchEncoder<'a> {
    /// The caller's buffer, cut to a multiple of 8 bytes and at most [`MAX_FRAME_LEN`].
    buf: &'a mut [u8],
    /// Bytes of the frame so far, header included.
    len: usize,
    count: u32,
}

impl<'a> BatchEncoder<'a> {
    /// Starts a batch at the start of `buf`; the frame may grow to all of `buf` (cut to a
    /// multiple of 8 bytes and to [`MAX_FRAME_LEN`]).
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when `buf` cannot hold the 16-byte batch header.
    pub fn new(buf: &'a mut [u8]) -> Result<Self, EncodeError> {
        let usable = buf.len().min(MAX_FRAME_LEN as usize) & !7;
        let buf = frame_buf(buf, usable)?;
        if usable < BATCH_HEADER_LEN {
            return Err(EncodeError::BufferTooSmall {
                needed: BATCH_HEADER_LEN,
                available: usable,
            });
        }
        Ok(Self {
            buf,
            len: BATCH_HEADER_LEN,
            count: 0,
        })
    }

    /// Bytes of the frame so far, header included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of records pushed.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes left for records (each takes [`record_size`] of its length).
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Whether a record of `len` bytes fits.
    pub fn fits(&self, len: usize) -> bool {
        len <= MAX_RECORD_LEN && record_size(len) <= self.remaining()
    }

    /// Appends a record for `dest_task`.
    ///
    /// # Errors
    /// [`EncodeError::RecordTooLong`] when no frame can carry `record`,
    /// [`EncodeError::BufferTooSmall`] when this one has no room left for it. Nothing is
    /// written then.
    #[inline]
    pub fn push(&mut self, dest_task: u32, record: &[u8]) -> Result<(), EncodeError> {
        self.push_with(dest_task, record.len(), |out| {
            out.copy_from_slice(record);
            record.len()
        })
        .map(drop)
    }

    /// Appends a record of at most `max_len` bytes that `fill` writes in place: it gets a
    /// slice of exactly `max_len` bytes and returns how many it used. Returns that count.
    ///
    /// # Errors
    /// As [`push`](Self::push), for `max_len`; `fill` is not called then.
    ///
    /// # Panics
    /// When `fill` returns more than `max_len`.
    #[inline]
    pub fn push_with(
        &mut self,
        dest_task: u32,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, EncodeError> {
        if max_len > MAX_RECORD_LEN {
            return Err(EncodeError::RecordTooLong {
                len: max_len,
                max: MAX_RECORD_LEN,
            });
        }
        let available = self.remaining();
        if record_size(max_len) > available {
            return Err(EncodeError::BufferTooSmall {
                needed: record_size(max_len),
                available,
            });
        }
        let start = self.len + RECORD_HEADER_LEN;
        let used = fill(&mut self.buf[start..start + max_len]);
        assert!(
            used <= max_len,
            "record fill returned {used} bytes but was given room for {max_len}"
        );
        let header = &mut self.buf[self.len..start];
        header[..4].copy_from_slice(&dest_task.to_le_bytes());
        header[4..].copy_from_slice(&(used as u32).to_le_bytes());
        let end = start + pad8(used);
        let padding = end - start - used;
        // Zeroes the padding with one word store rather than a fill of 1 to 7 bytes (a call
        // to `memset` per record): the record's last word keeps its bytes below the padding.
        if padding > 0 {
            let word: &mut [u8; 8] = (&mut self.buf[end - 8..end])
                .try_into()
                .expect("eight bytes");
            let kept = u64::MAX >> (8 * padding);
            *word = (u64::from_le_bytes(*word) & kept).to_le_bytes();
        }
        self.len += record_size(used);
        self.count += 1;
        Ok(used)
    }

    /// Writes the frame header and returns the frame's length: the frame is the first
    /// that many bytes of the buffer.
    pub fn finish(self) -> usize {
        let frame = &mut self.buf[..self.len];
        write_header(frame, FrameType::Batch);
        frame[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&self.count.to_le_bytes());
        frame[HEADER_LEN + 4..BATCH_HEADER_LEN].fill(0);
        self.len
    }
}

/// A decoded BATCH frame: its records, borrowed from the received bytes.
///
/// Body layout: `count` (`u32`), reserved (`u32`, zero), then `count` records, each
/// `[dest_task u32][len u32][len bytes][zero padding to a multiple of 8]`, filling the frame
/// exactly. Every record's bytes start 8-byte aligned relative to the frame.
///
/// Decoding checks every record once, so iterating cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchView<'a> {
    body: &'a [u8],
    count: u32,
}

impl<'a> BatchView<'a> {
    /// Decodes a BATCH body, checking every record.
    ///
    /// # Errors
    /// [`DecodeError::BodyTooShort`], [`NonZeroReserved`](DecodeError::NonZeroReserved),
    /// [`TruncatedRecord`](DecodeError::TruncatedRecord),
    /// [`NonZeroPadding`](DecodeError::NonZeroPadding) or
    /// [`TrailingBytes`](DecodeError::TrailingBytes).
    pub fn decode_body(body: &'a [u8]) -> Result<Self, DecodeError> {
        let fixed = BATCH_HEADER_LEN - HEADER_LEN;
        if body.len() < fixed {
            return Err(DecodeError::BodyTooShort {
                frame: FrameType::Batch,
                found: body.len(),
                min: fixed,
            });
        }
        let count = le_u32(body, 0);
        let reserved = le_u32(body, 4);
        if reserved != 0 {
            return Err(DecodeError::NonZeroReserved {
                frame: FrameType::Batch,
                offset: HEADER_LEN + 4,
                value: reserved,
            });
        }
        let mut offset = fixed;
        for index in 0..count {
            let available = body.len() - offset;
            let truncated = |needed| DecodeError::TruncatedRecord {
                index,
                offset: HEADER_LEN + offset,
                needed,
                available,
            };
            if available < RECORD_HEADER_LEN {
                return Err(truncated(RECORD_HEADER_LEN));
            }
            let len = le_u32(body, offset + 4) as usize;
            // `len` comes from a u32, so this cannot overflow on 64-bit targets; on smaller
            // ones a huge length saturates and is refused as truncated.
            let size = RECORD_HEADER_LEN.saturating_add(len.saturating_add(7) & !7);
            if size > available {
                return Err(truncated(size));
            }
            let padding = size - RECORD_HEADER_LEN - len;
            // The padding is the top of the record's last word: one load and a shift
            // rather than a loop over 1 to 7 bytes per record.
            if padding > 0 {
                let last: [u8; 8] = body[offset + size - 8..offset + size]
                    .try_into()
                    .expect("eight bytes");
                if u64::from_le_bytes(last) >> (8 * (8 - padding)) != 0 {
                    let at = last[8 - padding..]
                        .iter()
                        .position(|&b| b != 0)
                        .expect("a padding byte is not zero");
                    return Err(DecodeError::NonZeroPadding {
                        index,
                        offset: HEADER_LEN + offset + RECORD_HEADER_LEN + len + at,
                    });
                }
            }
            offset += size;
        }
        if offset != body.len() {
            return Err(DecodeError::TrailingBytes {
                declared: count,
                trailing: body.len() - offset,
            });
        }
        Ok(Self { body, count })
    }

    /// A view of a body that [`decode_body`](Self::decode_body) accepted before, without
    /// checking it again. On any other body, iteration yields nonsense or stops early, but
    /// never panics.
    pub(crate) fn trusted(body: &'a [u8]) -> Self {
        let count = body
            .first_chunk::<4>()
            .map_or(0, |b| u32::from_le_bytes(*b));
        Self { body, count }
    }

    /// Number of records.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the whole frame, header included: what the batch counts against credit.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// The frame's body, as received.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The records in order.
    pub fn iter(&self) -> BatchIter<'a> {
        BatchIter {
            body: self.body,
            offset: BATCH_HEADER_LEN - HEADER_LEN,
            remaining: self.count,
        }
    }

    /// The records from `position` on, a place an iterator over this batch reached (see
    /// [`BatchIter::position`]). A position taken from another batch yields records that
    /// make no sense, or none, but never panics.
    pub fn iter_from(&self, position: BatchPosition) -> BatchIter<'a> {
        BatchIter {
            body: self.body,
            offset: position.offset,
            remaining: position.remaining.min(self.count),
        }
    }

    /// Writes the whole frame at the start of `buf`; returns its length.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when `buf` is shorter than the frame.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let len = self.frame_len();
        let frame = frame_buf(buf, len)?;
        write_header(frame, FrameType::Batch);
        frame[HEADER_LEN..].copy_from_slice(self.body);
        Ok(len)
    }
}

impl<'a> IntoIterator for &BatchView<'a> {
    type Item = Record<'a>;
    type IntoIter = BatchIter<'a>;

    fn into_iter(self) -> BatchIter<'a> {
        self.iter()
    }
}

/// Where a [`BatchIter`] stands in its batch, to resume there later with
/// [`BatchView::iter_from`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPosition {
    offset: usize,
    remaining: u32,
}

impl BatchPosition {
    /// Records left from this position.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }
}

/// Iterator over the records of a [`BatchView`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    body: &'a [u8],
    /// Offset of the next record in the body.
    offset: usize,
    remaining: u32,
}

impl BatchIter<'_> {
    /// Where the iterator stands: the next record it would yield.
    pub fn position(&self) -> BatchPosition {
        BatchPosition {
            offset: self.offset,
            remaining: self.remaining,
        }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Record<'a>;

    #[inline]
    fn next(&mut self) -> Option<Record<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let header = self
            .body
            .get(self.offset..self.offset + RECORD_HEADER_LEN)?;
        let dest_task = le_u32(header, 0);
        let len = le_u32(header, 4) as usize;
        let start = self.offset + RECORD_HEADER_LEN;
        let bytes = self.body.get(start..start.checked_add(len)?)?;
        self.offset += record_size(len);
        self.remaining -= 1;
        Some(Record { dest_task, bytes })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(records: &[(u32, &[u8])]) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let mut batch = BatchEncoder::new(&mut buf).unwrap();
        for (dest, bytes) in records {
            batch.push(*dest, bytes).unwrap();
        }
        let len = batch.finish();
        buf.truncate(len);
        buf
    }

    #[test]
    fn records_are_aligned_and_padded_with_zeros() {
        let bytes = frame(&[(5, b"abc"), (6, b"")]);
        assert_eq!(bytes.len(), 16 + 16 + 8);
        assert_eq!(&bytes[16..20], &5u32.to_le_bytes());
        assert_eq!(&bytes[20..24], &3u32.to_le_bytes());
        assert_eq!(&bytes[24..32], b"abc\0\0\0\0\0");
        let view = BatchView::decode_body(&bytes[8..]).unwrap();
        assert_eq!(view.len(), 2);
        assert_eq!(view.frame_len(), bytes.len());
    }

    #[test]
    fn padding_is_zeroed_over_stale_buffer_bytes() {
        // A buffer reused from earlier frames: every byte stale.
        let mut buf = vec![0xA5u8; 4096];
        let mut batch = BatchEncoder::new(&mut buf).unwrap();
        let records: Vec<Vec<u8>> = (0..=17u8).map(|len| vec![len | 0x80; len.into()]).collect();
        for (task, record) in records.iter().enumerate() {
            batch.push(task as u32, record).unwrap();
        }
        // A fill that reserves more than it uses pads after what it used.
        batch
            .push_with(99, 16, |out| {
                out[..3].copy_from_slice(b"xyz");
                3
            })
            .unwrap();
        let len = batch.finish();
        let view = BatchView::decode_body(&buf[8..len]).expect("padding is zero");
        let decoded: Vec<(u32, Vec<u8>)> = view
            .iter()
            .map(|r| (r.dest_task, r.bytes.to_vec()))
            .collect();
        assert_eq!(decoded.len(), records.len() + 1);
        for (task, record) in records.iter().enumerate() {
            assert_eq!(decoded[task], (task as u32, record.clone()));
        }
        assert_eq!(decoded[records.len()], (99, b"xyz".to_vec()));
    }

    #[test]
    fn a_non_zero_padding_byte_is_named_at_its_offset() {
        let clean = frame(&[(5, b"abcdefgh"), (6, b"abc")]);
        // The second record's bytes are 40..43 of the frame; its padding 43..48.
        for at in 43..48 {
            let mut bytes = clean.clone();
            bytes[at] = 1;
            assert_eq!(
                BatchView::decode_body(&bytes[8..]),
                Err(DecodeError::NonZeroPadding {
                    index: 1,
                    offset: at
                })
            );
        }
        assert!(BatchView::decode_body(&clean[8..]).is_ok());
    }

    #[test]
    fn truncated_record_is_named_with_its_index_and_offset() {
        let mut bytes = frame(&[(5, b"abc"), (6, b"12345678")]);
        // Claim 100 bytes for the second record.
        bytes[36..40].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(
            BatchView::decode_body(&bytes[8..]),
            Err(DecodeError::TruncatedRecord {
                index: 1,
                offset: 32,
                needed: 8 + 104,
                available: 16
            })
        );
        assert_eq!(
            BatchView::decode_body(&bytes[8..]).unwrap_err().to_string(),
            "BATCH record 1 at byte 32 needs 112 bytes but only 16 remain in the frame"
        );
    }

    #[test]
    fn count_must_match_the_records() {
        let mut bytes = frame(&[(5, b"abc")]);
        bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            BatchView::decode_body(&bytes[8..]),
            Err(DecodeError::TrailingBytes {
                declared: 0,
                trailing: 16
            })
        );
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            BatchView::decode_body(&bytes[8..]),
            Err(DecodeError::TruncatedRecord { index: 1, .. })
        ));
    }

    #[test]
    fn iteration_resumes_from_a_position() {
        let bytes = frame(&[(1, b"a"), (2, b"bb"), (3, b"ccc")]);
        let view = BatchView::decode_body(&bytes[8..]).unwrap();
        let mut iter = view.iter();
        iter.next();
        let position = iter.position();
        assert_eq!(position.remaining(), 2);
        let rest: Vec<u32> = view.iter_from(position).map(|r| r.dest_task).collect();
        assert_eq!(rest, [2, 3]);
    }

    #[test]
    #[should_panic(expected = "record fill returned 9 bytes but was given room for 8")]
    fn overlong_fill_panics() {
        let mut buf = [0u8; 64];
        let mut batch = BatchEncoder::new(&mut buf).unwrap();
        let _ = batch.push_with(1, 8, |_| 9);
    }
}
