//! [`KeyBuilder`]: composite keys whose byte order is the order of their parts.

use crate::Key;

/// Escapes a zero byte inside a variable-length part.
const ESCAPE: u8 = 0xFF;
/// Ends a variable-length part (after a zero byte).
const TERMINATOR: u8 = 0x01;

/// Builds a composite [`Key`] from typed parts, so that keys order as the tuples of their parts
/// do: `Key::builder().str("user").u64(42).str("features").build()`.
///
/// For two keys built from the same sequence of part types, byte order (the order of scans) is
/// the lexicographic order of the parts: strings and byte strings compare as byte strings
/// (`("a", "z") < ("ab", "a")`), integers numerically (`i64` too: negative before positive).
///
/// Encoding, part by part:
///
/// | part | bytes |
/// |---|---|
/// | `str`, `bytes` | the bytes, each `0x00` written `0x00 0xFF`, then `0x00 0x01` |
/// | `u64`, `u32` | big-endian, 8 or 4 bytes |
/// | `i64` | big-endian with the sign bit flipped, 8 bytes |
///
/// A partly built key is a prefix of every key that extends it, so
/// `Transaction::scan_prefix` of `Key::builder().str("user").u64(42)` finds
/// every key of user 42. (A prefix of a *string
/// part* is not: `str("us")` ends with a terminator.)
///
/// ```
/// use khonsu_core::Key;
///
/// let key = |user: &str, day: u32| Key::builder().str(user).u32(day).build();
/// assert!(key("ann", 9) < key("ann", 10));    // numeric, not textual
/// assert!(key("ann", 99) < key("anna", 1));  // whole parts compare first
/// let ann = Key::builder().str("ann").build();
/// assert!(key("ann", 9).as_bytes().starts_with(ann.as_bytes()));
/// assert!(Key::builder().i64(-1).build() < Key::builder().i64(0).build());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[must_use]
pub struct KeyBuilder {
    bytes: Vec<u8>,
}

impl Key {
    /// An empty [`KeyBuilder`].
    pub fn builder() -> KeyBuilder {
        KeyBuilder::default()
    }
}

impl KeyBuilder {
    /// Adds a string part.
    pub fn str(self, part: &str) -> Self {
        self.bytes(part.as_bytes())
    }

    /// Adds a byte-string part.
    pub fn bytes(mut self, part: &[u8]) -> Self {
        self.bytes.reserve(part.len() + 2);
        for &byte in part {
            self.bytes.push(byte);
            if byte == 0 {
                self.bytes.push(ESCAPE);
            }
        }
        self.bytes.extend_from_slice(&[0, TERMINATOR]);
        self
    }

    /// Adds a `u64` part (8 bytes, big-endian).
    pub fn u64(mut self, part: u64) -> Self {
        self.bytes.extend_from_slice(&part.to_be_bytes());
        self
    }

    /// Adds a `u32` part (4 bytes, big-endian).
    pub fn u32(mut self, part: u32) -> Self {
        self.bytes.extend_from_slice(&part.to_be_bytes());
        self
    }

    /// Adds an `i64` part (8 bytes, big-endian, sign bit flipped).
    pub fn i64(mut self, part: i64) -> Self {
        self.bytes
            .extend_from_slice(&(part.cast_unsigned() ^ (1 << 63)).to_be_bytes());
        self
    }

    /// The bytes so far.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key.
    #[must_use]
    pub fn build(self) -> Key {
        Key::from(self.bytes)
    }
}

impl AsRef<[u8]> for KeyBuilder {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<KeyBuilder> for Key {
    fn from(builder: KeyBuilder) -> Self {
        builder.build()
    }
}

impl From<&KeyBuilder> for Key {
    fn from(builder: &KeyBuilder) -> Self {
        Key::copy_from_slice(&builder.bytes)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(parts: &(Vec<u8>, u64, i64, String)) -> Key {
        Key::builder()
            .bytes(&parts.0)
            .u64(parts.1)
            .i64(parts.2)
            .str(&parts.3)
            .build()
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // Zeros, 0x01 and 0xFF are the encoding's own bytes: draw them often.
        proptest::collection::vec(
            prop_oneof![Just(0_u8), Just(1_u8), Just(0xFF_u8), any::<u8>()],
            0..6,
        )
    }

    proptest! {
        #[test]
        fn byte_order_is_tuple_order(
            a in (bytes(), any::<u64>(), any::<i64>(), "[a-c\\x00]{0,4}"),
            b in (bytes(), any::<u64>(), any::<i64>(), "[a-c\\x00]{0,4}"),
        ) {
            prop_assert_eq!(key(&a).cmp(&key(&b)), a.cmp(&b));
        }

        #[test]
        fn a_partial_key_prefixes_its_extensions(part in bytes(), n in any::<u64>(), tail in bytes()) {
            let partial = Key::builder().bytes(&part).u64(n);
            let full = partial.clone().bytes(&tail).build();
            prop_assert!(full.as_bytes().starts_with(partial.as_bytes()));
        }
    }

    #[test]
    fn parts_encode_as_documented() {
        assert_eq!(
            Key::builder().str("a\0").u32(1).build().as_bytes(),
            [b'a', 0, 0xFF, 0, 1, 0, 0, 0, 1]
        );
        assert_eq!(
            Key::builder().i64(0).build().as_bytes(),
            [0x80, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Key::from(&Key::builder().u64(7)), Key::from(7_u64));
    }
}
