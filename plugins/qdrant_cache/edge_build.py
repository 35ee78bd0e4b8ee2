"""Build a copy of an edge shard's indexes, in a process of its own.

``EdgeShard.optimize()`` holds the GIL from start to end (about two minutes of one core for
100,000 vectors of 384 dimensions), so run in the gateway's process it would freeze the event
loop and every lookup with it. :mod:`.edge` therefore copies the shard and runs this script
on the copy (``python edge_build.py <directory>``), at a lower CPU priority; it imports
nothing but qdrant-edge-py, so it starts fast however the gateway was installed.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    """Optimize the shard in ``argv[1]`` (HNSW, merges, vacuum) and close it."""
    import qdrant_edge

    if len(argv) != 2:
        print("usage: edge_build.py <shard directory>", file=sys.stderr)
        return 2
    # The gateway answers requests on the other cores: let it have them first.
    os.nice(10)
    shard = qdrant_edge.EdgeShard.load(argv[1])
    try:
        shard.optimize()
    finally:
        shard.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
