"""The root ``phicorpus`` click group and the one place errors become one-line messages."""

from __future__ import annotations

import errno
import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from phicorpus import __version__

P = ParamSpec("P")
R = TypeVar("R")


#: Exit status after Ctrl-C (128 + SIGINT), as a shell reports a process killed by it.
EXIT_INTERRUPTED = 130


class PhicorpusGroup(click.Group):
    """The root group: Ctrl-C and errors nobody anticipated end in one line, never a traceback.

    A stage stops cleanly on ``KeyboardInterrupt`` (its open transaction rolls back, temporary
    files are removed, nothing half-written is registered), then the command exits 130. Any other
    unexpected exception becomes ``Error: internal error ...`` and exit 1; ``--traceback`` shows it.
    """

    def invoke(self, ctx: click.Context) -> object:
        import duckdb

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (KeyboardInterrupt, duckdb.InterruptException):
            click.echo(
                "interrupted: stopped cleanly (nothing half-written was registered); "
                "re-run the same command to resume",
                err=True,
            )
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if isinstance(exc, RuntimeError) and "Query interrupted" in str(exc):
                click.echo("interrupted: stopped cleanly; re-run the same command to resume", err=True)
                ctx.exit(EXIT_INTERRUPTED)
            if ctx.params.get("traceback"):
                raise
            raise click.ClickException(_internal_error(exc)) from exc


def _internal_error(exc: Exception) -> str:
    """One line for an exception no command turned into a message of its own."""
    import duckdb

    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, duckdb.IOException | duckdb.FatalException | duckdb.InternalException):
        from phicorpus.catalog import DAMAGED_ADVICE, WRITER_DAMAGED_ADVICE

        if ".catalog-writer.duckdb" in first:
            return f"catalog damaged ({first}); {WRITER_DAMAGED_ADVICE}"
        if "catalog.duckdb" in first:
            return f"catalog damaged ({first}); {DAMAGED_ADVICE}"
        return first
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or first}"
    where = f": {first}" if first else ""
    return f"internal error ({type(exc).__name__}{where}); re-run with --traceback and report it"


@click.group(cls=PhicorpusGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="phicorpus")
@click.option("--traceback", is_flag=True, hidden=True, help="Show the traceback of an internal error.")
def main(traceback: bool) -> None:
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


def checked_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: a build or source name is one path component of ``[A-Za-z0-9._-]``."""
    from phicorpus.corpus import CorpusError, check_name

    if value is None:
        return None
    try:
        return check_name(value, "name")
    except CorpusError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


#: ``--json``: a stage's summary as raw JSON instead of the table.
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")


def print_summary(title: str, stats: Mapping[str, Any], as_json: bool) -> None:
    """A stage's statistics as a two-column table (or, with ``--json``, the raw JSON)."""
    if as_json:
        click.echo(json.dumps(stats, indent=2, sort_keys=True, default=str))
        return
    click.echo(title)
    for line in summary_lines(stats):
        click.echo(line)
    for warning in stats.get("warnings", ()):
        click.echo(f"warning: {warning}", err=True)


def summary_lines(stats: Mapping[str, Any], indent: int = 2) -> list[str]:
    """Rows ``  name    value`` of a statistics mapping; nested mappings and lists indented."""
    pad = " " * indent
    lines: list[str] = []
    width = max((len(str(k)) for k in stats), default=0) + 2
    for key, value in stats.items():
        label = str(key).replace("_", " ") if indent == 2 else str(key)  # nested: reasons, sources
        if isinstance(value, Mapping):
            lines.append(f"{pad}{label}" + ("" if value else "  -"))
            lines.extend(summary_lines(value, indent + 2))
        elif isinstance(value, (list, tuple)):
            if all(isinstance(v, (int, float)) for v in value):
                lines.append(f"{pad}{label.ljust(width)}{', '.join(map(_cell, value)) or '-'}")
            else:
                lines.append(f"{pad}{label}")
                for item in value:
                    if isinstance(item, Mapping):
                        lines.extend(summary_lines(item, indent + 4))
                    else:
                        lines.append(f"{pad}  {_cell(item)}")
        else:
            lines.append(f"{pad}{label.ljust(width)}{_cell(value)}")
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def corpus_from(given: Path | None, *aliases: tuple[str, Path | None]) -> Path:
    """The corpus directory: the positional ``CORPUS`` argument, or one of the older spellings
    (``--out``, ``--corpus``) kept as hidden aliases; a usage error when none or two differ."""
    found = [(name, path) for name, path in (("CORPUS", given), *aliases) if path is not None]
    if not found:
        raise click.UsageError("missing the corpus directory: give it as the first argument (CORPUS)")
    first = found[0][1]
    for name, path in found[1:]:
        if Path(path).resolve() != Path(first).resolve():
            raise click.UsageError(f"two corpus directories given: {found[0][0]} {first} and {name} {path}")
    return Path(first)


def corpus_alias(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A hidden ``--out`` / ``--corpus`` option: the old spelling of the positional CORPUS."""
    dest = name.lstrip("-").replace("-", "_") + "_flag"
    return click.option(
        name, dest, type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True
    )


#: ``--seed``: seeds are non-negative (NumPy and the Rust core take unsigned seeds).
SEED = click.IntRange(min=0)


def llm_endpoints(llm: tuple[str, ...]) -> list[str]:
    """The ``--llm`` base URLs, else ``$OPENAI_BASE_URL``; a usage error when there is neither."""
    urls = list(llm) or ([os.environ["OPENAI_BASE_URL"]] if os.environ.get("OPENAI_BASE_URL") else [])
    if not urls:
        raise click.UsageError("no LLM endpoint: give --llm URL or set OPENAI_BASE_URL")
    return urls
