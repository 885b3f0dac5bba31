"""``python -m phicorpus.topics [DIR]`` validates a topics directory."""

from __future__ import annotations

import sys

from phicorpus.topics import main

sys.exit(main())
