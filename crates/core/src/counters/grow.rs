//! [`Grow`]: a list that entries are appended to while others read it, with no lock on reads:
//! the entries a store was built with sit in one slice, and entries added at run time (a key
//! made after start) in segments that never move, each twice as large as the one before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Entries in the first segment; segment `k` holds `FIRST << k`.
const FIRST: usize = 32;
/// Segments: room for `FIRST · (2^SEGMENTS − 1)` entries added, more than a `u32` counts.
const SEGMENTS: usize = 28;

/// An append-only list read without locks. Entries are never removed or moved, so a reference
/// to one stays valid as long as the list.
pub struct Grow<T> {
    base: Box<[T]>,
    segments: [OnceLock<Box<[OnceLock<T>]>>; SEGMENTS],
    /// Entries added after `base`.
    added: AtomicUsize,
    /// Serialises additions (never taken by a read).
    adding: Mutex<()>,
}

/// Where added entry `i` lives: its segment and its place there.
fn locate(i: usize) -> (usize, usize) {
    let k = (i / FIRST + 1).ilog2() as usize;
    (k, i - FIRST * ((1 << k) - 1))
}

impl<T> Grow<T> {
    /// A list holding `base`, to which more may be added.
    pub fn new(base: impl IntoIterator<Item = T>) -> Grow<T> {
        Grow {
            base: base.into_iter().collect(),
            segments: std::array::from_fn(|_| OnceLock::new()),
            added: AtomicUsize::new(0),
            adding: Mutex::new(()),
        }
    }

    /// Entry `i`, if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        match self.base.get(i) {
            Some(entry) => Some(entry),
            None => self.get_added(i - self.base.len()),
        }
    }

    fn get_added(&self, i: usize) -> Option<&T> {
        let (k, at) = locate(i);
        self.segments.get(k)?.get()?.get(at)?.get()
    }

    /// Entries now (more may come).
    pub fn len(&self) -> usize {
        self.base.len() + self.added.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `entry` and returns its index; `None` when the list is full (billions of
    /// entries).
    pub fn push(&self, entry: T) -> Option<usize> {
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let i = self.added.load(Ordering::Acquire);
        let (k, at) = locate(i);
        let segment = self.segments.get(k)?.get_or_init(|| (0..FIRST << k).map(|_| OnceLock::new()).collect());
        segment.get(at)?.set(entry).ok()?;
        self.added.store(i + 1, Ordering::Release);
        Some(self.base.len() + i)
    }

    /// Every entry, with its index, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        (0..self.len()).filter_map(|i| self.get(i).map(|e| (i, e)))
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Grow<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(_, e)| e)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_indices_without_gaps() {
        let mut expected = (0, 0);
        for i in 0..10_000 {
            assert_eq!(locate(i), expected, "{i}");
            expected.1 += 1;
            if expected.1 == FIRST << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
        let (k, _) = locate(u32::MAX as usize);
        assert!(k < SEGMENTS);
    }

    #[test]
    fn entries_added_while_others_read_are_found_where_they_were_put() {
        let list = Grow::new([10usize, 11]);
        assert_eq!((list.len(), list.get(1), list.get(2)), (2, Some(&11), None));
        std::thread::scope(|s| {
            for t in 0..4 {
                let list = &list;
                s.spawn(move || {
                    for n in 0..500 {
                        let value = 1_000_000 * (t + 1) + n;
                        let i = list.push(value).expect("room");
                        assert_eq!(list.get(i), Some(&value));
                        // Whatever is there now reads back whole.
                        for j in 0..list.len() {
                            assert!(list.get(j).is_some(), "{j} of {}", list.len());
                        }
                    }
                });
            }
        });
        assert_eq!(list.len(), 2 + 4 * 500);
        let mut values: Vec<usize> = list.iter().map(|(_, v)| *v).collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), 2 + 4 * 500);
    }
}
