"""Small tokenizers trained in the test session (no hub access): GPT-2, GPT-2 with a prefix
space, CodeGen (GPT-2 + 38 whitespace-run tokens) and Llama-3 style."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as HfTokenizer

from phicorpus.tokenize import train_tokenizer

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

PROSE = [
    "The quick brown fox jumps over the lazy dog. It's the dog's day; they'll see, we'd know.",
    "Textbooks are all you need: a student learns from clear explanations and exercises.\n\n",
    "Café, naïve, résumé — Ωmega. 中文字符测试。 العربية نص. Ελληνικά κείμενο. हिन्दी पाठ।",
    "Numbers 1234567 and 3.14159, 2,718; prices $100 and €42.\tTabs\tand  double  spaces.",
    "Emoji 👍🏽 👨‍👩‍👧 🎉!!! Unicode spaces:\u3000\u00a0\u2028 end.\r\nWindows line\r\n",
]


def corpus_texts() -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    names = ["textwrap.py", "json/decoder.py", "json/encoder.py", "string.py", "heapq.py", "bisect.py"]
    code = [(root / n).read_text(encoding="utf-8") for n in names if (root / n).is_file()]
    return code + PROSE * 20


def build_gpt2(d: Path) -> Path:
    return train_tokenizer(corpus_texts(), 1500, d / "gpt2.json")


def build_gpt2_prefix(gpt2: Path, d: Path) -> Path:
    data = json.loads(gpt2.read_text(encoding="utf-8"))
    data["pre_tokenizer"]["add_prefix_space"] = True
    out = d / "gpt2-prefix.json"
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def build_codegen(gpt2: Path, d: Path) -> Path:
    tok = HfTokenizer.from_file(str(gpt2))
    runs = [" " * n for n in range(31, 1, -1)] + ["\t" * n for n in range(9, 1, -1)]
    assert len(runs) == 38
    tok.add_tokens([AddedToken(r, normalized=True, special=False) for r in runs])
    out = d / "codegen.json"
    tok.save(str(out))
    return out


def build_llama3(d: Path) -> Path:
    tok = HfTokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_texts(), trainer=trainer)
    bos = tok.token_to_id(specials[0])
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{specials[0]} $A", pair=f"{specials[0]} $A $B", special_tokens=[(specials[0], bos)]
            ),
        ]
    )
    out = d / "llama3.json"
    tok.save(str(out))
    return out


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tok")


@pytest.fixture(scope="session")
def gpt2_path(corpus_dir: Path) -> Path:
    return build_gpt2(corpus_dir)


@pytest.fixture(scope="session")
def gpt2_prefix_path(gpt2_path: Path, corpus_dir: Path) -> Path:
    return build_gpt2_prefix(gpt2_path, corpus_dir)


@pytest.fixture(scope="session")
def codegen_path(gpt2_path: Path, corpus_dir: Path) -> Path:
    return build_codegen(gpt2_path, corpus_dir)


@pytest.fixture(scope="session")
def llama3_path(corpus_dir: Path) -> Path:
    return build_llama3(corpus_dir)


@pytest.fixture(scope="session", params=["gpt2", "gpt2_prefix", "codegen", "llama3"])
def tokenizer_path(request: pytest.FixtureRequest) -> Path:
    path: Path = request.getfixturevalue(f"{request.param}_path")
    return path


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return corpus_texts()
