//! Reading `tokenizer.json` into a [`Tokenizer`]: everything the encoder does not reproduce
//! exactly is refused with [`Error::Unsupported`], so callers can fall back to `tokenizers`.

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value};

use super::added::{AddedToken, AddedVocab};
use super::bytelevel::{token_to_bytes, BYTE_TO_CHAR};
use super::model::{Bpe, NO_ID};
use super::pretokenize::{Splitter, GPT2_PATTERN};
use super::{next_uid, Decoder, PrefixSpace, Tokenizer};
use crate::error::{Error, Result};

struct Ctx<'a> {
    origin: &'a str,
}

impl Ctx<'_> {
    fn format(&self, message: impl Into<String>) -> Error {
        Error::Format {
            path: self.origin.to_string(),
            message: message.into(),
        }
    }
    fn unsupported(&self, feature: impl std::fmt::Display) -> Error {
        Error::Unsupported(format!("{}: {feature}", self.origin))
    }
}

fn kind(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

fn flag(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn is_null_or_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

pub(super) fn load(json: &str, origin: &str) -> Result<Tokenizer> {
    let cx = Ctx { origin };
    let root: Value = serde_json::from_str(json)
        .map_err(|e| cx.format(format!("not a valid tokenizer.json (JSON error: {e})")))?;
    let root = root
        .as_object()
        .ok_or_else(|| cx.format("not a valid tokenizer.json (top level is not an object)"))?;
    let model = root
        .get("model")
        .ok_or_else(|| cx.format("not a valid tokenizer.json (no `model`)"))?;

    match kind(model) {
        Some("BPE") => {}
        None if model.get("merges").is_some() => {}
        Some(other) => {
            return Err(cx.unsupported(format!("model type {other} (only BPE is implemented)")))
        }
        None => return Err(cx.format("`model` has no `type`")),
    }
    if !model.get("dropout").is_none_or(Value::is_null) {
        return Err(cx.unsupported("BPE dropout"));
    }
    if !is_null_or_empty(model.get("continuing_subword_prefix")) {
        return Err(cx.unsupported("BPE continuing_subword_prefix"));
    }
    if !is_null_or_empty(model.get("end_of_word_suffix")) {
        return Err(cx.unsupported("BPE end_of_word_suffix"));
    }
    if flag(model, "byte_fallback", false) {
        return Err(cx.unsupported("BPE byte_fallback"));
    }
    for key in ["truncation", "padding"] {
        if !root.get(key).is_none_or(Value::is_null) {
            return Err(cx.unsupported(format!("{key} settings")));
        }
    }

    // Normalizer: none (or an empty sequence).
    match root.get("normalizer") {
        None | Some(Value::Null) => {}
        Some(n)
            if kind(n) == Some("Sequence")
                && n.get("normalizers")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty) => {}
        Some(n) => {
            return Err(cx.unsupported(format!(
                "normalizer {}",
                kind(n).unwrap_or("(without type)")
            )))
        }
    }

    let (splitter, prefix_space) = pre_tokenizer(&cx, root.get("pre_tokenizer"))?;

    // Vocabulary and merges.
    let vocab_json = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| cx.format("`model.vocab` is not an object"))?;
    let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
    vocab.reserve(vocab_json.len());
    for (token, id) in vocab_json {
        let id = id
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| cx.format(format!("vocab id of {token:?} is not a u32")))?;
        vocab.insert(token.clone(), id);
    }
    let mut byte_ids = [NO_ID; 256];
    for (b, id) in byte_ids.iter_mut().enumerate() {
        if let Some(&i) = vocab.get(BYTE_TO_CHAR[b].encode_utf8(&mut [0; 4]) as &str) {
            *id = i;
        }
    }
    if !model.get("unk_token").is_none_or(Value::is_null) && byte_ids.contains(&NO_ID) {
        return Err(cx.unsupported("unk_token with a vocabulary that lacks some bytes"));
    }
    let merges_json = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| cx.format("`model.merges` is not a list"))?;
    let mut merges = Vec::with_capacity(merges_json.len());
    for (i, m) in merges_json.iter().enumerate() {
        let (a, b) = match m {
            Value::String(s) => {
                let mut parts = s.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(b), None) => (a, b),
                    _ => return Err(cx.format(format!("merge {i} ({s:?}) is not two tokens"))),
                }
            }
            Value::Array(pair) if pair.len() == 2 => match (pair[0].as_str(), pair[1].as_str()) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(cx.format(format!("merge {i} is not two strings"))),
            },
            _ => return Err(cx.format(format!("merge {i} is neither \"a b\" nor [a, b]"))),
        };
        let id = |t: &str| {
            vocab.get(t).copied().ok_or_else(|| {
                cx.format(format!(
                    "merge {i} uses {t:?}, which is not in the vocabulary"
                ))
            })
        };
        let merged = format!("{a}{b}");
        merges.push((id(a)?, id(b)?, id(&merged)?));
    }
    let vocab_bytes = if flag(model, "ignore_merges", false) {
        let mut m = FxHashMap::default();
        for (token, &id) in &vocab {
            if let Some(bytes) = token_to_bytes(token) {
                m.insert(bytes.into_boxed_slice(), id);
            }
        }
        Some(m)
    } else {
        None
    };

    // Added tokens.
    let mut added = Vec::new();
    if let Some(list) = root.get("added_tokens") {
        let list = list
            .as_array()
            .ok_or_else(|| cx.format("`added_tokens` is not a list"))?;
        for (i, t) in list.iter().enumerate() {
            let id = t
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| cx.format(format!("added_tokens[{i}] has no valid `id`")))?;
            let content = t
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| cx.format(format!("added_tokens[{i}] has no `content`")))?;
            let special = flag(t, "special", false);
            added.push(AddedToken {
                id,
                content: content.to_string(),
                single_word: flag(t, "single_word", false),
                lstrip: flag(t, "lstrip", false),
                rstrip: flag(t, "rstrip", false),
                normalized: flag(t, "normalized", !special),
                special,
            });
        }
    }

    let (prefix_ids, suffix_ids) = post_processor(&cx, root.get("post_processor"))?;
    let decoder = match root.get("decoder") {
        None | Some(Value::Null) => Decoder::None,
        Some(d) if kind(d) == Some("ByteLevel") => Decoder::ByteLevel,
        Some(d) => {
            return Err(cx.unsupported(format!("decoder {}", kind(d).unwrap_or("(without type)"))))
        }
    };

    let vocab_r: FxHashMap<u32, String> = vocab.iter().map(|(t, &i)| (i, t.clone())).collect();
    let added_ids: FxHashMap<String, u32> =
        added.iter().map(|t| (t.content.clone(), t.id)).collect();
    let added_r: FxHashMap<u32, String> = added.iter().map(|t| (t.id, t.content.clone())).collect();
    let special: FxHashSet<String> = added
        .iter()
        .filter(|t| t.special)
        .map(|t| t.content.clone())
        .collect();
    let max_id = vocab
        .values()
        .chain(added_ids.values())
        .chain(prefix_ids.iter())
        .chain(suffix_ids.iter())
        .copied()
        .max()
        .unwrap_or(0);

    Ok(Tokenizer {
        uid: next_uid(),
        bpe: Bpe::new(byte_ids, merges, vocab_bytes),
        added: AddedVocab::new(added),
        splitter,
        prefix_space,
        prefix_ids,
        suffix_ids,
        decoder,
        vocab,
        vocab_r,
        added_ids,
        added_r,
        special,
        max_id,
    })
}

/// Settings of a `ByteLevel` pre-tokenizer: (add_prefix_space, use_regex).
fn byte_level(v: &Value) -> (bool, bool) {
    (
        flag(v, "add_prefix_space", true),
        flag(v, "use_regex", true),
    )
}

fn split_step(cx: &Ctx<'_>, v: &Value) -> Result<Splitter> {
    let behavior = v.get("behavior").and_then(Value::as_str).unwrap_or("");
    if behavior != "Isolated" {
        return Err(cx.unsupported(format!("Split pre-tokenizer with behavior {behavior:?}")));
    }
    if flag(v, "invert", false) {
        return Err(cx.unsupported("Split pre-tokenizer with invert=true"));
    }
    let pattern = v.get("pattern").and_then(Value::as_object).map(Map::iter);
    match pattern.and_then(|mut p| p.next()) {
        Some((k, Value::String(re))) if k == "Regex" => {
            Splitter::from_pattern(re).map_err(|e| cx.unsupported(e))
        }
        _ => Err(cx.unsupported("Split pre-tokenizer whose pattern is not a Regex")),
    }
}

fn pre_tokenizer(cx: &Ctx<'_>, v: Option<&Value>) -> Result<(Splitter, PrefixSpace)> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Err(cx.unsupported("no pre_tokenizer (a byte-level BPE needs ByteLevel)"));
    };
    let steps: Vec<&Value> = match kind(v) {
        Some("Sequence") => v
            .get("pretokenizers")
            .and_then(Value::as_array)
            .ok_or_else(|| cx.format("Sequence pre_tokenizer has no `pretokenizers` list"))?
            .iter()
            .collect(),
        _ => vec![v],
    };
    let name = |s: &Value| kind(s).unwrap_or("(without type)").to_string();
    match steps.as_slice() {
        [b] if kind(b) == Some("ByteLevel") => {
            let (aps, regex) = byte_level(b);
            let prefix = if aps { PrefixSpace::Segment } else { PrefixSpace::No };
            let splitter = if regex {
                Splitter::from_pattern(GPT2_PATTERN).map_err(|e| cx.unsupported(e))?
            } else {
                Splitter::Whole
            };
            Ok((splitter, prefix))
        }
        [s, b] if kind(s) == Some("Split") && kind(b) == Some("ByteLevel") => {
            let (aps, regex) = byte_level(b);
            if regex {
                return Err(cx.unsupported("Split followed by ByteLevel(use_regex=true)"));
            }
            let prefix = if aps { PrefixSpace::Piece } else { PrefixSpace::No };
            Ok((split_step(cx, s)?, prefix))
        }
        _ => Err(cx.unsupported(format!(
            "pre_tokenizer {} (implemented: ByteLevel, Sequence[Split(Regex, Isolated), ByteLevel])",
            if steps.len() == 1 {
                name(steps[0])
            } else {
                format!("Sequence[{}]", steps.iter().map(|s| name(s)).collect::<Vec<_>>().join(", "))
            }
        ))),
    }
}

/// Ids the post-processor adds before and after a single sequence.
fn post_processor(cx: &Ctx<'_>, v: Option<&Value>) -> Result<(Vec<u32>, Vec<u32>)> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    match kind(v) {
        Some("ByteLevel") => Ok((Vec::new(), Vec::new())),
        Some("Sequence") => {
            let mut out = (Vec::new(), Vec::new());
            let list = v
                .get("processors")
                .and_then(Value::as_array)
                .ok_or_else(|| cx.format("Sequence post_processor has no `processors` list"))?;
            for p in list {
                let (pre, post) = post_processor(cx, Some(p))?;
                if !(pre.is_empty() && post.is_empty()) {
                    if !(out.0.is_empty() && out.1.is_empty()) {
                        return Err(cx.unsupported("two post-processors that both add tokens"));
                    }
                    out = (pre, post);
                }
            }
            Ok(out)
        }
        Some("TemplateProcessing") => {
            let single = v
                .get("single")
                .and_then(Value::as_array)
                .ok_or_else(|| cx.format("TemplateProcessing has no `single` template"))?;
            let specials = v.get("special_tokens").and_then(Value::as_object);
            let (mut pre, mut post) = (Vec::new(), Vec::new());
            let mut seen_sequence = false;
            for piece in single {
                if piece.get("Sequence").is_some() {
                    if seen_sequence {
                        return Err(
                            cx.unsupported("TemplateProcessing with two sequences in `single`")
                        );
                    }
                    seen_sequence = true;
                } else if let Some(name) = piece
                    .get("SpecialToken")
                    .and_then(|s| s.get("id"))
                    .and_then(Value::as_str)
                {
                    let ids = specials
                        .and_then(|s| s.get(name))
                        .and_then(|s| s.get("ids"))
                        .and_then(Value::as_array)
                        .ok_or_else(|| {
                            cx.format(format!("TemplateProcessing: no ids for {name:?}"))
                        })?;
                    let target = if seen_sequence { &mut post } else { &mut pre };
                    for id in ids {
                        target.push(id.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or_else(
                            || cx.format(format!("TemplateProcessing: bad id for {name:?}")),
                        )?);
                    }
                } else {
                    return Err(cx.format("TemplateProcessing: unknown template piece"));
                }
            }
            Ok((pre, post))
        }
        other => Err(cx.unsupported(format!(
            "post_processor {}",
            other.unwrap_or("(without type)")
        ))),
    }
}
