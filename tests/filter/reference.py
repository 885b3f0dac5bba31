"""A slow pure-Python reference of the quality signals, written straight from the definitions in
``phicorpus.filter.signals`` (plain loops, sets and Counters), used as the oracle of the tests.

Whitespace is the Unicode ``White_Space`` property, listed explicitly (``str.split()`` and
``str.strip()`` also treat ``\\x1c``-``\\x1f`` as whitespace).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# Unicode Sentence_Terminal (Unicode 15.1).
SENTENCE_TERMINAL = frozenset(
    chr(c)
    for c in (
        *(0x21, 0x2E, 0x3F, 0x589, 0x61D, 0x61E, 0x61F, 0x6D4, 0x700, 0x701, 0x702, 0x7F9),
        *(0x837, 0x839, 0x83D, 0x83E, 0x964, 0x965, 0x104A, 0x104B, 0x1362, 0x1367, 0x1368),
        *(0x166E, 0x1735, 0x1736, 0x17D4, 0x17D5, 0x17D6, 0x17D9, 0x17DA, 0x1803, 0x1809),
        *(0x1944, 0x1945, 0x1AA8, 0x1AA9, 0x1AAA, 0x1AAB, 0x1B5A, 0x1B5B, 0x1B5E, 0x1B5F),
        *(0x1B7D, 0x1B7E, 0x1C3B, 0x1C3C, 0x1C7E, 0x1C7F, 0x203C, 0x203D, 0x2047, 0x2048),
        *(0x2049, 0x2E2E, 0x2E3C, 0x2E53, 0x2E54, 0x3002, 0xA4FF, 0xA60E, 0xA60F, 0xA6F3),
        *(0xA6F7, 0xA876, 0xA877, 0xA8CE, 0xA8CF, 0xA92F, 0xA9C8, 0xA9C9, 0xAA5D, 0xAA5E),
        *(0xAA5F, 0xAAF0, 0xAAF1, 0xABEB, 0xFE52, 0xFE56, 0xFE57, 0xFF01, 0xFF0E, 0xFF1F),
        *(0xFF61, 0x10A56, 0x10A57, 0x10F55, 0x10F56, 0x10F57, 0x10F58, 0x10F59, 0x10F86),
        *(0x10F87, 0x10F88, 0x10F89, 0x11047, 0x11048, 0x110BE, 0x110BF, 0x110C0, 0x110C1),
        *(0x11141, 0x11142, 0x11143, 0x111C5, 0x111C6, 0x111CD, 0x111DE, 0x111DF, 0x11238),
        *(0x11239, 0x1123B, 0x1123C, 0x112A9, 0x1144B, 0x1144C, 0x115C2, 0x115C3, 0x115C9),
        *(0x115CA, 0x115CB, 0x115CC, 0x115CD, 0x115CE, 0x115CF, 0x115D0, 0x115D1, 0x115D2),
        *(0x115D3, 0x115D4, 0x115D5, 0x115D6, 0x115D7, 0x11641, 0x11642, 0x1173C, 0x1173D),
        *(0x1173E, 0x11944, 0x11946, 0x11A42, 0x11A43, 0x11A9B, 0x11A9C, 0x11C41, 0x11C42),
        *(0x11EF7, 0x11EF8, 0x11F43, 0x11F44, 0x16A6E, 0x16A6F, 0x16AF5, 0x16B37, 0x16B38),
        *(0x16B44, 0x16E98, 0x1BC9F, 0x1DA88),
    )
)

STOP_WORDS = {"the", "be", "to", "of", "and", "that", "have", "with"}
POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]
CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")


def strip(s: str) -> str:
    return lstrip(rstrip(s))


def lstrip(s: str) -> str:
    i = 0
    while i < len(s) and s[i] in WHITE_SPACE:
        i += 1
    return s[i:]


def rstrip(s: str) -> str:
    j = len(s)
    while j > 0 and s[j - 1] in WHITE_SPACE:
        j -= 1
    return s[:j]


def split_words(s: str) -> list[str]:
    words: list[str] = []
    current = ""
    for ch in s:
        if ch in WHITE_SPACE:
            if current:
                words.append(current)
            current = ""
        else:
            current += ch
    if current:
        words.append(current)
    return words


def split_lines(text: str) -> list[str]:
    if text == "":
        return []
    pieces = text.split("\n")
    if text.endswith("\n"):
        pieces = pieces[:-1]
    return [p[:-1] if p.endswith("\r") else p for p in pieces]


def is_symbol_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "PS" or cat == "Cc"


def find_duplicates(items: list[str]) -> tuple[int, int]:
    seen: set[str] = set()
    dup = dup_chars = 0
    for item in items:
        if item in seen:
            dup += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup, dup_chars


def top_ngram_chars(words: list[str], n: int) -> int:
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def dup_ngram_chars(words: list[str], n: int) -> int:
    seen: set[str] = set()
    repeated = idx = 0
    while idx < len(words) - n + 1:
        gram = "".join(words[idx : idx + n])
        if gram in seen:
            repeated += len(gram)
            idx += n
        else:
            seen.add(gram)
            idx += 1
    return repeated


def count_sentences(line: str) -> int:
    n = 0
    open_sentence = False
    for w in split_words(line):
        core = w.rstrip("\"'\u201d\u2019)]")
        if core.endswith((".", "!", "?")):
            n += 1
            open_sentence = False
        else:
            open_sentence = True
    return n + (1 if open_sentence else 0)


def div(a: float, b: float) -> float:
    return a / b if b else 0.0


def signals(text: str) -> dict[str, float | int | bool]:
    """Every signal of one document, by the definitions."""
    out: dict[str, float | int | bool] = {}
    n_chars = len(text)

    paragraphs = re.split(r"\n{2,}", strip(text))
    dup, dup_chars = find_duplicates(paragraphs)
    out["dup_para_frac"] = div(dup, len(paragraphs))
    out["dup_para_char_frac"] = div(dup_chars, n_chars)
    runs = re.split("\n+", text)
    dup, dup_chars = find_duplicates(runs)
    out["dup_line_frac"] = div(dup, len(runs))
    out["dup_line_char_frac"] = div(dup_chars, n_chars)

    words = split_words(text)
    for n in (2, 3, 4):
        out[f"top_{n}_gram_char_frac"] = div(top_ngram_chars(words, n), n_chars)
    for n in range(5, 11):
        out[f"dup_{n}_gram_char_frac"] = div(dup_ngram_chars(words, n), n_chars)

    n_words = len(words)
    non_symbol = [w for w in words if any(not is_symbol_char(c) for c in w)]
    lines = split_lines(text)
    out["n_chars"] = n_chars
    out["n_words"] = n_words
    out["n_non_symbol_words"] = len(non_symbol)
    out["mean_word_length"] = div(sum(len(w) for w in non_symbol), len(non_symbol))
    out["hash_word_ratio"] = div(text.count("#"), n_words)
    out["ellipsis_word_ratio"] = div(text.count("...") + text.count("…"), n_words)
    out["bullet_line_frac"] = div(
        sum(1 for ln in lines if lstrip(ln).startswith("•") or lstrip(ln).startswith("-")), len(lines)
    )
    out["ellipsis_line_frac"] = div(
        sum(1 for ln in lines if rstrip(ln).endswith("...") or rstrip(ln).endswith("…")), len(lines)
    )
    out["alpha_word_frac"] = div(sum(1 for w in words if any(c.isalpha() for c in w)), n_words)
    out["stop_word_count"] = len(STOP_WORDS & set(words))

    kept = sentences = too_long = 0
    lorem = curly = False
    for raw in lines:
        line = strip(raw)
        line_words = split_words(line)
        if any(len(w) > 1000 for w in line_words):
            too_long += 1
            continue
        line = CITATION.sub("", line)
        if not line.endswith((".", "?", "!", '"', "'")) or line.endswith("..."):
            continue
        if len(line_words) < 3:
            continue
        lower = line.lower()
        if "lorem ipsum" in lower:
            lorem = True
        if "javascript" in lower:
            continue
        if "{" in line:
            curly = True
        if any(p in lower for p in POLICY):
            continue
        kept += 1
        sentences += count_sentences(line)
    out["c4_lines_kept_frac"] = div(kept, len(lines))
    out["c4_sentences"] = sentences
    out["c4_lorem_ipsum"] = lorem
    out["c4_curly_bracket"] = curly
    out["c4_too_long_word_lines"] = too_long

    fw = [ln for ln in lines if strip(ln) != ""]
    out["fineweb_lines"] = len(fw)
    out["fineweb_line_punct_ratio"] = div(sum(1 for ln in fw if ln[-1] in SENTENCE_TERMINAL), len(fw))
    out["fineweb_short_line_ratio"] = div(sum(1 for ln in fw if len(ln) <= 30), len(fw))
    out["fineweb_char_dup_ratio"] = div(find_duplicates(fw)[1], len(text.replace("\n", "")))
    out["fineweb_newline_word_ratio"] = div(text.count("\n"), n_words)
    return out


def reason(sig: dict[str, float | int | bool]) -> str:
    """The first failing default rule, written out rule by rule (independent of QualityThresholds)."""
    checks: list[tuple[str, bool]] = [
        ("dup_para_frac", sig["dup_para_frac"] > 0.3),
        ("dup_para_char_frac", sig["dup_para_char_frac"] > 0.2),
        ("dup_line_frac", sig["dup_line_frac"] > 0.3),
        ("dup_line_char_frac", sig["dup_line_char_frac"] > 0.2),
        ("top_2_gram", sig["top_2_gram_char_frac"] > 0.2),
        ("top_3_gram", sig["top_3_gram_char_frac"] > 0.18),
        ("top_4_gram", sig["top_4_gram_char_frac"] > 0.16),
    ]
    for n, frac in zip(range(5, 11), (0.15, 0.14, 0.13, 0.12, 0.11, 0.10), strict=True):
        checks.append((f"duplicated_{n}_n_grams", sig[f"dup_{n}_gram_char_frac"] > frac))
    checks += [
        ("gopher_short_doc", sig["n_non_symbol_words"] < 50),
        ("gopher_long_doc", sig["n_non_symbol_words"] > 100_000),
        ("gopher_below_avg_threshold", sig["mean_word_length"] < 3),
        ("gopher_above_avg_threshold", sig["mean_word_length"] > 10),
        ("gopher_too_many_hashes", sig["hash_word_ratio"] > 0.1),
        ("gopher_too_many_ellipsis", sig["ellipsis_word_ratio"] > 0.1),
        ("gopher_too_many_bullets", sig["bullet_line_frac"] > 0.9),
        ("gopher_too_many_end_ellipsis", sig["ellipsis_line_frac"] > 0.3),
        ("gopher_below_alpha_threshold", sig["alpha_word_frac"] < 0.8),
        ("gopher_enough_stop_words", sig["stop_word_count"] < 2),
        ("c4_lorem_ipsum", bool(sig["c4_lorem_ipsum"])),
        ("c4_curly_bracket", bool(sig["c4_curly_bracket"])),
        ("c4_too_few_sentences", sig["c4_sentences"] < 5),
        ("fineweb_empty", sig["fineweb_lines"] == 0),
        ("fineweb_line_punct_ratio", sig["fineweb_line_punct_ratio"] < 0.12),
        ("fineweb_short_line_ratio", sig["fineweb_short_line_ratio"] > 0.67),
        ("fineweb_char_dup_ratio", sig["fineweb_char_dup_ratio"] > 0.01),
        ("fineweb_list_ratio", sig["fineweb_newline_word_ratio"] > 0.3),
    ]
    for name, failed in checks:
        if failed:
            return name
    return ""
