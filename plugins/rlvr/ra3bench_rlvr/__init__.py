"""ra3bench's RLVR trainer: GRPO with rewards from the ra3bench sandbox, packaged as a plugin.

Registered by the entry point ``rlvr = "ra3bench_rlvr:RLVRTrainer"`` in the ``ra3bench.trainers``
group; ``--trainer ra3bench_rlvr:RLVRTrainer`` works without it. docs/rlvr.md is the guide.
"""

from ra3bench_rlvr.config import RLVRConfig
from ra3bench_rlvr.trainer import RLVRTrainer

__all__ = ["RLVRConfig", "RLVRTrainer"]
