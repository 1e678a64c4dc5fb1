"""RA3 (Reasoning as Action Abstractions): EM mid-training with comment lines as latent intents.

E-step: the model, as latent policy q, learns by RL where to insert a one-line ``# ...`` intent
so that the frozen model pi predicts the expert's next code lines better, at a cost per comment.
Annotate: q writes comments into the corpus (``annotated.jsonl``). M-step: NTP (the ``ntp``
plugin's loop) on the annotated traces. ``/work/shared/RA3_METHOD.md`` is the method;
``docs/ra3.md`` the implementation, knob by knob. Registered as the ``ra3`` trainer by the entry
point ``ra3 = "ra3bench_ra3:RA3Trainer"``.
"""

from ra3bench_ra3.config import RA3Config
from ra3bench_ra3.trainer import RA3Trainer

__all__ = ["RA3Config", "RA3Trainer"]
