"""ra3bench's next-token-prediction trainer, packaged as any third-party trainer would be.

It imports only ``ra3bench.training`` (the public API) and is registered by the entry point
``ntp = "ra3bench_ntp:NTPTrainer"`` in the ``ra3bench.trainers`` group of pyproject.toml.
"""

from ra3bench_ntp.trainer import NTPConfig, NTPTrainer, batch_loss, ntp_steps

__all__ = ["NTPConfig", "NTPTrainer", "batch_loss", "ntp_steps"]
