//! The on-disk encoding of one value: a checksummed header, then the batch
//! as an Arrow IPC stream.
//!
//! ```text
//! offset  size  field
//!  0      2     magic b"KV"
//!  2      1     format version (1)
//!  3      1     flags (0; other values are refused)
//!  4      8     commit timestamp of the value, little-endian
//! 12      4     payload length in bytes, little-endian
//! 16      4     CRC-32 (IEEE) of the payload
//! 20      4     CRC-32 (IEEE) of bytes 0..20
//! 24      ...   payload: an Arrow IPC stream — the schema message, one
//!               record batch message, the end-of-stream marker
//! ```
//!
//! Every field is checked when a value is read back: a flipped byte in the
//! header or the payload, a truncated value, a value of another format, or a
//! stream with anything but exactly one batch is an error, never a wrong
//! batch. (IPC decoding also validates every array it builds.) The header is
//! 24 bytes so that the payload starts 8-byte aligned, which lets the
//! decoder use the stored buffer in place.
//!
//! The value is encoded by the committing thread, which knows its commit
//! timestamp by then ([`EncodedValue::encode_at`]): header and payload are
//! built once, in one buffer, before the commit joins a group, so the group
//! writer hands the bytes to the store as they are ([`EncodedValue::stored`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;
use khonsu_core::Timestamp;

use crate::error::{Result, UnencodableSnafu};

/// Length of the header in front of every stored payload.
pub const HEADER_LEN: usize = 24;

/// The largest batch, in bytes of Arrow memory
/// ([`RecordBatch::get_array_memory_size`]), that can be stored: 3 GiB,
/// below the value limits of redb and fjall.
pub const MAX_VALUE_BYTES: usize = 3 << 30;

const MAGIC: [u8; 2] = *b"KV";
const FORMAT_VERSION: u8 = 1;

/// A batch encoded as an Arrow IPC stream, with its checksum, ready to be
/// stored under a commit timestamp.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_storage::codec::{EncodedValue, decode_stored};
///
/// let batch = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1, 2])) as _)])?;
/// let encoded = EncodedValue::encode(&batch)?;
/// let stored = encoded.to_stored(42);
/// let (ts, back) = decode_stored(&stored).unwrap();
/// assert_eq!((ts, back), (42, batch));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedValue {
    /// The stored form: the header (zeroes until stamped), then the payload.
    bytes: Vec<u8>,
    /// CRC-32 of the payload.
    crc: u32,
    /// The commit timestamp the header holds, once stamped.
    stamped: Option<Timestamp>,
}

impl std::fmt::Debug for EncodedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedValue")
            .field("payload_bytes", &self.payload().len())
            .field("crc", &format_args!("{:#010x}", self.crc))
            .field("stamped", &self.stamped)
            .finish_non_exhaustive()
    }
}

impl EncodedValue {
    /// Encodes `batch` as an Arrow IPC stream (the header is written later,
    /// by [`stored`](Self::stored) or [`to_stored`](Self::to_stored)).
    ///
    /// # Errors
    /// [`Error::Unencodable`](crate::Error::Unencodable) when Arrow IPC
    /// cannot represent the batch (e.g. a dictionary of dictionaries) or it
    /// is larger than [`MAX_VALUE_BYTES`].
    pub fn encode(batch: &RecordBatch) -> Result<Self> {
        check_size(batch)?;
        let mut writer = StreamWriter::try_new(vec![0_u8; HEADER_LEN], batch.schema_ref())
            .map_err(|e| unencodable(&e))?;
        writer.write(batch).map_err(|e| unencodable(&e))?;
        let bytes = writer.into_inner().map_err(|e| unencodable(&e))?;
        let payload = bytes.get(HEADER_LEN..).unwrap_or_default();
        snafu::ensure!(
            u32::try_from(payload.len()).is_ok(),
            UnencodableSnafu {
                reason: format!("its encoding takes {} bytes (at most 4 GiB)", payload.len()),
            }
        );
        let crc = crc32fast::hash(payload);
        Ok(Self {
            bytes,
            crc,
            stamped: None,
        })
    }

    /// Encodes `batch` with the header of `commit_ts` in place: the stored
    /// form, ready to be written without another copy.
    ///
    /// # Errors
    /// As for [`encode`](Self::encode).
    pub fn encode_at(batch: &RecordBatch, commit_ts: Timestamp) -> Result<Self> {
        let mut value = Self::encode(batch)?;
        let h = header(commit_ts, value.payload().len(), value.crc);
        if let Some(slot) = value.bytes.get_mut(..HEADER_LEN) {
            slot.copy_from_slice(&h);
            value.stamped = Some(commit_ts);
        }
        Ok(value)
    }

    /// The IPC stream.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }

    /// Bytes the stored form takes (header and payload).
    #[must_use]
    pub fn stored_len(&self) -> usize {
        self.bytes.len()
    }

    /// The stored form for `commit_ts`: the bytes as they are when the
    /// value was encoded for that timestamp ([`encode_at`](Self::encode_at)),
    /// else a new buffer with the header for it.
    #[must_use]
    pub fn stored(&self, commit_ts: Timestamp) -> Cow<'_, [u8]> {
        if self.stamped == Some(commit_ts) {
            Cow::Borrowed(&self.bytes)
        } else {
            Cow::Owned(self.to_stored(commit_ts))
        }
    }

    /// The stored form: the header for `commit_ts`, then the payload, in a
    /// new buffer.
    #[must_use]
    pub fn to_stored(&self, commit_ts: Timestamp) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_stored(commit_ts, &mut out);
        out
    }

    /// Replaces the contents of `out` with the stored form (reusing its
    /// allocation).
    pub fn write_stored(&self, commit_ts: Timestamp, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.stored_len());
        out.extend_from_slice(&header(commit_ts, self.payload().len(), self.crc));
        out.extend_from_slice(self.payload());
    }
}

fn unencodable(error: &arrow_schema::ArrowError) -> crate::Error {
    UnencodableSnafu {
        reason: format!("Arrow IPC cannot encode it: {error}"),
    }
    .build()
}

fn check_size(batch: &RecordBatch) -> Result<()> {
    let bytes = batch.get_array_memory_size();
    snafu::ensure!(
        bytes <= MAX_VALUE_BYTES,
        UnencodableSnafu {
            reason: format!("the batch holds {bytes} bytes (at most {MAX_VALUE_BYTES})"),
        }
    );
    Ok(())
}

/// Checks, without encoding the rows, that `batch` can be stored and read
/// back: an empty batch of its schema goes through Arrow IPC's writer and
/// then through the decoder recovery uses, and the batch is not larger
/// than [`MAX_VALUE_BYTES`]. The engine calls this when a value is written, so
/// that a value no adapter could store is refused then, not at commit.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{DictionaryArray, RecordBatch, types::Int8Type};
///
/// let inner: DictionaryArray<Int8Type> = vec!["a", "b", "a"].into_iter().collect();
/// let keys = arrow_array::Int8Array::from(vec![0, 1, 2]);
/// let nested = DictionaryArray::<Int8Type>::try_new(keys, Arc::new(inner)).unwrap();
/// let batch = RecordBatch::try_from_iter([("d", Arc::new(nested) as _)]).unwrap();
/// let err = khonsu_storage::codec::check_encodable(&batch).unwrap_err();
/// assert!(err.to_string().contains("dictionary"), "{err}");
/// ```
///
/// # Errors
/// [`Error::Unencodable`](crate::Error::Unencodable), saying why.
pub fn check_encodable(batch: &RecordBatch) -> Result<()> {
    thread_local! {
        /// The schema this thread last found storable: batches of one
        /// table usually share their `SchemaRef` (or at least an equal
        /// schema), and the check encodes and decodes an empty batch (most
        /// of a write's cost on a durable store).
        static STORABLE: RefCell<Option<SchemaRef>> = const { RefCell::new(None) };
    }
    check_size(batch)?;
    let schema = batch.schema_ref();
    let known = STORABLE
        .try_with(|last| {
            last.borrow()
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, schema) || **s == **schema)
        })
        .unwrap_or(false);
    if known {
        return Ok(());
    }
    check_schema_round_trip(schema)?;
    let _ = STORABLE.try_with(|last| *last.borrow_mut() = Some(Arc::clone(schema)));
    Ok(())
}

/// Encodes an empty batch of `schema` and decodes it with the decoder
/// recovery uses: a schema the IPC writer accepts but the reader refuses
/// (a `List` or `Struct` nested about 62 levels deep passes the writer, and
/// the reader's flatbuffer verifier stops at depth 64) would commit, and
/// then every later open of the store would fail.
fn check_schema_round_trip(schema: &SchemaRef) -> Result<()> {
    let empty = RecordBatch::new_empty(Arc::clone(schema));
    let encoded = EncodedValue::encode(&empty)?;
    let mut buffer = Buffer::from(encoded.payload());
    decode_payload(&mut buffer).map_err(|message| {
        UnencodableSnafu {
            reason: format!(
                "Arrow IPC encodes it but cannot decode it again, so the store could not be \
                 recovered once it holds it: {message}"
            ),
        }
        .build()
    })?;
    Ok(())
}

fn header(commit_ts: Timestamp, payload_len: usize, payload_crc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0_u8; HEADER_LEN];
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    h[..2].copy_from_slice(&MAGIC);
    h[2] = FORMAT_VERSION;
    h[3] = 0;
    h[4..12].copy_from_slice(&commit_ts.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    h[16..20].copy_from_slice(&payload_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

fn le_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The commit timestamp in a stored value's header, if the header is
/// intact (the payload is not checked).
#[must_use]
pub fn stored_commit_ts(stored: &[u8]) -> Option<Timestamp> {
    let h = stored.get(..HEADER_LEN)?;
    let crc = h.get(20..24).and_then(le_u32)?;
    if h.get(..2) != Some(&MAGIC[..]) || h.get(..20).map(crc32fast::hash) != Some(crc) {
        return None;
    }
    h.get(4..12)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// A 64-bit digest of one stored entry, `key` at `commit_ts`. Adapters
/// keep the XOR of the digests of every live entry beside their data and
/// compare it at recovery, so that an entry lost or resurrected by damage
/// to the store's own structures (an index page, not a value) is found.
#[must_use]
pub fn entry_digest(key: &[u8], commit_ts: Timestamp) -> u64 {
    let mut low = crc32fast::Hasher::new();
    let mut high = crc32fast::Hasher::new_with_initial(0x9E37_79B9);
    for h in [&mut low, &mut high] {
        h.update(&(key.len() as u64).to_le_bytes());
        h.update(key);
        h.update(&commit_ts.to_le_bytes());
    }
    u64::from(low.finalize()) | (u64::from(high.finalize()) << 32)
}

/// Why a stored value could not be read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are damaged: a short or foreign header, a checksum that
    /// does not match, a truncated payload.
    Damaged(String),
    /// The bytes are intact — the header and payload checksums match, as
    /// written — but Arrow IPC cannot decode the payload (a value written by
    /// a build that did not check it could be read back, e.g. a type nested
    /// deeper than the decoder accepts). The header's commit timestamp is
    /// known.
    Undecodable {
        /// The commit timestamp in the value's intact header.
        commit_ts: Timestamp,
        /// What the decoder said.
        message: String,
    },
}

impl DecodeError {
    /// Whether the stored bytes are as they were written.
    #[must_use]
    pub fn bytes_intact(&self) -> bool {
        matches!(self, Self::Undecodable { .. })
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Damaged(message) => write!(f, "{message}"),
            Self::Undecodable { commit_ts, message } => write!(
                f,
                "its bytes are intact (header and payload checksums match; committed at \
                 {commit_ts}) but Arrow IPC cannot decode them: {message}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads a stored value back: its commit timestamp and its batch.
///
/// # Errors
/// [`DecodeError::Damaged`] for damaged bytes (the caller adds the file
/// and key): a short or foreign header, a checksum mismatch, a truncated
/// payload; [`DecodeError::Undecodable`] for intact bytes that are not an
/// IPC stream of exactly one valid batch this build can decode.
pub fn decode_stored(stored: &[u8]) -> std::result::Result<(Timestamp, RecordBatch), DecodeError> {
    let (ts, payload) = split_stored(stored).map_err(DecodeError::Damaged)?;
    let mut buffer = Buffer::from(payload);
    let batch = decode_payload(&mut buffer).map_err(|message| DecodeError::Undecodable {
        commit_ts: ts,
        message,
    })?;
    Ok((ts, batch))
}

/// Like [`decode_stored`], taking the stored bytes by value so that the
/// decoded arrays use them in place (no copy of the payload).
///
/// # Errors
/// As for [`decode_stored`].
pub fn decode_stored_owned(
    stored: Vec<u8>,
) -> std::result::Result<(Timestamp, RecordBatch), DecodeError> {
    let (ts, payload_len) = {
        let (ts, payload) = split_stored(&stored).map_err(DecodeError::Damaged)?;
        (ts, payload.len())
    };
    let mut buffer = Buffer::from_vec(stored).slice_with_length(HEADER_LEN, payload_len);
    let batch = decode_payload(&mut buffer).map_err(|message| DecodeError::Undecodable {
        commit_ts: ts,
        message,
    })?;
    Ok((ts, batch))
}

/// Payloads up to this size are copied into compact arrays when decoded by
/// a [`ValueDecoder`]: a zero-copy batch keeps the whole stored buffer (and
/// the IPC framing around its data) alive, about 600 bytes for a one-row
/// batch of 16 bytes of data.
pub const COMPACT_BELOW: usize = 4096;

/// Decodes many stored values, as recovery does, into batches that take
/// little memory: values with the schema of the one before share its
/// `SchemaRef`, and small values are copied out of their stored buffer
/// into arrays of their own size. (A million one-row keys recovered with
/// [`decode_stored_owned`] alone hold about 1.9 KB each.)
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_storage::codec::{EncodedValue, ValueDecoder};
///
/// let v = |n| RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![n])) as _)]).unwrap();
/// let mut decoder = ValueDecoder::default();
/// let (_, a) = decoder.decode(EncodedValue::encode(&v(1))?.to_stored(1)).unwrap();
/// let (_, b) = decoder.decode(EncodedValue::encode(&v(2))?.to_stored(2)).unwrap();
/// assert!(Arc::ptr_eq(&a.schema(), &b.schema()));
/// assert_eq!(b, v(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ValueDecoder {
    schema: Option<SchemaRef>,
}

impl ValueDecoder {
    /// Decodes one stored value (see [`decode_stored`]).
    ///
    /// # Errors
    /// As for [`decode_stored`].
    pub fn decode(
        &mut self,
        stored: Vec<u8>,
    ) -> std::result::Result<(Timestamp, RecordBatch), DecodeError> {
        let small = stored.len() <= COMPACT_BELOW + HEADER_LEN;
        let (ts, mut batch) = decode_stored_owned(stored)?;
        let undecodable = |message| DecodeError::Undecodable {
            commit_ts: ts,
            message,
        };
        if small {
            batch = compact(&batch).map_err(undecodable)?;
        }
        match &self.schema {
            Some(last) if **last == **batch.schema_ref() => {
                batch = batch.with_schema(Arc::clone(last)).map_err(|e| {
                    undecodable(format!("decoded batch does not fit its schema: {e}"))
                })?;
            }
            _ => self.schema = Some(batch.schema()),
        }
        Ok((ts, batch))
    }
}

/// `batch` with every column copied into buffers of its own size.
fn compact(batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
    let columns = batch
        .columns()
        .iter()
        .map(|column| {
            let data = column.to_data();
            let mut copy =
                arrow_data::transform::MutableArrayData::new(vec![&data], false, data.len());
            copy.try_extend(0, 0, data.len())
                .map_err(|e| format!("decoded column cannot be compacted: {e}"))?;
            Ok(arrow_array::make_array(copy.freeze()))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| format!("decoded batch cannot be compacted: {e}"))
}

/// Checks the header and the payload checksum; returns the timestamp and
/// the payload.
fn split_stored(stored: &[u8]) -> std::result::Result<(Timestamp, &[u8]), String> {
    let (h, payload) = stored.split_at_checked(HEADER_LEN).ok_or_else(|| {
        format!(
            "value is {} bytes, shorter than its {HEADER_LEN}-byte header",
            stored.len()
        )
    })?;
    if h.get(..2) != Some(&MAGIC[..]) {
        return Err("value does not start with the Khonsu value magic \"KV\"".to_owned());
    }
    let stored_crc = h.get(20..24).and_then(le_u32).unwrap_or_default();
    let actual_crc = h.get(..20).map(crc32fast::hash).unwrap_or_default();
    if stored_crc != actual_crc {
        return Err(format!(
            "header checksum mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x})"
        ));
    }
    let (version, flags) = (h.get(2).copied(), h.get(3).copied());
    if version != Some(FORMAT_VERSION) || flags != Some(0) {
        return Err(format!(
            "value format {version:?} flags {flags:?} is not format {FORMAT_VERSION}"
        ));
    }
    let ts = h
        .get(4..12)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or_default();
    let len = h.get(12..16).and_then(le_u32).unwrap_or_default() as usize;
    let payload_crc = h.get(16..20).and_then(le_u32).unwrap_or_default();
    if payload.len() != len {
        return Err(format!(
            "payload is {} bytes, its header says {len} (truncated or extended)",
            payload.len()
        ));
    }
    let actual = crc32fast::hash(payload);
    if actual != payload_crc {
        return Err(format!(
            "payload checksum mismatch (stored {payload_crc:#010x}, computed {actual:#010x})"
        ));
    }
    Ok((ts, payload))
}

fn decode_payload(buffer: &mut Buffer) -> std::result::Result<RecordBatch, String> {
    let mut decoder = StreamDecoder::new();
    let batch = decoder
        .decode(buffer)
        .map_err(|e| format!("Arrow IPC payload does not decode: {e}"))?
        .ok_or_else(|| "Arrow IPC payload holds no record batch".to_owned())?;
    match decoder.decode(buffer) {
        Ok(None) if buffer.is_empty() => {}
        Ok(_) => return Err("Arrow IPC payload holds more than one record batch".to_owned()),
        Err(e) => return Err(format!("Arrow IPC payload has trailing garbage: {e}")),
    }
    decoder
        .finish()
        .map_err(|e| format!("Arrow IPC payload ends early: {e}"))?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};

    fn sample() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as _,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn round_trips_with_its_timestamp() {
        let encoded = EncodedValue::encode(&sample()).unwrap();
        let stored = encoded.to_stored(7);
        assert_eq!(stored.len(), encoded.stored_len());
        assert_eq!(decode_stored(&stored).unwrap(), (7, sample()));
        assert_eq!(decode_stored_owned(stored.clone()).unwrap(), (7, sample()));
        // Stamped at encoding: the same bytes, without a copy.
        let stamped = EncodedValue::encode_at(&sample(), 7).unwrap();
        assert!(matches!(stamped.stored(7), Cow::Borrowed(_)));
        assert_eq!(&*stamped.stored(7), stored.as_slice());
        assert!(matches!(stamped.stored(8), Cow::Owned(_)));
        assert_eq!(decode_stored(&stamped.stored(8)).unwrap().0, 8);
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_an_error() {
        let stored = EncodedValue::encode(&sample()).unwrap().to_stored(99);
        for i in 0..stored.len() {
            for bit in 0..8 {
                let mut bad = stored.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode_stored(&bad).is_err(),
                    "byte {i} bit {bit} went unnoticed"
                );
            }
        }
        for len in 0..stored.len() {
            assert!(decode_stored(&stored[..len]).is_err(), "truncated at {len}");
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert!(decode_stored(&longer).is_err());
    }

    #[test]
    fn header_keeps_the_payload_aligned() {
        assert_eq!(HEADER_LEN % 8, 0);
    }
}
