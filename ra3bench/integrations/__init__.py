"""ra3bench inside other training stacks: each module is a thin caller of :class:`ra3bench.Session`.

* ``ra3bench.integrations.trl``: a reward function for TRL's ``GRPOTrainer``;
* ``ra3bench.integrations.hf``: a ``TrainerCallback`` that evaluates on a schedule of steps;
* ``ra3bench.integrations.verl``: a ``compute_score`` for verl's custom reward function.
"""
