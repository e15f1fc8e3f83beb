"""The engine's life: loaded in the background (503 meanwhile), watched, and restarted when its thread dies."""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Optional

from r1_distill.llama.chat_template import ChatFormatter
from r1_distill.llama.engine import BatchEngine

from .errors import APIError

log = logging.getLogger("r1_distill.serve")


class Runtime:
    """Holds the engine. Loads it in the background (503 meanwhile); if its thread dies, requests get a
    503 at once and a fresh engine is loaded; if that fails too, the process exits (when asked to) so
    that its supervisor restarts it."""

    def __init__(self, factory: Callable[[], BatchEngine], metrics, *, exit_on_failure: bool = False):
        self.factory, self.metrics, self.exit_on_failure = factory, metrics, exit_on_failure
        self.engine: Optional[BatchEngine] = None
        self.formatter: Optional[ChatFormatter] = None
        self.error: Optional[str] = None
        self.restarting = False
        self.last_failure: Optional[str] = None  # why the engine last stopped
        self.lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._load, name="r1-distill-load", daemon=True).start()

    def _load(self, after_failure: bool = False) -> None:
        try:
            engine = self.factory()
            engine.on_failure = self._engine_failed
            self.formatter = ChatFormatter(engine)
            self.engine, self.error = engine, None
            if not engine.healthy:  # died before the callback was set
                self._engine_failed(engine.failure or "the engine thread is not running")
        except Exception as exc:  # reported by /health and every request
            self.error = str(exc)
            if after_failure and self.exit_on_failure:
                log.error("the engine could not be restarted (%s): exiting", exc)
                os._exit(70)
        finally:
            self.restarting = False

    def _engine_failed(self, reason: str) -> None:
        with self.lock:
            if self.restarting:
                return
            self.restarting = True
            self.last_failure = reason
        log.error("the engine stopped (%s): restarting it", reason)
        self.metrics.bump("engine_restarts_total")
        old, self.engine = self.engine, None

        def restart():
            if old is not None:
                try:
                    old.close()
                except Exception:
                    pass
            self._load(after_failure=True)

        threading.Thread(target=restart, name="r1-distill-restart", daemon=True).start()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def status(self) -> tuple[int, dict]:
        engine = self.engine
        if self.error:
            return 503, {"status": "error", "error": self.error}
        if engine is not None and not engine.healthy:
            self._engine_failed(engine.failure or "the engine thread is not running")
            engine = None
        if engine is None:
            return 503, {"status": "restarting" if self.restarting else "loading"}
        return 200, {"status": "ok", "slots_busy": engine.busy_slots(), "slots_total": engine.parallel,
                     "queue_length": engine.queue_length()}

    def engine_or_503(self) -> BatchEngine:
        if self.error:
            raise APIError(503, f"the model failed to load: {self.error}", type_="server_error")
        engine = self.engine
        if engine is not None and not engine.healthy:
            self._engine_failed(engine.failure or "the engine thread is not running")
            engine = None
        if engine is None:
            what = (f"the engine is restarting after a failure ({self.last_failure})" if self.restarting
                    else "the model is still loading")
            raise APIError(503, what, type_="server_error", headers={"Retry-After": "2"})
        return engine
