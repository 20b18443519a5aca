"""Stop sequences applied by the gateway for schemas without string stops (neuron, jumpstart, text2text).

The output is cut before the first occurrence of any stop string (OpenAI semantics: the stop text is
not returned). Applied to native-stop schemas too, where it is a no-op unless the container returned
the stop text itself.
"""

from __future__ import annotations

from collections.abc import Sequence


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Return (text before the earliest stop, whether a stop was found)."""
    first = -1
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop)
        if at != -1 and (first == -1 or at < first):
            first = at
    return (text, False) if first == -1 else (text[:first], True)


class StopScanner:
    """Stop sequences over a stream of text deltas.

    Text from the earliest position that could still begin a stop sequence is held back until later
    deltas decide it (a longer stop starting earlier beats a shorter one matched later in the buffer);
    nothing at or after the first stop is ever released.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Return the text that is now safe to emit."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buffer = self._held + text
        full = _first_match(buffer, self.stops)
        partial = self._first_partial(buffer)
        if full is not None and (partial is None or full <= partial):
            self._held, self.stopped = "", True
            return buffer[:full]
        cut = len(buffer) if partial is None else partial
        self._held = buffer[cut:]
        return buffer[:cut]

    def flush(self) -> str:
        """The stream ended: release what was held back, up to a stop it may contain."""
        held, self._held = self._held, ""
        if self.stopped:
            return ""
        text, self.stopped = cut_at_stop(held, self.stops)
        return text

    def _first_partial(self, buffer: str) -> int | None:
        """Earliest index whose suffix is a proper prefix of some stop (it may still become one)."""
        longest = max(len(s) for s in self.stops)
        for start in range(max(0, len(buffer) - longest + 1), len(buffer)):
            tail = buffer[start:]
            if any(len(tail) < len(stop) and stop.startswith(tail) for stop in self.stops):
                return start
        return None


def _first_match(text: str, stops: Sequence[str]) -> int | None:
    found = [at for at in (text.find(stop) for stop in stops) if at != -1]
    return min(found) if found else None
