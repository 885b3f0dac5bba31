//! The byte-level BPE model: a pre-token's bytes → byte ids → merges applied lowest rank first
//! (leftmost on ties), which is what the priority queue of `tokenizers` computes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

/// Id of a byte missing from the vocabulary (its char is dropped, as `tokenizers` does without
/// an unknown token).
pub const NO_ID: u32 = u32::MAX;

/// Pieces up to this many bytes are cached.
const CACHE_MAX_PIECE: usize = 64;
/// The cache is cleared when it holds this many pieces.
const CACHE_MAX_ENTRIES: usize = 1 << 20;
/// Pieces longer than this merge with a heap (O(n log n)) instead of a scan (O(n²)).
const SCAN_MAX: usize = 48;

#[inline(always)]
fn pair_key(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

/// Merge table and byte table of a byte-level BPE model.
#[derive(Debug)]
pub struct Bpe {
    byte_ids: [u32; 256],
    /// `(left, right)` → `rank << 32 | merged id`.
    merges: FxHashMap<u64, u64>,
    /// Byte strings of the vocabulary, for `ignore_merges`.
    vocab_bytes: Option<FxHashMap<Box<[u8]>, u32>>,
}

/// Per-thread memo of pre-token bytes → ids, and scratch space for merging.
///
/// Pieces of 2 to 15 bytes (nearly all of them) live in [`ShortTable`], keyed by the piece
/// packed into a `u128`; longer ones (up to [`CACHE_MAX_PIECE`]) in a map keyed by their bytes.
pub struct PieceCache {
    hot: HotTable,
    short: ShortTable,
    long: FxHashMap<Box<[u8]>, (u32, u32)>,
    arena: Vec<u32>,
    syms: Vec<u32>,
    ranks: Vec<u32>,
}

impl Default for PieceCache {
    fn default() -> Self {
        Self {
            hot: HotTable::new(),
            short: ShortTable::with_capacity(1 << 14),
            long: FxHashMap::default(),
            arena: Vec::new(),
            syms: Vec::new(),
            ranks: Vec::new(),
        }
    }
}

/// One slot of [`ShortTable`]: a packed key (0: empty) and the piece's ids. `meta` is the number
/// of ids when they fit in `ids` (1 to 3), else `INLINE_SPILL | count` with `ids[0]` the start of
/// the ids in the arena. 32 bytes: two slots per cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    key: u128,
    ids: [u32; 3],
    meta: u32,
}

const INLINE_SPILL: u32 = 1 << 31;

/// Slots of [`HotTable`] (16 bytes each: 1 MiB, within a core's L2 cache).
const HOT_SLOTS: usize = 1 << 16;

/// [`HotSlot::ids`]' second id of a piece of one id.
const HOT_NONE: u32 = u32::MAX;
/// [`HotSlot::key`] of an empty slot (no piece has it: see [`hot_key`]).
const HOT_EMPTY: u64 = u64::MAX;

/// `HOT_FILL[n]`: the bits of a `u64` above its first `n` bytes (1 <= n <= 8).
static HOT_FILL: [u64; 9] = {
    let mut t = [0u64; 9];
    let mut n = 1;
    while n < 8 {
        t[n] = u64::MAX << (8 * n);
        n += 1;
    }
    t
};

/// The [`HotTable`] key of a piece of `n` bytes (1 <= n <= 8) whose bytes, little-endian, are
/// the low `n` bytes of `word`: those bytes with every byte above them `0xFF`. A piece holds no
/// `0xFF` byte (UTF-8 has none; [`HotTable::offer`] and [`has_ff`] keep other bytes out), so
/// the key gives the bytes and the length at once, and no key is [`HOT_EMPTY`].
#[inline(always)]
fn hot_key(word: u64, n: usize) -> u64 {
    word | HOT_FILL[n]
}

/// Whether one of the low `n` bytes of `word` is `0xFF` (1 <= n <= 8).
#[inline(always)]
fn has_ff(word: u64, n: usize) -> bool {
    // Zero bytes of `x`: the `0xFF` bytes among the low `n` of `word`.
    let x = !word | HOT_FILL[n];
    x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 != 0
}

/// One slot of [`HotTable`]: a piece's [`hot_key`] (or [`HOT_EMPTY`]) and its ids, the first
/// in the low half, the second (or [`HOT_NONE`]) in the high half: one 8-byte copy writes
/// both.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct HotSlot {
    key: u64,
    ids: u64,
}

/// The two slots of [`HotTable`] a key may take (half a cache line).
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct HotPair([HotSlot; 2]);

/// A two-way set-associative table of the short pieces that encode to one or two ids (nearly
/// all pieces of real text): one multiply to find the pair, a compare of the key with each
/// slot to hit. A piece whose pair is full stays in [`ShortTable`] only.
struct HotTable {
    pairs: Box<[HotPair; HOT_SLOTS / 2]>,
}

const HOT_EMPTY_PAIR: HotPair = HotPair(
    [HotSlot {
        key: HOT_EMPTY,
        ids: 0,
    }; 2],
);

impl HotTable {
    fn new() -> Self {
        Self {
            pairs: vec![HOT_EMPTY_PAIR; HOT_SLOTS / 2]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("HOT_SLOTS / 2 pairs")),
        }
    }

    #[inline(always)]
    fn index(key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (65 - HOT_SLOTS.trailing_zeros())) as usize
    }

    /// The pair of `key` (of which it may hold the piece).
    #[inline(always)]
    fn pair(&self, key: u64) -> &HotPair {
        &self.pairs[Self::index(key) % (HOT_SLOTS / 2)]
    }

    /// The ids of the piece `key` as [`HotSlot::ids`] has them, if it is there.
    #[inline(always)]
    fn find(&self, key: u64) -> Option<u64> {
        let [a, b] = &self.pair(key).0;
        if a.key == key {
            Some(a.ids)
        } else if b.key == key {
            Some(b.ids)
        } else {
            None
        }
    }

    /// The ids of the piece `key` (first, second or [`HOT_NONE`]), if it is there.
    #[inline(always)]
    fn get(&self, key: u64) -> Option<(u32, u32)> {
        self.find(key).map(|ids| (ids as u32, (ids >> 32) as u32))
    }

    /// Remember that the piece of `n` bytes in the low bytes of `word` has the ids `ids`,
    /// unless its pair is full, they are not one or two, or it holds a `0xFF` byte.
    #[inline]
    fn offer(&mut self, word: u64, n: usize, ids: &[u32]) {
        let (first, second) = match *ids {
            [a] => (a, HOT_NONE),
            [a, b] if b != HOT_NONE => (a, b),
            _ => return,
        };
        if has_ff(word, n) {
            return;
        }
        let key = hot_key(word, n);
        let pair = &mut self.pairs[Self::index(key) % (HOT_SLOTS / 2)];
        if let Some(slot) = pair.0.iter_mut().find(|s| s.key == HOT_EMPTY) {
            *slot = HotSlot {
                key,
                ids: first as u64 | (second as u64) << 32,
            };
        }
    }

    fn clear(&mut self) {
        self.pairs.fill(HOT_EMPTY_PAIR);
    }
}

/// The bytes of piece `b[at..at + n]` (1 <= n <= 8) as a little-endian `u64`, high bytes zero:
/// one unaligned load when the 8 bytes from `at` are in `b`.
#[inline(always)]
fn load_u64(b: &[u8], at: usize, n: usize) -> u64 {
    debug_assert!((1..=8).contains(&n));
    let mask = u64::MAX >> (64 - 8 * n);
    match b.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")) & mask,
        None => load_u64_tail(&b[at..at + n]),
    }
}

/// [`load_u64`] near the end of the text, byte by byte.
#[cold]
#[inline(never)]
fn load_u64_tail(piece: &[u8]) -> u64 {
    let mut v = 0u64;
    for (k, &x) in piece.iter().enumerate() {
        v |= (x as u64) << (8 * k);
    }
    v
}

/// Open addressing with linear probing over a power-of-two slot array, at most half full.
struct ShortTable {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

#[inline(always)]
fn key_hash(key: u128) -> u64 {
    let lo = key as u64;
    let hi = (key >> 64) as u64;
    (lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi.rotate_left(23))
        .wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl ShortTable {
    fn with_capacity(slots: usize) -> Self {
        Self {
            slots: vec![Slot::default(); slots],
            mask: slots - 1,
            len: 0,
        }
    }

    fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.len = 0;
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        (hash >> 32) as usize & self.mask
    }

    #[inline(always)]
    fn get(&self, key: u128, hash: u64) -> Option<&Slot> {
        let mut i = self.home(hash);
        loop {
            let slot = &self.slots[i];
            if slot.key == key {
                return Some(slot);
            }
            if slot.key == 0 {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn insert(&mut self, key: u128, hash: u64, slot: Slot) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut i = self.home(hash);
        while self.slots[i].key != 0 {
            if self.slots[i].key == key {
                return;
            }
            i = (i + 1) & self.mask;
        }
        self.slots[i] = Slot { key, ..slot };
        self.len += 1;
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, Self::with_capacity(self.slots.len() * 2));
        for slot in old.slots.into_iter().filter(|s| s.key != 0) {
            let mut i = self.home(key_hash(slot.key));
            while self.slots[i].key != 0 {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = slot;
            self.len += 1;
        }
    }
}

impl PieceCache {
    pub fn clear(&mut self) {
        self.hot.clear();
        self.short.clear();
        self.long.clear();
        self.arena.clear();
    }

    fn len(&self) -> usize {
        self.short.len + self.long.len()
    }
}

/// The key of piece `b[at..at + n]` (2 <= n <= 15), with one unaligned load when the 16 bytes
/// from `at` are in `b`.
#[inline(always)]
fn load_key(b: &[u8], at: usize, n: usize) -> u128 {
    debug_assert!((2..=15).contains(&n));
    match b.get(at..at + 16) {
        Some(w) => {
            let v = u128::from_le_bytes(w.try_into().expect("16 bytes"));
            (v & ((1u128 << (8 * n)) - 1)) | (n as u128) << 120
        }
        None => short_key(&b[at..at + n]).expect("short piece"),
    }
}

/// A piece of at most 15 bytes packed with its length: bytes little-endian in bits 0..120, the
/// length in bits 120..128 (so "a" and "a\0" differ). Loads overlap instead of copying byte
/// by byte.
#[inline(always)]
fn short_key(piece: &[u8]) -> Option<u128> {
    let n = piece.len();
    if n > 15 {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(piece[i..i + 8].try_into().unwrap());
    let u32_at = |i: usize| u32::from_le_bytes(piece[i..i + 4].try_into().unwrap()) as u64;
    let packed: u128 = if n >= 8 {
        let lo = u64_at(0);
        // The last 8 bytes, less the (16 - n) that `lo` already holds.
        let hi = if n > 8 {
            u64_at(n - 8) >> (8 * (16 - n))
        } else {
            0
        };
        lo as u128 | (hi as u128) << 64
    } else if n >= 4 {
        let lo = u32_at(0);
        let hi = if n > 4 {
            u32_at(n - 4) >> (8 * (8 - n))
        } else {
            0
        };
        (lo | hi << 32) as u128
    } else {
        let mut v = 0u128;
        for (k, &b) in piece.iter().enumerate() {
            v |= (b as u128) << (8 * k);
        }
        v
    };
    Some(packed | (n as u128) << 120)
}

/// Clear the cache when it is full (its memory stays bounded on any input).
fn make_room(cache: &mut PieceCache) {
    if cache.len() >= CACHE_MAX_ENTRIES || cache.arena.len() > (u32::MAX as usize) / 4 {
        cache.clear();
    }
}

impl Bpe {
    /// `byte_ids[b]`: the id of the one-byte token for `b` (or [`NO_ID`]); `merges`: pairs of ids
    /// in rank order with the id of their concatenation; `vocab_bytes`: given when the model
    /// ignores merges for pre-tokens that are already in the vocabulary.
    pub fn new(
        byte_ids: [u32; 256],
        merges: impl IntoIterator<Item = (u32, u32, u32)>,
        vocab_bytes: Option<FxHashMap<Box<[u8]>, u32>>,
    ) -> Self {
        let mut map = FxHashMap::default();
        for (rank, (a, b, new)) in merges.into_iter().enumerate() {
            // Later duplicates win, as in `tokenizers` (its map is built by `collect`).
            map.insert(pair_key(a, b), ((rank as u64) << 32) | new as u64);
        }
        Self {
            byte_ids,
            merges: map,
            vocab_bytes,
        }
    }

    #[inline(always)]
    fn merge_of(&self, a: u32, b: u32) -> Option<(u32, u32)> {
        self.merges
            .get(&pair_key(a, b))
            .map(|&v| ((v >> 32) as u32, v as u32))
    }

    #[inline(always)]
    fn rank(&self, a: u32, b: u32) -> u32 {
        match self.merges.get(&pair_key(a, b)) {
            Some(&v) => (v >> 32) as u32,
            None => u32::MAX,
        }
    }

    /// Append the ids of one pre-token (its raw bytes) to `out`.
    #[inline]
    pub fn encode_piece(&self, piece: &[u8], cache: &mut PieceCache, out: &mut Vec<u32>) {
        self.encode_range(piece, 0, piece.len(), cache, out);
    }

    #[inline(always)]
    fn encode_byte(&self, b: u8, out: &mut Vec<u32>) {
        let id = self.byte_ids[b as usize];
        if id != NO_ID {
            out.push(id);
        }
    }

    /// Append the ids of the piece `text[a..b]` to `out`. Pieces of 1 to 8 bytes of one or two
    /// tokens (nearly all pieces of real text) are answered by [`HotTable`] inline; the rest go
    /// through the cache and the merge, out of line.
    #[inline(always)]
    pub fn encode_range(
        &self,
        text: &[u8],
        a: usize,
        b: usize,
        cache: &mut PieceCache,
        out: &mut Vec<u32>,
    ) {
        let n = b - a;
        if n.wrapping_sub(1) < 8 {
            let word = load_u64(text, a, n);
            if !has_ff(word, n) {
                if let Some((first, second)) = cache.hot.get(hot_key(word, n)) {
                    out.push(first);
                    if second != HOT_NONE {
                        out.push(second);
                    }
                    return;
                }
            }
        }
        self.encode_range_cold(text, a, b, cache, out);
    }

    /// Append the ids of the pieces of `text` (UTF-8) that start at the set bits of `starts`
    /// (bit `k`: byte `base + k`; bit 0 set), each ending at the next set bit; the piece at the
    /// last set bit is not encoded. The loop of [`encode_range`](Self::encode_range) with the
    /// output's end and the text's bounds checked once per piece, in registers.
    #[inline(always)]
    pub(crate) fn encode_starts(
        &self,
        text: &[u8],
        base: usize,
        mut starts: u64,
        cache: &mut PieceCache,
        out: &mut Vec<u32>,
    ) {
        debug_assert!(starts & 1 != 0);
        // A piece at `a < limit` has 8 bytes to load.
        let limit = text.len().saturating_sub(7);
        let mut len = out.len();
        let mut room = out.capacity() - len;
        let mut at = out.as_mut_ptr();
        let mut k = 0usize;
        starts &= starts - 1;
        while starts != 0 {
            let e = starts.trailing_zeros() as usize;
            starts &= starts - 1;
            let a = base + k;
            let n = e - k;
            k = e;
            if n.wrapping_sub(1) < 8 && a < limit && room >= 2 {
                // SAFETY: `a + 8 <= text.len()`.
                let word =
                    u64::from_le(unsafe { text.as_ptr().add(a).cast::<u64>().read_unaligned() });
                if let Some(ids) = cache.hot.find(hot_key(word, n)) {
                    let count = 1 + (ids >> 32 != HOT_NONE as u64) as usize;
                    // SAFETY: two ids past `len` are allocated (`room >= 2`); the `count`
                    // written first become elements when the length is set.
                    unsafe {
                        at.add(len)
                            .cast::<[u32; 2]>()
                            .write_unaligned([ids as u32, (ids >> 32) as u32]);
                    }
                    len += count;
                    room -= count;
                    continue;
                }
            }
            // SAFETY: the ids up to `len` were written above or by earlier calls.
            unsafe { out.set_len(len) };
            self.encode_range_cold(text, a, a + n, cache, out);
            if out.capacity() - out.len() < 2 {
                out.reserve(64);
            }
            len = out.len();
            room = out.capacity() - len;
            at = out.as_mut_ptr();
        }
        // SAFETY: as above.
        unsafe { out.set_len(len) };
    }

    #[inline(never)]
    fn encode_range_cold(
        &self,
        text: &[u8],
        a: usize,
        b: usize,
        cache: &mut PieceCache,
        out: &mut Vec<u32>,
    ) {
        let piece = &text[a..b];
        let n = piece.len();
        let first = out.len();
        match n {
            0 => return,
            1 => self.encode_byte(piece[0], out),
            2..=15 => {
                let key = load_key(text, a, n);
                self.encode_short(piece, key, key_hash(key), cache, out);
            }
            _ => self.encode_long(piece, cache, out),
        }
        if n <= 8 {
            cache.hot.offer(load_u64(text, a, n), n, &out[first..]);
        }
    }

    #[inline(always)]
    fn encode_short(
        &self,
        piece: &[u8],
        key: u128,
        hash: u64,
        cache: &mut PieceCache,
        out: &mut Vec<u32>,
    ) {
        if let Some(slot) = cache.short.get(key, hash) {
            if slot.meta & INLINE_SPILL == 0 {
                let n = slot.meta as usize;
                let len = out.len();
                if out.capacity() - len >= 3 {
                    // SAFETY: three slots past `len` are allocated; the `n <= 3` ids written
                    // first become the vector's new elements.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            slot.ids.as_ptr(),
                            out.as_mut_ptr().add(len),
                            3,
                        );
                        out.set_len(len + n);
                    }
                } else {
                    out.extend_from_slice(&slot.ids[..n]);
                }
            } else {
                let at = slot.ids[0] as usize;
                let n = (slot.meta & !INLINE_SPILL) as usize;
                out.extend_from_slice(&cache.arena[at..at + n]);
            }
            return;
        }
        let first = out.len();
        self.encode_uncached(piece, cache, out);
        make_room(cache);
        let ids = &out[first..];
        let mut slot = Slot::default();
        if ids.len() <= 3 {
            slot.ids[..ids.len()].copy_from_slice(ids);
            slot.meta = ids.len() as u32;
        } else {
            slot.ids[0] = cache.arena.len() as u32;
            slot.meta = INLINE_SPILL | ids.len() as u32;
            cache.arena.extend_from_slice(ids);
        }
        cache.short.insert(key, hash, slot);
    }

    fn encode_long(&self, piece: &[u8], cache: &mut PieceCache, out: &mut Vec<u32>) {
        if piece.len() > CACHE_MAX_PIECE {
            self.encode_uncached(piece, cache, out);
            return;
        }
        if let Some(&(at, len)) = cache.long.get(piece) {
            out.extend_from_slice(&cache.arena[at as usize..(at + len) as usize]);
            return;
        }
        let first = out.len();
        self.encode_uncached(piece, cache, out);
        make_room(cache);
        let at = cache.arena.len() as u32;
        cache.arena.extend_from_slice(&out[first..]);
        cache
            .long
            .insert(piece.into(), (at, (out.len() - first) as u32));
    }

    fn encode_uncached(&self, piece: &[u8], cache: &mut PieceCache, out: &mut Vec<u32>) {
        if let Some(vocab) = &self.vocab_bytes {
            if let Some(&id) = vocab.get(piece) {
                out.push(id);
                return;
            }
        }
        let mut syms = std::mem::take(&mut cache.syms);
        syms.clear();
        syms.extend(
            piece
                .iter()
                .map(|&b| self.byte_ids[b as usize])
                .filter(|&id| id != NO_ID),
        );
        if syms.len() <= SCAN_MAX {
            self.merge_scan(&mut syms, &mut cache.ranks);
            out.extend_from_slice(&syms);
        } else {
            self.merge_heap(&syms, out);
        }
        cache.syms = syms;
    }

    /// Merge by repeated scans for the lowest-ranked adjacent pair (short pieces).
    fn merge_scan(&self, syms: &mut Vec<u32>, ranks: &mut Vec<u32>) {
        if syms.len() < 2 {
            return;
        }
        ranks.clear();
        ranks.extend(syms.windows(2).map(|w| self.rank(w[0], w[1])));
        loop {
            let mut best = u32::MAX;
            let mut at = 0;
            for (i, &r) in ranks.iter().enumerate() {
                if r < best {
                    best = r;
                    at = i;
                }
            }
            if best == u32::MAX {
                break;
            }
            let (_, new) = self
                .merge_of(syms[at], syms[at + 1])
                .expect("ranked pair is a merge");
            syms[at] = new;
            syms.remove(at + 1);
            ranks.remove(at);
            if at > 0 {
                ranks[at - 1] = self.rank(syms[at - 1], new);
            }
            if at < ranks.len() {
                ranks[at] = self.rank(new, syms[at + 1]);
            }
        }
    }

    /// Merge with a priority queue of `(rank, position)` over a linked list (long pieces).
    fn merge_heap(&self, ids: &[u32], out: &mut Vec<u32>) {
        let n = ids.len();
        let mut sym = ids.to_vec();
        let mut alive = vec![true; n];
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n.saturating_sub(1) {
            if let Some((rank, new)) = self.merge_of(sym[i], sym[i + 1]) {
                heap.push(Reverse((rank, i, new)));
            }
        }
        while let Some(Reverse((_, pos, new))) = heap.pop() {
            if !alive[pos] || next[pos] >= n {
                continue;
            }
            let right = next[pos];
            match self.merge_of(sym[pos], sym[right]) {
                Some((_, id)) if id == new => {}
                _ => continue,
            }
            sym[pos] = new;
            alive[right] = false;
            next[pos] = next[right];
            if next[pos] < n {
                prev[next[pos]] = pos;
            }
            let p = prev[pos];
            if p < n {
                if let Some((rank, m)) = self.merge_of(sym[p], new) {
                    heap.push(Reverse((rank, p, m)));
                }
            }
            if next[pos] < n {
                if let Some((rank, m)) = self.merge_of(new, sym[next[pos]]) {
                    heap.push(Reverse((rank, pos, m)));
                }
            }
        }
        out.extend((0..n).filter(|&i| alive[i]).map(|i| sym[i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy model over bytes a, b, c (ids 0, 1, 2) with merges ab(3), bc(4), a+bc(5), ab+c(6).
    fn toy() -> Bpe {
        let mut byte_ids = [NO_ID; 256];
        byte_ids[b'a' as usize] = 0;
        byte_ids[b'b' as usize] = 1;
        byte_ids[b'c' as usize] = 2;
        Bpe::new(
            byte_ids,
            [(1, 2, 4), (0, 1, 3), (0, 4, 5), (3, 2, 6), (0, 0, 7)],
            None,
        )
    }

    fn enc(bpe: &Bpe, s: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        bpe.encode_piece(s, &mut PieceCache::default(), &mut out);
        out
    }

    #[test]
    fn lowest_rank_first_leftmost_on_ties() {
        let bpe = toy();
        assert_eq!(enc(&bpe, b"abc"), [5]); // bc first (rank 0), then a+bc
        assert_eq!(enc(&bpe, b"ab"), [3]);
        assert_eq!(enc(&bpe, b"aaa"), [7, 0]);
        assert_eq!(enc(&bpe, b"aaaa"), [7, 7]);
        assert_eq!(enc(&bpe, b"axb"), [3]); // x is not in the vocabulary: dropped, a b merge
    }

    #[test]
    fn scan_and_heap_agree() {
        let bpe = toy();
        let mut state = 12345u64;
        for len in 2..200 {
            let word: Vec<u32> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) % 3) as u32
                })
                .collect();
            let mut scanned = word.clone();
            bpe.merge_scan(&mut scanned, &mut Vec::new());
            let mut heaped = Vec::new();
            bpe.merge_heap(&word, &mut heaped);
            assert_eq!(scanned, heaped);
        }
    }

    #[test]
    fn short_keys_pack_bytes_and_length() {
        for n in 0..=15usize {
            let piece: Vec<u8> = (1..=n as u8).collect();
            let mut buf = [0u8; 16];
            buf[..n].copy_from_slice(&piece);
            buf[15] = n as u8;
            assert_eq!(
                short_key(&piece),
                Some(u128::from_le_bytes(buf)),
                "length {n}"
            );
        }
        assert_ne!(short_key(b"a"), short_key(b"a\0"));
        assert_eq!(short_key(&[7; 16]), None);
    }

    #[test]
    fn cache_hits_equal_fresh_encodes() {
        let bpe = toy();
        let mut cache = PieceCache::default();
        let mut state = 99u64;
        let words: Vec<Vec<u8>> = (0..500)
            .map(|i| {
                (0..(i % 70) + 2)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        b"abcx"[((state >> 33) % 4) as usize]
                    })
                    .collect()
            })
            .collect();
        for round in 0..3 {
            for w in &words {
                let mut cached = Vec::new();
                bpe.encode_piece(w, &mut cache, &mut cached);
                assert_eq!(cached, enc(&bpe, w), "round {round}, word {w:?}");
            }
            if round == 1 {
                cache.clear();
            }
        }
    }

    #[test]
    fn hot_keys_tell_lengths_apart() {
        for n in 1..=8usize {
            let word = 0x7766_5544_3322_1100u64 | 0x0101_0101_0101_0101;
            let key = hot_key(word, n);
            assert_ne!(key, HOT_EMPTY);
            assert_eq!(
                key & (u64::MAX >> (64 - 8 * n)),
                word & (u64::MAX >> (64 - 8 * n))
            );
            if n < 8 {
                assert_eq!(key >> (8 * n), u64::MAX >> (8 * n));
                assert_ne!(key, hot_key(word & (u64::MAX >> (64 - 8 * n)), n + 1));
            }
            assert!(!has_ff(word, n));
            for at in 0..n {
                assert!(has_ff(word | 0xFF << (8 * at), n), "n {n} at {at}");
            }
            if n < 8 {
                assert!(!has_ff(word | 0xFF << (8 * n), n));
            }
        }
    }

    #[test]
    fn pieces_with_ff_bytes_skip_the_hot_table() {
        let bpe = toy();
        let mut cache = PieceCache::default();
        for piece in [&b"a"[..], b"a\xff", b"ab", b"ab\xff", b"a", b"ab"] {
            let mut out = Vec::new();
            bpe.encode_piece(piece, &mut cache, &mut out);
            assert_eq!(out, enc(&bpe, piece), "{piece:?}");
        }
    }

    #[test]
    fn ignore_merges_emits_vocab_pieces() {
        let mut vocab = FxHashMap::default();
        vocab.insert(b"ab".to_vec().into_boxed_slice(), 3);
        vocab.insert(b"abc".to_vec().into_boxed_slice(), 6);
        let toy = toy();
        let bpe = Bpe::new(
            toy.byte_ids,
            [(1, 2, 4), (0, 1, 3), (0, 4, 5), (3, 2, 6)],
            Some(vocab),
        );
        assert_eq!(enc(&bpe, b"abc"), [6]);
    }
}
