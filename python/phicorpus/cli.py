"""The ``phicorpus`` command line. It only parses arguments and calls the stages."""

from __future__ import annotations

import click

from phicorpus import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="phicorpus")
def main() -> None:
    """Build textbook-quality synthetic pretraining corpora and write them as token shards."""


if __name__ == "__main__":  # pragma: no cover
    main()
