"""The ``trainer:`` section of an RLVR run: GRPO's knobs, the training problems, the reward.

Every field has a default, so a YAML file names only what it changes. The defaults are those of
a small-model run on CPU (4 prompts x 8 completions per step, no KL, one update per batch);
``docs/rlvr.md`` says what each one trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RLVRConfig:
    steps: int = 100  # training steps: one batch of prompts, G completions each, scored, then updates_per_batch updates
    # -- training problems (problems.py): mbpp-train | codeforces | livecodebench
    problems: list[str] = field(default_factory=lambda: ["mbpp-train"])
    max_problems: int = 0  # per problem set: a seeded subset of N problems (0: all)
    problem_seed: int = 0
    lcb_end_date: str = "2024-07-31"  # livecodebench: problems with contest_date <= this date only
    data_dir: str = ""  # where the data files are ("": --data-dir / $RA3BENCH_DATA_DIR / the cache)
    # -- the policy's samples
    prompts_per_step: int = 4
    group_size: int = 8  # G: completions per prompt; advantages are normalised within the group
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    prompt_style: str = "auto"  # auto (chat if the tokenizer has a chat template) | chat | completion
    generation_batch: int = 32  # sequences decoded at once (continuous batching: a finished one is replaced)
    generation_batching: str = "continuous"  # continuous | static (transformers' generate per batch, as before)
    # -- GRPO
    lr: float = 1e-6
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    clip_eps: float = 0.2  # PPO ratio clip; only active when updates_per_batch > 1
    updates_per_batch: int = 1  # mu: optimizer updates per batch (the first is on-policy)
    beta: float = 0.0  # KL(policy || reference) coefficient; the reference is the initial model
    scale_rewards: bool = True  # divide the group-centred reward by the group's std (Dr. GRPO: False)
    micro_batch: int = 8  # sequences per forward/backward
    # -- reward (reward.py)
    reward: str = "binary"  # binary: 1 if every test passes | fraction: tests passed / tests
    # a run has one sandbox, eval.sandbox / eval.workers, for rewards and evaluations: these may only repeat it
    sandbox: str = ""
    workers: int = 0
    # -- where to start
    init: str = ""  # a checkpoint folder (full model or LoRA adapter) loaded over model.name's weights

    def __post_init__(self) -> None:
        """Every bad value at once, one line (the config loader reports it before any model loads)."""
        from ra3bench_rlvr.problems import PROBLEM_SETS

        unknown = [name for name in self.problems if name not in PROBLEM_SETS]
        errors = [f"unknown problem set {name!r} (known: {', '.join(PROBLEM_SETS)})" for name in unknown]
        if not self.problems:
            errors.append("problems is empty")
        checks = {
            "steps >= 1": self.steps >= 1,
            "group_size >= 2 (GRPO's baseline is the group)": self.group_size >= 2,
            "prompts_per_step >= 1": self.prompts_per_step >= 1,
            "max_new_tokens >= 1": self.max_new_tokens >= 1,
            "temperature > 0 (GRPO samples)": self.temperature > 0,
            "0 < top_p <= 1": 0 < self.top_p <= 1,
            "updates_per_batch >= 1": self.updates_per_batch >= 1,
            "micro_batch >= 1": self.micro_batch >= 1,
            "generation_batch >= 1": self.generation_batch >= 1,
            "generation_batching is continuous or static": self.generation_batching in ("continuous", "static"),
            "beta >= 0": self.beta >= 0,
            "reward is binary or fraction": self.reward in ("binary", "fraction"),
            "prompt_style is auto, chat or completion": self.prompt_style in ("auto", "chat", "completion"),
        }
        errors += [f"need {what}" for what, ok in checks.items() if not ok]
        if errors:
            raise ValueError("; ".join(errors))
