//! The mixing buffer: rows (their identities, and per hook their values) filled from forward
//! passes, shuffled with a seeded generator, half handed out and half kept for the next fill.

use std::collections::BTreeMap;

use crate::train::SplitMix64;

/// A forward batch kept during a replay: its first window index and its windows' tokens.
pub(super) type ReplayChunks = BTreeMap<u64, Vec<Vec<u32>>>;

/// The mixing buffer: row identities and, per hook, row-major values.
#[derive(Debug)]
pub(super) struct Mixer {
    pub(super) capacity: usize,
    pub(super) dims: Vec<usize>,
    /// Row identity `window · context_size + position`, one per buffered row.
    pub(super) ids: Vec<u64>,
    /// Per hook, `ids.len() × d` values (empty while replaying).
    pub(super) rows: Vec<Vec<f32>>,
    /// Rows `[cursor, out_end)` are to be handed out; `[out_end, len)` stay for the next fill.
    pub(super) cursor: usize,
    pub(super) out_end: usize,
    pub(super) peak: usize,
}

impl Mixer {
    pub(super) fn new(capacity: usize, dims: &[usize]) -> Self {
        Mixer {
            capacity,
            dims: dims.to_vec(),
            ids: Vec::with_capacity(capacity),
            rows: dims
                .iter()
                .map(|&d| Vec::with_capacity(capacity * d))
                .collect(),
            cursor: 0,
            out_end: 0,
            peak: 0,
        }
    }

    /// Rows buffered.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Drops the rows handed out, keeping the retained ones at the front.
    pub(super) fn compact(&mut self, with_rows: bool) {
        let h = self.out_end;
        self.ids.drain(..h);
        if with_rows {
            for (buf, &d) in self.rows.iter_mut().zip(&self.dims) {
                buf.drain(..h * d);
            }
        }
        self.cursor = 0;
        self.out_end = 0;
    }

    /// Fisher–Yates over the rows (ids and values alike).
    pub(super) fn shuffle(&mut self, rng: &mut SplitMix64, with_rows: bool) {
        for i in (1..self.ids.len()).rev() {
            let j = rng.below(i + 1);
            if i == j {
                continue;
            }
            self.ids.swap(i, j);
            if with_rows {
                for (buf, &d) in self.rows.iter_mut().zip(&self.dims) {
                    let (lo, hi) = buf.split_at_mut(i * d);
                    lo[j * d..j * d + d].swap_with_slice(&mut hi[..d]);
                }
            }
        }
    }
}
