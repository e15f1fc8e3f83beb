"""How many threads llama.cpp gets by default: the machine's physical cores, as llama-server picks.

Hyper-threads share a core's vector units, so one thread per physical core decodes fastest; llama.cpp's
library default (4) oversubscribes a 2-core machine and loses about a third of the speed there.
"""

from __future__ import annotations

import os
from pathlib import Path


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (sibling hyper-threads counted once)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))
