"""The root ``phicorpus`` click group and the one place errors become one-line messages."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from phicorpus import __version__

P = ParamSpec("P")
R = TypeVar("R")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="phicorpus")
def main() -> None:
    """Build textbook-quality synthetic pretraining corpora and write them as token shards."""


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the tool's own errors (and a full disk) into ``Error: ...`` and exit status 1.

    Stage errors already name their input (file, line, key); a traceback would only bury it.
    Anything unexpected still raises with its traceback.
    """
    from phicorpus.catalog import CatalogError
    from phicorpus.config import ConfigError
    from phicorpus.corpus import CorpusError
    from phicorpus.executors import ExecutorError

    known: tuple[type[BaseException], ...] = (
        CatalogError,
        ConfigError,
        CorpusError,
        ExecutorError,
        ValueError,
    )

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except known as exc:
            raise click.ClickException(str(exc).strip().splitlines()[0]) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                where = f" writing {exc.filename}" if exc.filename else ""
                raise click.ClickException(f"disk full{where}: nothing was registered") from exc
            if exc.filename:
                raise click.ClickException(f"{exc.filename}: {exc.strerror}") from exc
            raise

    return wrapper


def llm_endpoints(llm: tuple[str, ...]) -> list[str]:
    """The ``--llm`` base URLs, else ``$OPENAI_BASE_URL``; a usage error when there is neither."""
    urls = list(llm) or ([os.environ["OPENAI_BASE_URL"]] if os.environ.get("OPENAI_BASE_URL") else [])
    if not urls:
        raise click.UsageError("no LLM endpoint: give --llm URL or set OPENAI_BASE_URL")
    return urls
