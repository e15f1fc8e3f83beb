"""Prometheus text for /metrics: requests by path and status, token and latency sums, engine gauges."""

from __future__ import annotations

import threading


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.counters = {"prompt_tokens_total": 0, "completion_tokens_total": 0, "reasoning_tokens_total": 0,
                         "request_duration_seconds_sum": 0.0, "request_duration_seconds_count": 0,
                         "time_to_first_token_seconds_sum": 0.0, "engine_restarts_total": 0}

    def count(self, path: str, status: int) -> None:
        with self.lock:
            self.requests[(path, status)] = self.requests.get((path, status), 0) + 1

    def bump(self, name: str) -> None:
        with self.lock:
            self.counters[name] += 1

    def record(self, usage: dict) -> None:
        with self.lock:
            self.counters["prompt_tokens_total"] += usage.get("prompt_tokens", 0)
            self.counters["completion_tokens_total"] += usage.get("completion_tokens", 0)
            self.counters["reasoning_tokens_total"] += usage.get("reasoning_tokens", 0)
            self.counters["request_duration_seconds_sum"] += usage.get("duration_s", 0.0)
            self.counters["request_duration_seconds_count"] += 1
            self.counters["time_to_first_token_seconds_sum"] += usage.get("time_to_first_token_s", 0.0)

    def render(self, engine) -> str:
        lines = ["# TYPE r1_distill_requests_total counter"]
        with self.lock:
            for (path, status), n in sorted(self.requests.items()):
                lines.append(f'r1_distill_requests_total{{path="{path}",status="{status}"}} {n}')
            for name, value in self.counters.items():
                kind = "counter" if name.endswith(("_total", "_sum", "_count")) else "gauge"
                lines += [f"# TYPE r1_distill_{name} {kind}", f"r1_distill_{name} {value}"]
        stats = engine.stats if engine else {}
        gauges = {"queue_length": engine.queue_length() if engine else 0,
                  "slots_busy": engine.busy_slots() if engine else 0,
                  "slots_total": engine.parallel if engine else 0,
                  "requests_cancelled_total": stats.get("cancelled", 0),
                  "request_errors_total": stats.get("request_errors", 0),
                  "decode_calls_total": stats.get("decode_calls", 0),
                  "prompt_tokens_reused_total": stats.get("prompt_tokens_reused", 0),
                  "prompt_cache_restores_total": stats.get("prompt_cache_restores", 0),
                  "reasoning_loops_closed_total": stats.get("reasoning_loops_closed", 0),
                  "draft_tokens_total": stats.get("draft_tokens", 0),
                  "draft_tokens_accepted_total": stats.get("draft_tokens_accepted", 0)}
        drafted = stats.get("draft_tokens", 0)
        gauges["draft_acceptance_rate"] = round(stats.get("draft_tokens_accepted", 0) / drafted, 6) if drafted else 0.0
        cache = getattr(engine, "prompt_cache", None)
        gauges["prompt_cache_saves_total"] = getattr(cache, "saves", 0)
        gauges["prompt_cache_save_seconds_total"] = round(getattr(cache, "save_seconds", 0.0), 6)
        for name, value in gauges.items():
            lines += [f"# TYPE r1_distill_{name} {'counter' if name.endswith('_total') else 'gauge'}",
                      f"r1_distill_{name} {value}"]
        return "\n".join(lines) + "\n"
