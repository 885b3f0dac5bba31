"""Validate the topic seeds: ``python topics/check.py [DIR]`` (default: this directory).

Prints leaves per subject, then one ``file:line: problem`` per violation; exits 1 if any.
The rules live in ``phicorpus.topics`` (``parse_topic_file`` and ``check_topics``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from phicorpus.topics import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or [str(Path(__file__).resolve().parent)]))
