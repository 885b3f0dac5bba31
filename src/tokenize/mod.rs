//! Byte-level BPE tokenization that reproduces the IDs of Hugging Face `tokenizers` for GPT-2,
//! CodeGen and Llama-3 style `tokenizer.json` files.
//!
//! The pipeline per document: added tokens split the text ([`added`]); each remaining segment is
//! cut into pre-tokens by a scanner ([`pretokenize`]); each pre-token's bytes are merged by the
//! BPE model ([`model`]), with a per-thread cache of pre-token → ids. Batches run on rayon, one
//! task per group of documents, and their ids are concatenated in document order.

pub mod added;
pub mod bytelevel;
mod config;
pub mod model;
pub mod pretokenize;
mod scan;

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, Result};
use added::{AddedVocab, Segment};
use model::{Bpe, PieceCache};
use pretokenize::Splitter;

/// Where `add_prefix_space` puts its space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixSpace {
    No,
    /// Before each segment, then the splitter runs (`ByteLevel(use_regex=true)`).
    Segment,
    /// Before each piece the splitter made (`Sequence[Split, ByteLevel(use_regex=false)]`).
    Piece,
}

/// How ids turn back into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// `ByteLevel`: token chars back to bytes, then lossy UTF-8.
    ByteLevel,
    /// No decoder: tokens joined by spaces.
    None,
}

/// A loaded byte-level BPE tokenizer.
#[derive(Debug)]
pub struct Tokenizer {
    /// Distinguishes tokenizers in the per-thread caches.
    uid: u64,
    bpe: Bpe,
    added: AddedVocab,
    splitter: Splitter,
    prefix_space: PrefixSpace,
    /// Ids the post-processor puts before / after the sequence when special tokens are added.
    prefix_ids: Vec<u32>,
    suffix_ids: Vec<u32>,
    decoder: Decoder,
    vocab: FxHashMap<String, u32>,
    vocab_r: FxHashMap<u32, String>,
    added_ids: FxHashMap<String, u32>,
    added_r: FxHashMap<u32, String>,
    special: FxHashSet<String>,
    max_id: u32,
}

/// The sink of the scanners' pieces: each piece's ids, appended as it is found.
struct RangeEncoder<'a> {
    bpe: &'a Bpe,
    text: &'a [u8],
    cache: &'a mut PieceCache,
    out: &'a mut Vec<u32>,
}

impl scan::Emit for RangeEncoder<'_> {
    #[inline(always)]
    fn emit(&mut self, a: usize, b: usize) {
        self.bpe.encode_range(self.text, a, b, self.cache, self.out);
    }

    #[inline(always)]
    fn emit_starts(&mut self, base: usize, starts: u64) {
        self.bpe
            .encode_starts(self.text, base, starts, self.cache, self.out);
    }
}

/// Per-thread state: the pre-token cache of the last tokenizer used on this thread.
struct ThreadState {
    owner: u64,
    cache: PieceCache,
    buf: String,
    piece: Vec<u8>,
}

thread_local! {
    static STATE: RefCell<ThreadState> = RefCell::new(ThreadState {
        owner: u64::MAX,
        cache: PieceCache::default(),
        buf: String::new(),
        piece: Vec::new(),
    });
}

fn next_uid() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Which compiled copy of the scan-and-encode loop runs: 0 the baseline one, 1
/// [`split_ranges_bmi`], 2 [`split_ranges_avx512`]. The best the CPU allows, at most the
/// `PHICORPUS_TOKENIZE_SIMD` environment variable (read once) where that is set to 0, 1 or 2:
/// tests run the fallbacks that way.
#[cfg(target_arch = "x86_64")]
fn simd_level() -> u8 {
    static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let bmi = std::is_x86_feature_detected!("bmi1")
            && std::is_x86_feature_detected!("bmi2")
            && std::is_x86_feature_detected!("lzcnt")
            && std::is_x86_feature_detected!("popcnt")
            && std::is_x86_feature_detected!("avx2");
        let avx512 = bmi
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw");
        let best = if avx512 { 2 } else { bmi as u8 };
        let cap = std::env::var("PHICORPUS_TOKENIZE_SIMD")
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .unwrap_or(2);
        best.min(cap)
    })
}

/// The scan-and-encode loop compiled with the bit instructions of current x86 CPUs (`tzcnt`,
/// `blsr`, `lzcnt`, shifts by register without flags) and VEX-encoded vector code: the loop
/// walks start bits one by one, and these make each step shorter.
///
/// # Safety
/// The CPU must have the features named (see [`simd_level`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2,lzcnt,popcnt,avx2")]
unsafe fn split_ranges_bmi(splitter: &Splitter, segment: &str, sink: RangeEncoder<'_>) {
    splitter.split_ranges(segment, scan::Simd::Base, sink);
}

/// [`split_ranges_bmi`] with AVX-512BW classifying each block of 64 bytes in one load.
///
/// # Safety
/// The CPU must have the features named (see [`simd_level`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2,lzcnt,popcnt,avx2,avx512f,avx512bw")]
unsafe fn split_ranges_avx512(splitter: &Splitter, segment: &str, sink: RangeEncoder<'_>) {
    splitter.split_ranges(segment, scan::Simd::Avx512, sink);
}

impl Tokenizer {
    /// Load a `tokenizer.json`. Fails with [`Error::Io`] if it cannot be read,
    /// [`Error::Format`] if it is not a valid tokenizer file, and [`Error::Unsupported`] if it uses
    /// a feature this encoder does not implement (the message names the file and the feature).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&json, &path.display().to_string())
    }

    /// Load from the text of a `tokenizer.json`; `origin` names it in error messages.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        config::load(json, origin)
    }

    /// Number of tokens with added tokens (`get_vocab_size(with_added_tokens=True)`).
    pub fn vocab_size(&self) -> usize {
        let extra = self
            .added_ids
            .keys()
            .filter(|t| !self.vocab.contains_key(*t))
            .count();
        self.vocab.len() + extra
    }

    /// Largest id this tokenizer can produce or decode.
    pub fn max_id(&self) -> u32 {
        self.max_id
    }

    /// Id of a token (added tokens first, then the model vocabulary).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.added_ids
            .get(token)
            .or_else(|| self.vocab.get(token))
            .copied()
    }

    /// Token string of an id (added tokens first, then the model vocabulary).
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.added_r
            .get(&id)
            .or_else(|| self.vocab_r.get(&id))
            .map(String::as_str)
    }

    /// Append the ids of `text` to `out`.
    pub fn encode_into(&self, text: &str, add_special_tokens: bool, out: &mut Vec<u32>) {
        if add_special_tokens {
            out.extend_from_slice(&self.prefix_ids);
        }
        STATE.with(|state| {
            let mut state = state.borrow_mut();
            let state = &mut *state;
            if state.owner != self.uid {
                state.cache.clear();
                state.owner = self.uid;
            }
            self.added.split(text, &mut |segment| match segment {
                Segment::Added(id) => out.push(id),
                Segment::Text(t) => self.encode_segment(t, state, out),
            });
        });
        if add_special_tokens {
            out.extend_from_slice(&self.suffix_ids);
        }
    }

    /// The ids of `text`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        self.encode_into(text, add_special_tokens, &mut out);
        out
    }

    #[inline]
    fn encode_segment(&self, segment: &str, state: &mut ThreadState, out: &mut Vec<u32>) {
        if self.prefix_space == PrefixSpace::Segment && !segment.starts_with(' ') {
            let mut buf = std::mem::take(&mut state.buf);
            buf.clear();
            buf.push(' ');
            buf.push_str(segment);
            self.encode_pieces(&buf, state, out);
            state.buf = buf;
        } else {
            self.encode_pieces(segment, state, out);
        }
    }

    #[inline]
    fn encode_pieces(&self, segment: &str, state: &mut ThreadState, out: &mut Vec<u32>) {
        let ThreadState { cache, piece, .. } = state;
        if self.prefix_space == PrefixSpace::Piece {
            self.splitter.split(segment, |p| {
                if p.starts_with(' ') {
                    self.bpe.encode_piece(p.as_bytes(), cache, out);
                } else {
                    piece.clear();
                    piece.push(b' ');
                    piece.extend_from_slice(p.as_bytes());
                    self.bpe.encode_piece(piece, cache, out);
                }
            });
        } else {
            // Each piece is looked up as the splitter finds it: no list of pieces in between.
            let bytes = segment.as_bytes();
            out.reserve(segment.len() / 2 + 4);
            let sink = RangeEncoder {
                bpe: &self.bpe,
                text: bytes,
                cache,
                out,
            };
            #[cfg(target_arch = "x86_64")]
            match simd_level() {
                // SAFETY: the CPU has the features these are compiled for.
                2 => return unsafe { split_ranges_avx512(&self.splitter, segment, sink) },
                1 => return unsafe { split_ranges_bmi(&self.splitter, segment, sink) },
                _ => {}
            }
            self.splitter.split_ranges(segment, scan::Simd::Base, sink);
        }
    }

    /// Number of pre-tokens of `text` (added tokens not counted): for benchmarks of the splitter.
    pub fn count_pieces(&self, text: &str) -> usize {
        let mut n = 0;
        self.added.split(text, &mut |segment| {
            if let Segment::Text(t) = segment {
                self.splitter.split(t, |_| n += 1);
            }
        });
        n
    }

    /// Encode `texts` on the current rayon pool: all ids back to back, and the `len + 1` offsets
    /// of each text's ids in them.
    pub fn encode_batch(&self, texts: &[&str], add_special_tokens: bool) -> (Vec<u32>, Vec<i64>) {
        let parts = self.encode_groups(texts, add_special_tokens);
        let mut offsets = Vec::with_capacity(texts.len() + 1);
        offsets.push(0i64);
        let total: usize = parts.iter().map(|(ids, _)| ids.len()).sum();
        let mut ids = Vec::with_capacity(total);
        for (part, lens) in parts {
            ids.extend_from_slice(&part);
            for len in lens {
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last + len as i64);
            }
        }
        (ids, offsets)
    }

    /// Encode `texts` on the current rayon pool, appending their ids to `ids` and, for each
    /// text, the end of its ids in `ids` to `ends`.
    ///
    /// On one thread the ids go straight into `ids` (no group buffers, no copy); on more the
    /// groups of [`Self::encode_groups`] are copied into `ids` in parallel, so the fresh pages
    /// of the output are touched by all threads.
    pub fn encode_flat_into(
        &self,
        texts: &[&str],
        add_special_tokens: bool,
        ids: &mut Vec<u32>,
        ends: &mut Vec<i64>,
    ) {
        ends.reserve(texts.len());
        if rayon::current_num_threads() <= 1 {
            let size: usize = texts.iter().map(|t| t.len()).sum();
            ids.reserve(size / 3 + 8);
            for t in texts {
                self.encode_into(t, add_special_tokens, ids);
                ends.push(ids.len() as i64);
            }
            return;
        }
        let parts = self.encode_groups(texts, add_special_tokens);
        let total: usize = parts.iter().map(|(part, _)| part.len()).sum();
        let start = ids.len();
        let mut at = start as i64;
        for (_, lens) in &parts {
            for &len in lens {
                at += len as i64;
                ends.push(at);
            }
        }
        ids.reserve(total);
        let mut spare = &mut ids.spare_capacity_mut()[..total];
        let mut dests = Vec::with_capacity(parts.len());
        for (part, _) in &parts {
            let (head, rest) = spare.split_at_mut(part.len());
            dests.push(head);
            spare = rest;
        }
        dests
            .into_par_iter()
            .zip(parts.par_iter())
            .for_each(|(dest, (part, _))| {
                for (d, &s) in dest.iter_mut().zip(part) {
                    d.write(s);
                }
            });
        // SAFETY: the `total` ids after `start` were all written just above.
        unsafe { ids.set_len(start + total) };
    }

    /// Encode `texts` in parallel groups; each group gives its ids and the number of ids of each
    /// of its texts, groups in order.
    pub fn encode_groups(
        &self,
        texts: &[&str],
        add_special_tokens: bool,
    ) -> Vec<(Vec<u32>, Vec<u32>)> {
        // Groups of about 256 KiB of text (at least one document) keep all threads busy
        // without a vector per document.
        let mut bounds = vec![0usize];
        let mut bytes = 0usize;
        for (i, t) in texts.iter().enumerate() {
            bytes += t.len() + 16;
            if bytes >= 256 << 10 {
                bounds.push(i + 1);
                bytes = 0;
            }
        }
        if *bounds.last().unwrap_or(&0) != texts.len() {
            bounds.push(texts.len());
        }
        bounds
            .par_windows(2)
            .map(|w| {
                let group = &texts[w[0]..w[1]];
                let size: usize = group.iter().map(|t| t.len()).sum();
                let mut ids = Vec::with_capacity(size / 3 + 8);
                let mut lens = Vec::with_capacity(group.len());
                for t in group {
                    let before = ids.len();
                    self.encode_into(t, add_special_tokens, &mut ids);
                    lens.push((ids.len() - before) as u32);
                }
                (ids, lens)
            })
            .collect()
    }

    /// Text of `ids` as `tokenizers` decodes it; unknown ids are skipped.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let tokens = ids.iter().filter_map(|&id| {
            self.id_to_token(id)
                .filter(|t| !skip_special_tokens || !self.special.contains(*t))
        });
        match self.decoder {
            Decoder::ByteLevel => {
                let mut bytes = Vec::new();
                for t in tokens {
                    match bytelevel::token_to_bytes(t) {
                        Some(b) => bytes.extend_from_slice(&b),
                        None => bytes.extend_from_slice(t.as_bytes()),
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Decoder::None => tokens.collect::<Vec<_>>().join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny GPT-2 style tokenizer: all 256 bytes, merges for " t", "he", " the", one special.
    fn tiny(pre_tokenizer: &str, extra: &str) -> Tokenizer {
        let mut vocab = serde_json::Map::new();
        for b in 0..=255u8 {
            vocab.insert(
                bytelevel::BYTE_TO_CHAR[b as usize].to_string(),
                (b as u32).into(),
            );
        }
        vocab.insert("Ġt".into(), 256.into());
        vocab.insert("he".into(), 257.into());
        vocab.insert("Ġthe".into(), 258.into());
        let json = format!(
            r#"{{"version":"1.0","truncation":null,"padding":null,
            "added_tokens":[{{"id":259,"content":"<|endoftext|>","single_word":false,"lstrip":false,
              "rstrip":false,"normalized":false,"special":true}}],
            "normalizer":null,"pre_tokenizer":{pre_tokenizer},{extra}
            "decoder":{{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}},
            "model":{{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,
              "end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,
              "vocab":{},"merges":[["Ġ","t"],["h","e"],["Ġt","he"]]}}}}"#,
            serde_json::Value::Object(vocab)
        );
        Tokenizer::from_json(&json, "tiny.json").unwrap()
    }

    const GPT2: &str =
        r#"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#;

    #[test]
    fn encodes_and_decodes() {
        let tok = tiny(GPT2, r#""post_processor":null,"#);
        assert_eq!(tok.encode("the the", true), [116, 257, 258]);
        assert_eq!(tok.encode("x<|endoftext|> the", true), [120, 259, 258]);
        assert_eq!(tok.decode(&[120, 259, 258], true), "x the");
        assert_eq!(tok.decode(&[120, 259, 258], false), "x<|endoftext|> the");
        assert_eq!(tok.vocab_size(), 260);
        assert_eq!(tok.token_to_id("<|endoftext|>"), Some(259));
        let (ids, offsets) = tok.encode_batch(&["the", "", " the"], true);
        assert_eq!(ids, [116, 257, 258]);
        assert_eq!(offsets, [0, 2, 2, 3]);
    }

    #[test]
    fn flat_matches_batch_on_any_thread_count() {
        let tok = tiny(GPT2, r#""post_processor":null,"#);
        let texts: Vec<String> = (0..3000)
            .map(|i| "the x<|endoftext|> the ".repeat(i % 7) + &"t".repeat(i % 5))
            .collect();
        let strs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (want, offsets) = tok.encode_batch(&strs, true);
        for threads in [1, 2, 3] {
            let mut ids = vec![7];
            let mut ends = vec![1];
            crate::parallel::install(Some(threads), || {
                tok.encode_flat_into(&strs[..1000], true, &mut ids, &mut ends);
                tok.encode_flat_into(&strs[1000..], true, &mut ids, &mut ends);
            });
            assert_eq!(ids[1..], want[..], "{threads} threads");
            let shifted: Vec<i64> = offsets.iter().map(|o| o + 1).collect();
            assert_eq!(ends, shifted, "{threads} threads");
        }
    }

    #[test]
    fn prefix_space_and_template() {
        let aps =
            r#"{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}"#;
        let post = r#""post_processor":{"type":"TemplateProcessing",
            "single":[{"SpecialToken":{"id":"<|endoftext|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
            "pair":[],"special_tokens":{"<|endoftext|>":{"id":"<|endoftext|>","ids":[259],"tokens":["<|endoftext|>"]}}},"#;
        let tok = tiny(aps, post);
        assert_eq!(tok.encode("the", true), [259, 258]);
        assert_eq!(tok.encode("the", false), [258]);
        assert_eq!(tok.encode("", false), Vec::<u32>::new());
    }

    #[test]
    fn unsupported_names_file_and_feature() {
        let err = Tokenizer::from_json(r#"{"model":{"type":"WordPiece","vocab":{}}}"#, "wp.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("wp.json") && err.contains("WordPiece"),
            "{err}"
        );
        let err = Tokenizer::from_json("{not json", "bad.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
