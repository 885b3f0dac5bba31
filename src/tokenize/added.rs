//! Added tokens (special or not): found in the input before pre-tokenization, as the
//! `AddedVocabulary` of `tokenizers` does: leftmost-longest matching, first the tokens that are
//! not normalized, then the normalized ones inside the remaining text.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// One entry of `added_tokens` in `tokenizer.json`.
#[derive(Debug, Clone)]
pub struct AddedToken {
    pub id: u32,
    pub content: String,
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub normalized: bool,
    pub special: bool,
}

/// A part of the input: text to pre-tokenize, or an added token's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    Added(u32),
}

#[derive(Debug)]
struct Matcher {
    automaton: AhoCorasick,
    /// Pattern index → index into `AddedVocab::tokens`.
    token: Vec<usize>,
}

/// The added tokens of a tokenizer and their matchers.
#[derive(Debug)]
pub struct AddedVocab {
    pub tokens: Vec<AddedToken>,
    raw: Option<Matcher>,
    normalized: Option<Matcher>,
}

fn matcher(tokens: &[AddedToken], normalized: bool) -> Option<Matcher> {
    let token: Vec<usize> = (0..tokens.len())
        .filter(|&i| tokens[i].normalized == normalized && !tokens[i].content.is_empty())
        .collect();
    if token.is_empty() {
        return None;
    }
    let automaton = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .build(token.iter().map(|&i| tokens[i].content.as_str()))
        .expect("added tokens form a valid automaton");
    Some(Matcher { automaton, token })
}

/// `\w` as the `regex` crate has it (alphanumeric, marks, connector punctuation), close enough
/// for `single_word`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl AddedVocab {
    pub fn new(tokens: Vec<AddedToken>) -> Self {
        let raw = matcher(&tokens, false);
        let normalized = matcher(&tokens, true);
        Self {
            tokens,
            raw,
            normalized,
        }
    }

    /// Whether any added token can match (else the whole text is one segment).
    pub fn is_empty(&self) -> bool {
        self.raw.is_none() && self.normalized.is_none()
    }

    /// Call `emit` on the segments of `text` in order; empty text gives no segment.
    #[inline]
    pub fn split<'a>(&self, text: &'a str, emit: &mut impl FnMut(Segment<'a>)) {
        if text.is_empty() {
            return;
        }
        match (&self.raw, &self.normalized) {
            (None, None) => emit(Segment::Text(text)),
            (Some(raw), None) => self.find(text, raw, emit),
            (None, Some(norm)) => self.find(text, norm, emit),
            (Some(raw), Some(norm)) => self.find(text, raw, &mut |seg| match seg {
                Segment::Text(t) => self.find(t, norm, emit),
                added => emit(added),
            }),
        }
    }

    /// `AddedVocabulary::find_matches` of `tokenizers`.
    fn find<'a>(&self, text: &'a str, m: &Matcher, emit: &mut impl FnMut(Segment<'a>)) {
        let mut done = 0;
        for mat in m.automaton.find_iter(text) {
            let tok = &self.tokens[m.token[mat.pattern().as_usize()]];
            let (mut start, mut stop) = (mat.start(), mat.end());
            if tok.single_word {
                let before = text[..start].chars().next_back().is_some_and(is_word_char);
                let after = text[stop..].chars().next().is_some_and(is_word_char);
                if before || after {
                    continue;
                }
            }
            if tok.lstrip {
                let head = &text[..start];
                let kept = head.trim_end_matches(char::is_whitespace).len();
                start = kept.max(done);
            }
            if tok.rstrip {
                let tail = &text[stop..];
                stop += tail.len() - tail.trim_start_matches(char::is_whitespace).len();
            }
            if done < start {
                emit(Segment::Text(&text[done..start]));
            }
            emit(Segment::Added(tok.id));
            done = stop;
        }
        if done < text.len() {
            emit(Segment::Text(&text[done..]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(id: u32, content: &str, normalized: bool) -> AddedToken {
        AddedToken {
            id,
            content: content.into(),
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized,
            special: !normalized,
        }
    }

    fn segments<'a>(vocab: &AddedVocab, text: &'a str) -> Vec<Segment<'a>> {
        let mut out = Vec::new();
        vocab.split(text, &mut |s| out.push(s));
        out
    }

    #[test]
    fn leftmost_longest_then_normalized() {
        let vocab = AddedVocab::new(vec![
            tok(10, "<|a|>", false),
            tok(11, "<|a|><|a|>", false),
            tok(12, "  ", true),
        ]);
        assert_eq!(
            segments(&vocab, "x<|a|><|a|>y  z<|a|>"),
            [
                Segment::Text("x"),
                Segment::Added(11),
                Segment::Text("y"),
                Segment::Added(12),
                Segment::Text("z"),
                Segment::Added(10)
            ]
        );
        assert!(segments(&vocab, "").is_empty());
    }

    #[test]
    fn strip_and_single_word() {
        let mut t = tok(5, "<m>", false);
        t.lstrip = true;
        t.rstrip = true;
        let mut w = tok(6, "cat", false);
        w.single_word = true;
        let vocab = AddedVocab::new(vec![t, w]);
        assert_eq!(
            segments(&vocab, "a  <m>  b cats cat"),
            [
                Segment::Text("a"),
                Segment::Added(5),
                Segment::Text("b cats "),
                Segment::Added(6)
            ]
        );
    }
}
