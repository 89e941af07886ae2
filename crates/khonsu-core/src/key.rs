//! [`Key`]: the ordered, cheap-to-clone byte string every value is stored under.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Keys up to this many bytes are stored inline, without a heap allocation.
pub const INLINE_KEY_LEN: usize = 22;

/// The longest key a transaction may write: 65,535 bytes.
///
/// The key contract, the same with and without storage and on every
/// store: a written key is 1 to `MAX_KEY_LEN` bytes
/// ([`Key::is_writable`]). fjall holds nothing longer (nor an empty key),
/// and a program that works on one store must work on all of them.
/// Deleting any key is allowed (there is nothing to delete under a key no
/// store can hold).
pub const MAX_KEY_LEN: usize = 65_535;

/// An ordered byte-string key.
///
/// Keys compare byte-wise (lexicographically), exactly like `&[u8]`, so a
/// range scan visits keys in that order. Short keys (up to
/// [`INLINE_KEY_LEN`] bytes, which covers `u64` keys and most composite
/// keys) live inline and cost no allocation; longer keys share one
/// reference-counted buffer, so cloning any key is cheap. Every key also
/// carries its first eight bytes as an integer, so most comparisons (all of
/// them between distinct `u64` keys) are one integer comparison, as cheap
/// as for a `u64`.
///
/// `From<u64>` encodes the number big-endian, so numeric order is key order:
///
/// ```
/// use khonsu_core::Key;
///
/// let a = Key::from(2_u64);
/// let b = Key::from(10_u64);
/// assert!(a < b); // would be false for the decimal strings "2" and "10"
/// assert_eq!(Key::from("user/7").as_bytes(), b"user/7");
/// assert_eq!(Key::from(vec![1_u8, 2]), Key::from(&[1_u8, 2][..]));
/// ```
#[derive(Clone)]
pub struct Key {
    /// The first eight bytes (zero-padded) as a big-endian integer.
    head: u64,
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_LEN],
    },
    Shared(Arc<[u8]>),
}

/// The first eight bytes of `bytes`, zero-padded, as a big-endian integer.
/// Unequal heads order two keys as their bytes do: they differ at a real
/// byte, or one key ends where the other has a non-zero byte.
#[inline]
fn head_of(bytes: &[u8]) -> u64 {
    if let Some(word) = bytes.first_chunk::<8>() {
        return u64::from_be_bytes(*word);
    }
    let mut word = [0_u8; 8];
    for (dst, src) in word.iter_mut().zip(bytes) {
        *dst = *src;
    }
    u64::from_be_bytes(word)
}

impl Key {
    /// Whether a transaction may write under this key: it is 1 to
    /// [`MAX_KEY_LEN`] bytes long.
    ///
    /// ```
    /// use khonsu_core::{Key, MAX_KEY_LEN};
    ///
    /// assert!(Key::from("a").is_writable());
    /// assert!(!Key::from("").is_writable());
    /// assert!(Key::from(vec![7_u8; MAX_KEY_LEN]).is_writable());
    /// assert!(!Key::from(vec![7_u8; MAX_KEY_LEN + 1]).is_writable());
    /// ```
    #[must_use]
    #[inline]
    pub fn is_writable(&self) -> bool {
        (1..=MAX_KEY_LEN).contains(&self.len())
    }

    /// Builds a key by copying `bytes`.
    #[must_use]
    #[inline]
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE_KEY_LEN {
            let mut inline = [0_u8; INLINE_KEY_LEN];
            if let (Ok(word), Some(dst)) =
                (<&[u8; 8]>::try_from(bytes), inline.first_chunk_mut::<8>())
            {
                // `u64` keys: a fixed-size copy, no `memcpy` call.
                *dst = *word;
            } else if let Some(dst) = inline.get_mut(..bytes.len()) {
                dst.copy_from_slice(bytes);
            }
            #[expect(
                clippy::cast_possible_truncation,
                reason = "bounded by INLINE_KEY_LEN above"
            )]
            let len = bytes.len() as u8;
            Self {
                head: head_of(bytes),
                repr: Repr::Inline { len, bytes: inline },
            }
        } else {
            Self::shared(Arc::from(bytes))
        }
    }

    fn shared(bytes: Arc<[u8]>) -> Self {
        Self {
            head: head_of(&bytes),
            repr: Repr::Shared(bytes),
        }
    }

    /// The key's bytes.
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            Repr::Shared(bytes) => bytes,
        }
    }

    /// The key's length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the key is the empty byte string (which is a valid key).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// The smallest key that is greater than every key starting with `self`,
    /// or `None` when no such key exists (the prefix is empty or all `0xff`).
    ///
    /// ```
    /// use khonsu_core::Key;
    /// assert_eq!(Key::from("ab").prefix_successor(), Some(Key::from("ac")));
    /// assert_eq!(Key::from(&[0x01_u8, 0xff][..]).prefix_successor(), Some(Key::from(&[0x02_u8][..])));
    /// assert_eq!(Key::from(&[0xff_u8][..]).prefix_successor(), None);
    /// ```
    #[must_use]
    pub fn prefix_successor(&self) -> Option<Key> {
        let bytes = self.as_bytes();
        let last = bytes.iter().rposition(|b| *b != 0xff)?;
        let mut next = bytes.get(..=last)?.to_vec();
        if let Some(b) = next.last_mut() {
            *b += 1;
        }
        Some(Key::from(next))
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Bytes 6..22 of an inline key as a big-endian integer. Once the heads
/// are equal, bytes 6 and 7 are equal too, so this compares bytes 8..22.
#[inline]
fn inline_tail(bytes: &[u8; INLINE_KEY_LEN]) -> u128 {
    bytes
        .last_chunk::<16>()
        .map_or(0, |c| u128::from_be_bytes(*c))
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head
            && match (&self.repr, &other.repr) {
                (Repr::Inline { len: la, bytes: ba }, Repr::Inline { len: lb, bytes: bb }) => {
                    la == lb && ba == bb
                }
                _ => self.as_bytes() == other.as_bytes(),
            }
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match self.head.cmp(&other.head) {
            Ordering::Equal => self.cmp_after_head(other),
            unequal => unequal,
        }
    }
}

impl Key {
    /// Compares two keys whose heads are equal.
    #[inline]
    fn cmp_after_head(&self, other: &Self) -> Ordering {
        match (&self.repr, &other.repr) {
            // Zero padding sorts first and, on equal padded bytes, the
            // shorter key (a prefix) first: byte order, with no `memcmp`.
            (Repr::Inline { len: la, bytes: ba }, Repr::Inline { len: lb, bytes: bb }) => {
                (inline_tail(ba), la).cmp(&(inline_tail(bb), lb))
            }
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must agree with `<[u8] as Hash>` because `Key: Borrow<[u8]>`.
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => write!(f, "Key({s:?})"),
            _ => {
                f.write_str("Key(0x")?;
                for b in bytes {
                    write!(f, "{b:02x}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// The key's bytes as text, when they are printable UTF-8 (no control characters).
fn as_text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|s| s.chars().all(|c| !c.is_control()))
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("0x")?;
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// The key as text where printable (`acct/1`), as hex otherwise
/// (`0x000000000000002a` for `Key::from(42_u64)`). See [`Key::short`] for
/// messages.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.as_bytes();
        match as_text(bytes) {
            Some(text) => f.write_str(text),
            None => write_hex(f, bytes),
        }
    }
}

/// Characters of a text key [`ShortKey`] shows.
const SHORT_TEXT_CHARS: usize = 48;
/// Bytes of a binary key [`ShortKey`] shows (in hex).
const SHORT_HEX_BYTES: usize = 24;

/// A key displayed for a message: as [`Key`]'s `Display`, cut after 48
/// characters of text or 24 bytes of hex, with how many bytes were left out
/// (`aaaa…(+452 bytes)`).
#[derive(Clone, Copy, Debug)]
pub struct ShortKey<'a>(&'a Key);

impl fmt::Display for ShortKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.as_bytes();
        let shown = if let Some(text) = as_text(bytes) {
            let cut = text
                .char_indices()
                .nth(SHORT_TEXT_CHARS)
                .map_or(text.len(), |(i, _)| i);
            f.write_str(text.get(..cut).unwrap_or(text))?;
            cut
        } else {
            let cut = bytes.len().min(SHORT_HEX_BYTES);
            write_hex(f, bytes.get(..cut).unwrap_or(bytes))?;
            cut
        };
        if shown < bytes.len() {
            write!(f, "…(+{} bytes)", bytes.len() - shown)?;
        }
        Ok(())
    }
}

impl Key {
    /// The key shortened for error messages and logs (see [`ShortKey`]).
    ///
    /// ```
    /// use khonsu_core::Key;
    ///
    /// assert_eq!(Key::from("acct/1").short().to_string(), "acct/1");
    /// let long = Key::from("x".repeat(100));
    /// assert_eq!(long.short().to_string(), format!("{}…(+52 bytes)", "x".repeat(48)));
    /// ```
    #[must_use]
    pub fn short(&self) -> ShortKey<'_> {
        ShortKey(self)
    }
}

impl From<&[u8]> for Key {
    #[inline]
    fn from(bytes: &[u8]) -> Self {
        Self::copy_from_slice(bytes)
    }
}

impl<const N: usize> From<&[u8; N]> for Key {
    fn from(bytes: &[u8; N]) -> Self {
        Self::copy_from_slice(bytes)
    }
}

impl From<Vec<u8>> for Key {
    fn from(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE_KEY_LEN {
            Self::copy_from_slice(&bytes)
        } else {
            Self::shared(Arc::from(bytes))
        }
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Self::copy_from_slice(s.as_bytes())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Self::from(s.into_bytes())
    }
}

impl From<&String> for Key {
    fn from(s: &String) -> Self {
        Self::copy_from_slice(s.as_bytes())
    }
}

impl From<u64> for Key {
    #[inline]
    fn from(n: u64) -> Self {
        let mut bytes = [0_u8; INLINE_KEY_LEN];
        if let Some(dst) = bytes.first_chunk_mut::<8>() {
            *dst = n.to_be_bytes();
        }
        // The head of a big-endian `u64` is the number itself.
        Self {
            head: n,
            repr: Repr::Inline { len: 8, bytes },
        }
    }
}

impl<const N: usize> From<[u8; N]> for Key {
    fn from(bytes: [u8; N]) -> Self {
        Self::copy_from_slice(&bytes)
    }
}

impl From<&Vec<u8>> for Key {
    fn from(bytes: &Vec<u8>) -> Self {
        Self::copy_from_slice(bytes)
    }
}

impl From<&Key> for Key {
    fn from(key: &Key) -> Self {
        key.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_shared_keys_compare_as_bytes() {
        let short = Key::from("abc");
        let long = Key::from("abc".repeat(20));
        assert!(short < long);
        assert_eq!(long.len(), 60);
        assert_eq!(Key::from(long.as_bytes()), long);
        assert_eq!(Key::from(INLINE_KEY_LEN as u64).len(), 8);
        let boundary = vec![7_u8; INLINE_KEY_LEN];
        let over = vec![7_u8; INLINE_KEY_LEN + 1];
        assert!(Key::from(boundary) < Key::from(over));
    }

    #[test]
    fn fast_comparison_agrees_with_byte_order() {
        // Prefixes, zero bytes, lengths around the inline limit, mixed representations.
        let mut samples: Vec<Vec<u8>> =
            vec![vec![], vec![0], vec![0, 0], vec![1], vec![1, 0], vec![0xff]];
        for len in [15, 16, 17, 21, 22, 23, 40] {
            samples.push(vec![7; len]);
            let mut v = vec![7; len];
            if let Some(last) = v.last_mut() {
                *last = 0;
            }
            samples.push(v);
            let mut w = vec![7; len];
            if let Some(first) = w.first_mut() {
                *first = 8;
            }
            samples.push(w);
        }
        for a in &samples {
            for b in &samples {
                let (ka, kb) = (Key::from(a.as_slice()), Key::from(b.as_slice()));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(ka == kb, a == b, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn u64_keys_sort_numerically() {
        let mut keys: Vec<Key> = [300_u64, 2, 10, u64::MAX, 0]
            .into_iter()
            .map(Key::from)
            .collect();
        keys.sort();
        let back: Vec<u64> = keys
            .iter()
            .map(|k| u64::from_be_bytes(k.as_bytes().try_into().unwrap()))
            .collect();
        assert_eq!(back, vec![0, 2, 10, 300, u64::MAX]);
        // The `u64` constructor builds the same key as its bytes do.
        for n in [0_u64, 1, 255, 256, 1 << 40, u64::MAX] {
            let from_bytes = Key::from(&n.to_be_bytes()[..]);
            assert_eq!(Key::from(n), from_bytes);
            assert_eq!(Key::from(n).cmp(&from_bytes), Ordering::Equal);
            assert_eq!(Key::from(n).as_bytes(), n.to_be_bytes());
        }
    }

    #[test]
    fn empty_key_is_valid_and_smallest() {
        let empty = Key::from("");
        assert!(empty.is_empty());
        assert!(empty < Key::from(&[0_u8][..]));
        assert_eq!(empty.prefix_successor(), None);
    }

    #[test]
    fn display_shows_text_or_hex_and_short_cuts_long_keys() {
        assert_eq!(Key::from("a/b").to_string(), "a/b");
        assert_eq!(Key::from(42_u64).to_string(), "0x000000000000002a");
        assert_eq!(Key::from("tab\there").to_string(), "0x7461620968657265");
        assert_eq!(Key::from("").to_string(), "");
        let binary = Key::from(vec![0xAB_u8; 30]);
        assert_eq!(
            binary.short().to_string(),
            format!("0x{}…(+6 bytes)", "ab".repeat(24))
        );
        let multibyte = Key::from("é".repeat(50));
        assert_eq!(
            multibyte.short().to_string(),
            format!("{}…(+4 bytes)", "é".repeat(48))
        );
        assert_eq!(Key::from("short").short().to_string(), "short");
    }

    #[test]
    fn debug_shows_text_or_hex() {
        assert_eq!(format!("{:?}", Key::from("a/b")), "Key(\"a/b\")");
        assert_eq!(format!("{:?}", Key::from(1_u64)), "Key(0x0000000000000001)");
    }
}
