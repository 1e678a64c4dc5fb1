"""RA3's knobs: every one of ``RA3_METHOD.md`` with its default, plus the M-step's NTP settings.

Items the paper does not state are marked *(choice)*; ``docs/ra3.md`` says why each default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class RA3Config:
    # --- the budget: the curve's x-axis is M-step optimizer steps, as NTP's is -----------------
    steps: int = 100  # M-step optimizer steps in all, split evenly over the EM iterations
    em_iterations: int = 1  # E-step -> annotate -> M-step, this many times (the paper: 1-2)
    seed: int = 0  # E-step sampling and annotation (the M-step's data order uses run.seed, as NTP)

    # --- the latent model ----------------------------------------------------------------------
    penalty_c: float = 0.05  # cost of one <think> (the prior's KL term); huge c = plain NTP
    max_latent_tokens: int = 24  # (choice) tokens of one comment, its newline included
    latent_temperature: float = 1.0  # (choice) q's sampling temperature (decisions and comments)
    think_bias: float = 0.0  # (choice, not in the paper) logit bias on "#"-starting tokens at boundaries

    # --- the E-step (RL on the latent tokens) --------------------------------------------------
    estep_steps: int = 8  # policy-gradient steps per E-step (the paper: rewards converge in a few)
    estep_lr: float = 1e-5
    estep_batch_size: int = 4  # snippets per E-step step
    group_size: int = 4  # (choice) rollouts per snippet (G), the group baseline's sample
    reward_horizon: Literal["until_group_think", "until_next_think", "next_line", "return_to_go"] = (
        "until_group_think"  # (choice) docs/ra3.md "Which horizon": measured, until_next_think's acts were noisier
    )
    reward_norm: Literal["mean_per_token", "sum"] = "mean_per_token"  # (choice) of the code lines' log-likelihood
    format_reward_weight: float = 0.0  # (choice) minus this per malformed comment
    normalize_advantage: bool = False  # (choice) divide the group advantage by the group's std
    kl_coef: float = 0.0  # (choice) KL(q || q at the E-step's start) on the latent tokens
    estep_max_grad_norm: float = 1.0
    estep_micro_batch: int = 8  # sequences per forward pass (memory, not math)
    estep_max_tokens: int = 1024  # snippets longer than this (prompt + code) stay raw: no rollouts
    # held out of the E-step's batches (at most a quarter of the snippets; none under 32): q's think rate and
    # the comments' gain on them before and after each E-step, in curve.jsonl (probe_*) and estep.png; 0: none
    probe_snippets: int = 16

    # --- annotate and M-step -------------------------------------------------------------------
    annotate_fraction: float = 1.0  # share of the corpus q annotates (a seeded subset); the rest stays raw
    raw_data_mix: float = 0.0  # raw copies of this share (0..1) of the annotated traces are added to the M-step
    mask_latent_tokens: bool = False  # M-step loss off the inserted comment lines
    mstep_lr: float = 5e-5
    batch_size: int = 8  # the M-step's NTP settings (ra3bench_ntp.NTPConfig), per EM iteration
    grad_accum: int = 1
    warmup_steps: int = 10
    schedule: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:  # the config loader reports it with the other errors, before loading
        errors = config_errors(self)
        if errors:
            raise ValueError("; ".join(errors))


def config_errors(cfg: RA3Config) -> list[str]:
    """What a type check cannot see, all at once."""
    errors = []
    if cfg.em_iterations < 1 or cfg.steps < cfg.em_iterations:
        errors.append("em_iterations must be at least 1 and at most steps (each M-step takes a step)")
    if cfg.group_size < 2:
        errors.append("group_size must be at least 2 (the baseline is the group's mean)")
    if not (0.0 <= cfg.annotate_fraction <= 1.0 and 0.0 <= cfg.raw_data_mix <= 1.0):
        errors.append("annotate_fraction and raw_data_mix must be in [0, 1]")
    if cfg.latent_temperature <= 0.0 or cfg.max_latent_tokens < 1:
        errors.append("latent_temperature must be > 0 and max_latent_tokens >= 1")
    if cfg.probe_snippets < 0:
        errors.append("probe_snippets must be >= 0 (0: no probe)")
    if cfg.estep_steps < 0 or cfg.estep_batch_size < 1 or cfg.estep_micro_batch < 1:
        errors.append("estep_steps must be >= 0, estep_batch_size and estep_micro_batch >= 1")
    return errors
