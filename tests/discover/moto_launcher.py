"""Run moto's server (`python -m tests.discover.moto_launcher -H 127.0.0.1 -p PORT`) accepting today's instance types.

moto 5.x checks CreateEndpointConfig's InstanceType against a fixed list from around 2019: it has ml.g4dn and
ml.inf1 but not ml.g5, ml.g6, ml.inf2 or ml.trn1, which is where LLM endpoints run. SageMaker itself takes them,
so this launcher lets every well-formed `ml.<family>.<size>` through and leaves the rest of moto untouched. The
CLI test uses the stock `python -m moto.server` with types from moto's list, so both paths are exercised.
"""

from __future__ import annotations

import re
import sys

from moto.sagemaker.models import FakeEndpointConfig
from moto.server import main

_original = FakeEndpointConfig.validate_instance_type


def _validate_instance_type(self: FakeEndpointConfig, instance_type: str) -> None:
    if not re.fullmatch(r"ml\.[a-z0-9]+\.[a-z0-9]+", instance_type):
        _original(self, instance_type)


FakeEndpointConfig.validate_instance_type = _validate_instance_type  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
