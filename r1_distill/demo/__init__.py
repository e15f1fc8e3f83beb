"""`r1-distill demo`: the whole R1 recipe at toy scale, offline, on a CPU."""
