"""Latency model: time to first token grows with the prompt, then a fixed decode time per output token.

Figures are plausible orders of magnitude for an 8B-13B model, not measurements: Inferentia2 decodes
slower per token than a GPU here. ``time_scale`` multiplies every delay (0.01 makes tests fast while
keeping the shape). In ``zero`` mode nothing sleeps, so benchmarks measure only the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("zero", "realistic")


@dataclass(frozen=True, slots=True)
class AcceleratorProfile:
    ttft_base_s: float
    ttft_per_prompt_token_s: float
    decode_per_token_s: float


PROFILES: dict[str, AcceleratorProfile] = {
    "gpu": AcceleratorProfile(0.050, 0.0002, 0.020),
    "inf2": AcceleratorProfile(0.080, 0.0004, 0.030),
    "trn1": AcceleratorProfile(0.080, 0.0004, 0.030),
}


class LatencyModel:
    def __init__(self, mode: str = "zero", time_scale: float = 1.0) -> None:
        self.configure(mode, time_scale)

    def configure(self, mode: str | None = None, time_scale: float | None = None) -> None:
        if mode is not None:
            if mode not in MODES:
                raise ValueError(f"latency must be one of {MODES}, got {mode!r}")
            self.mode = mode
        if time_scale is not None:
            if time_scale < 0:
                raise ValueError(f"time_scale must be >= 0, got {time_scale}")
            self.time_scale = float(time_scale)

    @property
    def enabled(self) -> bool:
        return self.mode == "realistic" and self.time_scale > 0

    def _profile(self, accelerator: str) -> AcceleratorProfile:
        return PROFILES.get(accelerator, PROFILES["gpu"])

    def ttft(self, accelerator: str, prompt_tokens: int) -> float:
        if not self.enabled:
            return 0.0
        p = self._profile(accelerator)
        return (p.ttft_base_s + p.ttft_per_prompt_token_s * prompt_tokens) * self.time_scale

    def decode(self, accelerator: str) -> float:
        return self._profile(accelerator).decode_per_token_s * self.time_scale if self.enabled else 0.0

    def total(self, accelerator: str, prompt_tokens: int, tokens: int) -> float:
        """A whole non-streamed answer: first token, then the rest decoded one by one."""
        if not self.enabled:
            return 0.0
        return self.ttft(accelerator, prompt_tokens) + self.decode(accelerator) * max(0, tokens - 1)
