//! Block scanner for the GPT-2 split: the pre-token starts of 64 bytes at a time as one bit
//! mask, computed from byte-class masks without a branch per token.
//!
//! Matching from a token start never looks behind it, so the pieces of `s[i..]` are those of
//! `s` from any start `i` on. Over ASCII text the GPT-2 pattern's starts are a local property:
//! a byte `k` (with its neighbours `k - 1` and `k + 1`) starts a piece when
//!
//! * it is not whitespace, its class (letter, digit, other) differs from byte `k - 1`'s, and
//!   byte `k - 1` is not a space (a space before a non-space always leads that piece);
//! * it is whitespace after a non-whitespace byte;
//! * it is whitespace after whitespace and before a non-whitespace byte (`\s+(?!\S)` leaves
//!   the run's last char to the next piece; the end of the text counts as whitespace here).
//!
//! Two things break locality, and the block stops before them: a non-ASCII byte (its class
//! needs Unicode tables) and an apostrophe at a start that leads a contraction (`'s` makes the
//! next start two bytes on, whatever follows; an apostrophe before other chars is an ordinary
//! other-char, like a closing quote in code). The caller runs its scalar scanner over one piece there and
//! comes back. Each block re-anchors at its last start, whose end lies beyond the block.

/// Class masks of 64 bytes: bit `k` describes byte `k`.
#[derive(Clone, Copy, Default)]
pub(super) struct Masks {
    pub letter: u64,
    pub digit: u64,
    pub space_class: u64,
    pub space: u64,
    pub apostrophe: u64,
    pub newline: u64,
    pub non_ascii: u64,
}

/// Which code classifies a block's bytes. [`Simd::Avx512`] only where the CPU has AVX-512BW
/// (the caller checks; see `simd_level` in the module above).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Simd {
    /// SSE2 on x86_64 (its baseline), scalar code elsewhere.
    Base,
    /// One 64-byte AVX-512BW load, compares straight into bit masks.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// Classes of the 64 bytes at `p`.
#[inline(always)]
pub(super) fn classify(simd: Simd, p: &[u8; 64]) -> Masks {
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx512` is chosen only where the CPU has AVX-512F and AVX-512BW.
        Simd::Avx512 => unsafe { classify_avx512(p) },
        #[cfg(target_arch = "x86_64")]
        Simd::Base => classify_sse2(p),
        #[cfg(not(target_arch = "x86_64"))]
        Simd::Base => classify_scalar(p),
    }
}

/// [`classify`] with AVX-512BW: each class is one or two byte compares into a mask register.
/// Inlined into a function compiled with `avx512f,avx512bw`, it is a handful of instructions.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512BW.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn classify_avx512(p: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the features; the load reads the 64 bytes of `p`.
    unsafe {
        let c = |b: u8| _mm512_set1_epi8(b as i8);
        let v = _mm512_loadu_si512(p.as_ptr() as *const __m512i);
        let lower = _mm512_or_si512(v, c(0x20));
        let letter = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(lower, c(b'a')), c(26));
        let digit = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, c(b'0')), c(10));
        let space = _mm512_cmpeq_epi8_mask(v, c(b' '));
        let ctrl = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, c(9)), c(5));
        let newline = _mm512_cmpeq_epi8_mask(v, c(b'\n')) | _mm512_cmpeq_epi8_mask(v, c(b'\r'));
        Masks {
            letter,
            digit,
            space_class: space | ctrl,
            space,
            apostrophe: _mm512_cmpeq_epi8_mask(v, c(b'\'')),
            newline,
            non_ascii: _mm512_movepi8_mask(v),
        }
    }
}

#[allow(dead_code)]
#[inline(always)]
fn classify_scalar(p: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (k, &b) in p.iter().enumerate() {
        let bit = 1u64 << k;
        let lower = b | 0x20;
        if lower.is_ascii_lowercase() {
            m.letter |= bit;
        }
        if b.is_ascii_digit() {
            m.digit |= bit;
        }
        if b == b' ' || (9..=13).contains(&b) {
            m.space_class |= bit;
        }
        if b == b' ' {
            m.space |= bit;
        }
        if b == b'\'' {
            m.apostrophe |= bit;
        }
        if b == b'\r' || b == b'\n' {
            m.newline |= bit;
        }
        if b >= 0x80 {
            m.non_ascii |= bit;
        }
    }
    m
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify_sse2(p: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: SSE2 is part of the x86_64 baseline; the loads read 4 × 16 bytes of `p`.
    unsafe {
        let c = |b: u8| _mm_set1_epi8(b as i8);
        for q in 0..4 {
            let v = _mm_loadu_si128(p.as_ptr().add(16 * q) as *const __m128i);
            // Bytes >= 0x80 are negative as i8, so they fall outside every ASCII range below.
            let lower = _mm_or_si128(v, c(0x20));
            let letter = _mm_and_si128(
                _mm_cmpgt_epi8(lower, c(b'a' - 1)),
                _mm_cmplt_epi8(lower, c(b'z' + 1)),
            );
            let digit = _mm_and_si128(
                _mm_cmpgt_epi8(v, c(b'0' - 1)),
                _mm_cmplt_epi8(v, c(b'9' + 1)),
            );
            let space = _mm_cmpeq_epi8(v, c(b' '));
            let ws = _mm_or_si128(
                space,
                _mm_and_si128(_mm_cmpgt_epi8(v, c(8)), _mm_cmplt_epi8(v, c(14))),
            );
            let ap = _mm_cmpeq_epi8(v, c(b'\''));
            let nl = _mm_or_si128(_mm_cmpeq_epi8(v, c(b'\r')), _mm_cmpeq_epi8(v, c(b'\n')));
            let at = 16 * q;
            let mask = |x: __m128i| (_mm_movemask_epi8(x) as u32 as u64) << at;
            m.letter |= mask(letter);
            m.digit |= mask(digit);
            m.space_class |= mask(ws);
            m.space |= mask(space);
            m.apostrophe |= mask(ap);
            m.newline |= mask(nl);
            m.non_ascii |= mask(v);
        }
    }
    m
}

/// Start bits of a GPT-2 block whose byte 0 is a start; `next_ws`: whether the byte after the
/// block is whitespace (or the end of the text).
#[inline(always)]
pub(super) fn gpt2_starts(m: &Masks, next_ws: bool) -> u64 {
    let w = m.space_class;
    let other = !(m.letter | m.digit | w);
    let change = (m.letter ^ (m.letter << 1)) | (m.digit ^ (m.digit << 1)) | (other ^ (other << 1));
    let w_next = (w >> 1) | ((next_ws as u64) << 63);
    let w_prev = w << 1;
    (!w & change & !(m.space << 1)) | (w & !w_prev) | (w & w_prev & !w_next) | 1
}

/// Positions reachable from a bit of `seeds` by moving to higher bits through ones of `m`
/// (`seeds` within `m`).
#[inline(always)]
fn fill_up(m: u64, seeds: u64) -> u64 {
    ((m.wrapping_add(seeds) ^ m) & m) | seeds
}

/// Start bits of a Llama-3 block whose byte 0 is a start (see [`block_pieces`]); those in a
/// whitespace run that reaches the end of what is known are not final (a newline further on
/// moves them).
#[inline(always)]
pub(super) fn llama3_starts(m: &Masks, next_ws: bool) -> u64 {
    let w = m.space_class;
    let nl = m.newline;
    let other = !(m.letter | m.digit | w);
    // Newlines right after a run of other chars belong to it (` ?[^\s\p{L}\p{N}]+[\r\n]*`).
    let absorbed = fill_up(nl, (other << 1) & nl);
    let ws = w & !absorbed;
    let plain_ws = w & !nl;
    let nl_ws = nl & ws;
    // Most blocks have no whitespace run with two newlines (a blank line): every newline of
    // a run is then its last, and the bit reversals below are skipped.
    let last_nl = if fill_up(ws, (nl_ws << 1) & ws) & nl_ws == 0 {
        nl_ws
    } else {
        // A newline of a whitespace run with another newline after it in the same run.
        let later_nl = fill_up(ws.reverse_bits(), nl_ws.reverse_bits()).reverse_bits();
        nl_ws & !(later_nl >> 1)
    };
    let w_next = (w >> 1) | ((next_ws as u64) << 63);
    let letter = m.letter
        & !(m.letter << 1)
        & !(plain_ws << 1)
        & !(other << 1 & !(other << 2) & !(m.space << 2));
    let d = m.digit;
    let mut digit = d & !(d << 1);
    // `\p{N}{1,3}`: a run of four or more digits has a start every three from its first.
    let fourth = d & (d << 1) & (d << 2) & (d << 3);
    if fourth != 0 {
        let mut at = digit;
        loop {
            at = (at << 3) & fourth;
            if at == 0 {
                break;
            }
            digit |= at;
        }
    }
    let oth = other & !(other << 1) & !(m.space << 1);
    let run_first = ws & !(ws << 1);
    let after_last_nl = (last_nl << 1) & ws;
    let before_non_ws = ws & !nl & ((ws & !nl) << 1) & !w_next;
    1 | letter | digit | oth | run_first | after_last_nl | before_non_ws
}

/// Whether the apostrophe at `s[at]` may begin a contraction match (`'s 't 're 've 'm 'll 'd`,
/// case-insensitive for Llama-3). A non-ASCII byte after it counts as one (Llama-3 folds `ſ`
/// to `s`; the scalar scanner decides there).
#[inline(always)]
fn leads_contraction(pattern: Pattern, s: &[u8], at: usize) -> bool {
    let byte = |k: usize| s.get(at + k).copied().unwrap_or(0);
    let (mut c1, mut c2) = (byte(1), byte(2));
    if c1 >= 0x80 {
        return true;
    }
    if pattern == Pattern::Llama3 {
        c1 = c1.to_ascii_lowercase();
        c2 = c2.to_ascii_lowercase();
    }
    matches!(c1, b's' | b't' | b'm' | b'd')
        || matches!((c1, c2), (b'r', b'e') | (b'v', b'e') | (b'l', b'l'))
}

/// Which split a block scan follows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Pattern {
    Gpt2,
    Llama3,
}

/// Where a scan sends its pieces: `emit(start, end)` (byte offsets). Closures are sinks; a sink
/// type with an `#[inline(always)]` method is inlined into the scan loop for certain.
pub(crate) trait Emit {
    fn emit(&mut self, a: usize, b: usize);

    /// `emit` on the pieces from each set bit of `starts` (bit `k`: byte `base + k`; bit 0 is
    /// set) to the next; not on the piece at the last set bit.
    #[inline(always)]
    fn emit_starts(&mut self, base: usize, mut starts: u64) {
        let mut k = 0usize;
        starts &= starts - 1;
        while starts != 0 {
            let next = starts.trailing_zeros() as usize;
            self.emit(base + k, base + next);
            k = next;
            starts &= starts - 1;
        }
    }
}

impl<F: FnMut(usize, usize)> Emit for F {
    #[inline(always)]
    fn emit(&mut self, a: usize, b: usize) {
        self(a, b)
    }
}

/// Call `emit(start, end)` on the pieces of `s` under `pattern`, in order, with
/// `scalar_end(i)` (the end of the piece at start `i`) where the block scan cannot decide.
///
/// The Llama-3 rules over ASCII, as start bits: a letter starts unless it follows a letter or
/// its one-char prefix (a non-newline space, or an other-char that itself starts a piece: not
/// after another other-char or a space); a digit starts after a non-digit (runs are cut in
/// threes on emission); an other-char starts after neither an other-char nor a space; newlines
/// right after other-chars belong to them; a whitespace run starts where it begins, after its
/// last newline, and at its last char when that ends a newline-free tail of two or more before
/// a non-space.
#[inline(always)]
pub(super) fn block_pieces(
    pattern: Pattern,
    simd: Simd,
    s: &[u8],
    scalar_end: impl Fn(usize) -> usize,
    mut emit: impl Emit,
) {
    // `emit` is inlined only where the block loop emits (nearly every piece); the rare sites
    // call it through `dyn`, so the loop stays small.
    /// A digit run in threes (Llama-3's `\p{N}{1,3}`).
    #[inline(never)]
    fn emit_digits(a: usize, b: usize, emit: &mut dyn Emit) {
        let mut x = a;
        while b - x > 3 {
            emit.emit(x, x + 3);
            x += 3;
        }
        emit.emit(x, b);
    }
    #[inline(never)]
    fn emit_rare(a: usize, b: usize, emit: &mut dyn Emit) {
        emit.emit(a, b);
    }
    let len = s.len();
    let mut i = 0;
    let mut pad = [b' '; 65];
    while i < len {
        let n = len - i;
        let (block, next): (&[u8; 64], u8) = if n > 64 {
            (s[i..i + 64].try_into().expect("64 bytes"), s[i + 64])
        } else {
            pad[..n].copy_from_slice(&s[i..]);
            pad[n..].fill(b' ');
            (pad[..64].try_into().expect("64 bytes"), pad[64])
        };
        let m = classify(simd, block);
        let next_ws = next == b' ' || (9..=13).contains(&next);
        // Starts are trusted where the byte and both neighbours are ASCII and in the text.
        let first_hi = if m.non_ascii != 0 {
            m.non_ascii.trailing_zeros() as usize
        } else if next >= 0x80 {
            64
        } else {
            65
        };
        let mut starts = match pattern {
            Pattern::Gpt2 => gpt2_starts(&m, next_ws),
            Pattern::Llama3 => llama3_starts(&m, next_ws),
        };
        let mut trusted = n.min(64).min(first_hi.saturating_sub(1));
        if pattern == Pattern::Llama3 && trusted > 0 && !(n <= 64 && trusted == n) {
            // A whitespace run reaching the trusted end may go on (with a newline) beyond it.
            let run = (m.space_class << (64 - trusted)).leading_ones() as usize;
            trusted -= run;
        }
        if trusted < 2 {
            let j = scalar_end(i);
            emit_rare(i, j, &mut emit);
            i = j;
            continue;
        }
        let keep = if trusted >= 64 {
            u64::MAX
        } else {
            (1u64 << trusted) - 1
        };
        starts &= keep;
        let mut ap = starts & m.apostrophe;
        // Only an apostrophe that leads a contraction breaks locality; any other is an
        // other-char like the rest, and the start bits already hold for it.
        while ap != 0 && !leads_contraction(pattern, s, i + ap.trailing_zeros() as usize) {
            ap &= ap - 1;
        }
        let mut cut = false;
        if ap != 0 {
            if ap & 1 != 0 {
                let j = scalar_end(i);
                emit_rare(i, j, &mut emit);
                i = j;
                continue;
            }
            // Keep the starts up to the first apostrophe start; the scalar scanner takes it.
            starts &= (ap & ap.wrapping_neg()).wrapping_mul(2).wrapping_sub(1);
            cut = true;
        }
        let last = 63 - starts.leading_zeros() as usize;
        // Llama-3's digit runs are cut in threes by the start bits already.
        emit.emit_starts(i, starts);
        if n <= 64 && trusted >= n && !cut {
            if pattern == Pattern::Llama3 && len - (i + last) > 3 && s[i + last].is_ascii_digit() {
                emit_digits(i + last, len, &mut emit);
            } else {
                emit_rare(i + last, len, &mut emit);
            }
            return;
        }
        if last == 0 {
            let j = scalar_end(i);
            emit_rare(i, j, &mut emit);
            i = j;
        } else {
            i += last;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifiers_agree_with_scalar() {
        let mut state = 17u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        };
        let mut blocks: Vec<[u8; 64]> = (0..=255u8)
            .collect::<Vec<_>>()
            .chunks(64)
            .map(|c| c.try_into().unwrap())
            .collect();
        blocks.extend((0..2000).map(|_| std::array::from_fn(|_| next())));
        blocks.extend((0..2000).map(|_| std::array::from_fn(|_| next() & 0x7f)));
        for b in &blocks {
            let want = classify_scalar(b);
            let mut simds = vec![Simd::Base];
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
            {
                simds.push(Simd::Avx512);
            }
            for simd in simds {
                let got = classify(simd, b);
                let fields = |m: &Masks| {
                    [
                        m.letter,
                        m.digit,
                        m.space_class,
                        m.space,
                        m.apostrophe,
                        m.newline,
                        m.non_ascii,
                    ]
                };
                assert_eq!(fields(&got), fields(&want), "{simd:?} on {b:?}");
            }
        }
    }
}
