"""``python -m phicorpus.cli``."""

from phicorpus.cli import main

main()
