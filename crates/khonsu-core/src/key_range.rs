//! [`KeyRange`]: the ranges a scan accepts, in any key type.

use std::ops::{Bound, Range, RangeBounds, RangeFrom, RangeInclusive, RangeTo, RangeToInclusive};

use crate::Key;

/// A range of keys, as a scan takes it: any `RangeBounds<Key>` (`..`,
/// `Key::from(a)..Key::from(b)`, a `(Bound<Key>, Bound<Key>)` pair), or a
/// range of any type a [`Key`] is built from — `"a".."b"`, `10_u64..20`,
/// `"m"..`, `..=b"z".as_slice()`, `String`s, byte vectors.
///
/// A `u64` range orders numerically, as `u64` keys do (big-endian bytes).
///
/// ```
/// use std::ops::Bound;
/// use khonsu_core::{Key, KeyRange};
///
/// assert_eq!(
///     ("a".."b").into_bounds(),
///     (Bound::Included(Key::from("a")), Bound::Excluded(Key::from("b")))
/// );
/// assert_eq!((10_u64..=20).into_bounds().1, Bound::Included(Key::from(20_u64)));
/// assert_eq!(KeyRange::into_bounds(..), (Bound::Unbounded, Bound::Unbounded));
/// ```
pub trait KeyRange {
    /// The start and end bounds, as keys.
    fn into_bounds(self) -> (Bound<Key>, Bound<Key>);
}

impl<R: RangeBounds<Key>> KeyRange for R {
    fn into_bounds(self) -> (Bound<Key>, Bound<Key>) {
        (self.start_bound().cloned(), self.end_bound().cloned())
    }
}

/// `KeyRange` for every range type over one key type.
macro_rules! key_ranges {
    ($($t:ty),* $(,)?) => {$(
        impl KeyRange for Range<$t> {
            fn into_bounds(self) -> (Bound<Key>, Bound<Key>) {
                (Bound::Included(self.start.into()), Bound::Excluded(self.end.into()))
            }
        }
        impl KeyRange for RangeInclusive<$t> {
            fn into_bounds(self) -> (Bound<Key>, Bound<Key>) {
                let (start, end) = self.into_inner();
                (Bound::Included(start.into()), Bound::Included(end.into()))
            }
        }
        impl KeyRange for RangeFrom<$t> {
            fn into_bounds(self) -> (Bound<Key>, Bound<Key>) {
                (Bound::Included(self.start.into()), Bound::Unbounded)
            }
        }
        impl KeyRange for RangeTo<$t> {
            fn into_bounds(self) -> (Bound<Key>, Bound<Key>) {
                (Bound::Unbounded, Bound::Excluded(self.end.into()))
            }
        }
        impl KeyRange for RangeToInclusive<$t> {
            fn into_bounds(self) -> (Bound<Key>, Bound<Key>) {
                (Bound::Unbounded, Bound::Included(self.end.into()))
            }
        }
        impl KeyRange for (Bound<$t>, Bound<$t>) {
            fn into_bounds(self) -> (Bound<Key>, Bound<Key>) {
                (self.0.map(Key::from), self.1.map(Key::from))
            }
        }
    )*};
}

key_ranges!(&str, String, &[u8], Vec<u8>, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_builds_the_same_bounds() {
        let want = (
            Bound::Included(Key::from("a")),
            Bound::Excluded(Key::from("c")),
        );
        assert_eq!(("a".."c").into_bounds(), want);
        assert_eq!((String::from("a")..String::from("c")).into_bounds(), want);
        assert_eq!((&b"a"[..]..&b"c"[..]).into_bounds(), want);
        assert_eq!((b"a".to_vec()..b"c".to_vec()).into_bounds(), want);
        assert_eq!((Key::from("a")..Key::from("c")).into_bounds(), want);
        assert_eq!(
            (Bound::Included("a"), Bound::Excluded("c")).into_bounds(),
            want
        );
        assert_eq!(
            ("m"..).into_bounds(),
            (Bound::Included(Key::from("m")), Bound::Unbounded)
        );
        assert_eq!(
            (..=5_u64).into_bounds(),
            (Bound::Unbounded, Bound::Included(Key::from(5_u64)))
        );
        assert_eq!(
            (..Key::from("z")).into_bounds(),
            (Bound::Unbounded, Bound::Excluded(Key::from("z")))
        );
    }
}
