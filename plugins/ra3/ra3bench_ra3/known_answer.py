"""A task whose best latent policy is known, so that RA3's E-step can be checked to find it.

RL libraries test an algorithm on a bandit whose optimum is known; this is RA3's. Every snippet is

    def <name>(x):
        y = x <op> <digit>
        return y

The operator is the body's *kind*, and the function's name fixes it: each name belongs to one
kind. The prior pi (a tiny causal LM trained from scratch here, in seconds) was pretrained on a
corpus in which

* code with no comment has a kind drawn independently of its name, so without a comment the prior
  cannot tell the operator from the name (it has learned that they are unrelated);
* ``comment_rate`` of the snippets carry a plan, ``# plan: <kind>``, before the body line: the
  name's kind with probability ``plan_accuracy`` (else another), and the body follows the plan.

So the prior can use the name only through a comment: it writes plans mostly right and follows
them. On the task corpus (no comments; the kind is always the name's) the reward-maximising latent
policy is known:

* at the body line (the **informative** boundary), write the right plan when pi's reward gain
  from it (:func:`plan_gain`, in the reward's own units) exceeds the cost ``c``, and act otherwise;
* at every other boundary (the ``def`` line, before the name is known; the ``return`` line, which
  the body already fixes) act: a comment there cannot help pi and costs ``c``.

:func:`measure` reads a latent policy's think rate at both kinds of boundary and the accuracy of
its plans; :func:`run_estep` runs the real E-step (``estep.estep``) from the prior;
``python -m ra3bench_ra3.known_answer`` runs the whole experiment (docs/experiments/ra3_known_answer.md).
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ra3bench_ra3.annotate import Comment, comment_line
from ra3bench_ra3.config import RA3Config
from ra3bench_ra3.estep import estep, group_ends, rewards, score
from ra3bench_ra3.rollout import Policy, Rollout, Snippet, sample

PROMPT = '"""Apply the rule."""\n'
KINDS = {"add": "+", "sub": "-", "mul": "*", "div": "//"}
NAMES = {  # three names per kind
    "add": ["grow", "lift", "raise"],
    "sub": ["drop", "lower", "shrink"],
    "mul": ["scale", "stretch", "boost"],
    "div": ["split", "share", "part"],
}
KIND_OF = {name: kind for kind, names in NAMES.items() for name in names}
INFORMATIVE = 1  # the body line's boundary (boundaries: def 0, body 1, return 2)
_PLAN = re.compile(r"^\s*plan:\s*(add|sub|mul|div)")  # the kind a plan names first; what follows is format
_CLEAN = re.compile(r"^\s*plan:\s*(add|sub|mul|div)\s*$")


@dataclass(frozen=True)
class PriorCorpus:
    """How the prior's pretraining corpus is drawn (see the module's docstring)."""

    comment_rate: float = 0.3
    plan_accuracy: float = 0.85


def code(name: str, kind: str, digit: int, plan: str | None = None) -> str:
    """One snippet, with a plan comment before the body line when ``plan`` is given."""
    comment = f"    # plan: {plan}\n" if plan else ""
    return f"def {name}(x):\n{comment}    y = x {KINDS[kind]} {digit}\n    return y\n"


def prior_snippets(n: int, corpus: PriorCorpus, rng: random.Random) -> list[str]:
    """The prior's pretraining snippets: a plan (mostly the name's kind) is followed; no plan, any kind."""
    out = []
    for _ in range(n):
        name = rng.choice(list(KIND_OF))
        if rng.random() < corpus.comment_rate:
            plan = KIND_OF[name] if rng.random() < corpus.plan_accuracy else rng.choice(_others(KIND_OF[name]))
            out.append(code(name, plan, rng.randint(1, 9), plan))
        else:
            out.append(code(name, rng.choice(list(KINDS)), rng.randint(1, 9)))
    return out


def task_split(seed: int = 0, held_out_per_name: int = 3) -> tuple[list[Snippet], list[Snippet]]:
    """(train, held out): per name, ``held_out_per_name`` of its nine digits held out (drawn by ``seed``), so
    that held-out snippets are new pairs from the training distribution (every name, every digit is seen)."""
    rng = random.Random(seed)
    train, held = [], []
    for name, kind in KIND_OF.items():
        digits = list(range(1, 10))
        rng.shuffle(digits)
        held += [Snippet(PROMPT, code(name, kind, d)) for d in sorted(digits[:held_out_per_name])]
        train += [Snippet(PROMPT, code(name, kind, d)) for d in sorted(digits[held_out_per_name:])]
    return train, held


def _others(kind: str) -> list[str]:
    return [k for k in KINDS if k != kind]


def tokenizer_for_task() -> Any:
    """A byte-level BPE tokenizer trained on this task's text (names, plans and operators get tokens)."""
    from ra3bench.training import tiny_tokenizer

    rng = random.Random(0)
    corpus = [PROMPT, *prior_snippets(400, PriorCorpus(comment_rate=0.5), rng)]
    return tiny_tokenizer(vocab_size=320, corpus=corpus)


def pretrain_prior(
    seed: int = 0, steps: int = 2000, corpus: PriorCorpus = PriorCorpus(), batch_size: int = 32, lr: float = 3e-3
) -> tuple[Any, Any]:
    """(prior, tokenizer): a 2-layer Llama trained from scratch on the prior corpus (NTP, code tokens)."""
    from ra3bench.training import tiny_model

    tokenizer = tokenizer_for_task()
    model, _ = tiny_model(seed=seed, tokenizer=tokenizer, hidden_size=64, layers=2)
    rng = random.Random(seed)
    prompt = tokenizer.encode(PROMPT, add_special_tokens=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        seqs = [prompt + tokenizer.encode(s, add_special_tokens=False) + [tokenizer.eos_token_id]
                for s in prior_snippets(batch_size, corpus, rng)]  # fmt: skip
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [tokenizer.pad_token_id] * (width - len(s)) for s in seqs])
        labels = torch.tensor([[-100] * len(prompt) + s[len(prompt) :] + [-100] * (width - len(s)) for s in seqs])
        mask = (torch.arange(width)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]).long()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    return model, tokenizer


def plan_kind(comment_text: str) -> str | None:
    """The kind a comment line names first after ``plan:`` (``# plan: mul`` and ``# plan: mulx):`` -> ``mul``:
    pi reads the kind's token, trailing text is format), None if it names none."""
    match = _PLAN.match(comment_text.strip().lstrip("#"))
    return match.group(1) if match else None


def is_clean(comment_text: str) -> bool:
    """Exactly ``# plan: <kind>``, as the prior's corpus writes plans."""
    return _CLEAN.match(comment_text.strip().lstrip("#")) is not None


def with_plan(snippet: Snippet, plan: str | None) -> Rollout:
    """A rollout of ``snippet`` that acts everywhere except, with ``plan``, a plan at the body line."""
    r = Rollout(snippet)
    r.thinks = [plan is not None and j == INFORMATIVE for j in range(len(snippet.bounds))]
    r.widths = [0] * len(snippet.bounds)
    r.probs = [None] * len(snippet.bounds)
    if plan is not None:
        line = snippet.bounds[INFORMATIVE]
        r.comments = [Comment(line, comment_line(snippet.lines[line], f" plan: {plan}"))]
        r.malformed = [False]
    return r


@dataclass
class Gain:
    """pi's reward at the body line (c = 0) with the right plan, a wrong one and none, per the reward's
    horizon and norm: what a plan there is worth, so the best policy thinks there iff ``right`` > c."""

    right: float  # mean over snippets of R(right plan) - R(no comment)
    wrong: float  # mean over snippets and wrong plans of R(wrong plan) - R(no comment)


def plan_gain(pi: Any, tokenizer: Any, snippets: list[Snippet], cfg: RA3Config) -> Gain:
    """:class:`Gain` of ``pi`` on ``snippets`` under ``cfg``'s reward (horizon, norm), with c = 0."""
    free = replace(cfg, penalty_c=0.0, format_reward_weight=0.0)
    policy = Policy.build(tokenizer, free, len(tokenizer))
    plans: list[str | None] = [None, *KINDS]
    rollouts = [with_plan(s, p) for s in snippets for p in plans]
    _, scored = score(pi, rollouts, policy)
    body = []
    for first in range(0, len(rollouts), len(plans)):  # a snippet's variants: one group (group_ends)
        group = rollouts[first : first + len(plans)]
        ends = group_ends(group)
        group_scores = scored[first : first + len(plans)]
        body += [rewards(r, s, free, ends)[0][INFORMATIVE] for r, s in zip(group, group_scores, strict=True)]
    right, wrong = [], []
    for i, s in enumerate(snippets):
        row = dict(zip(plans, body[i * len(plans) : (i + 1) * len(plans)], strict=True))
        kind = _kind_of(s)
        right.append(row[kind] - row[None])
        wrong.extend(row[k] - row[None] for k in _others(kind))
    return Gain(sum(right) / len(right), sum(wrong) / len(wrong))


def _kind_of(snippet: Snippet) -> str:
    return KIND_OF[snippet.lines[0].split()[1].split("(")[0]]


def marginal_lp(model: Any, tokenizer: Any, snippets: list[Snippet]) -> float:
    """log p(code) per code token, marginal over the model's own comment at the body line: exact over "no
    comment" and the K plans (log-sum-exp of each annotated sequence's whole log-likelihood, its comment's
    tokens and the act decisions elsewhere included), so a lower bound on the full marginal. The same
    number for any model, with latents or not: a model that rarely comments is scored on its bare code."""
    from ra3bench_ra3.scoring import Encoder, token_logprobs

    encoder, totals, tokens = Encoder(tokenizer), 0.0, 0
    for s in snippets:
        texts = [with_plan(s, plan).annotated for plan in [None, *KINDS]]
        encs = [encoder(s.prompt, text) for text in texts]
        lps = token_logprobs(model, [e.ids for e in encs], tokenizer.pad_token_id)
        joint = torch.stack([lp[e.n_prompt - 1 :].sum() for lp, e in zip(lps, encs, strict=True)])
        totals += float(torch.logsumexp(joint, 0))
        tokens += len(encs[0].ids) - encs[0].n_prompt  # the bare code's tokens and EOS
    return totals / tokens


@dataclass
class Measured:
    """A latent policy's decisions on task snippets (sampled, as the E-step and annotation sample)."""

    think_informative: float  # share of body-line boundaries that got a comment
    think_other: float  # share of the other boundaries where q had a choice that got one
    plan_accuracy: float  # share of body-line comments naming the snippet's kind (nan: none written)
    clean_rate: float  # share of body-line comments written exactly as the prior's plans (nan: none)
    p_think_informative: float  # mean q(<think>) at the body line where q decided it
    comments: list[str] = field(default_factory=list)  # the body-line comments written


def measure(
    q: Any, tokenizer: Any, snippets: list[Snippet], cfg: RA3Config, samples: int = 4, seed: int = 0
) -> Measured:
    """Sample ``samples`` rollouts of ``q`` per snippet (a forked RNG: the caller's stream is untouched)."""
    policy = Policy.build(tokenizer, cfg, len(tokenizer))
    rollouts = [Rollout(s) for s in snippets for _ in range(samples)]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        sample(q, rollouts, policy)
    informative, other, right, clean, probs, written = 0, 0, 0, 0, [], []
    decided_other = 0
    for r in rollouts:
        for j, (think, width) in enumerate(zip(r.thinks, r.widths, strict=False)):
            if width is None:
                continue
            if j == INFORMATIVE:
                informative += think
                if r.probs[j] is not None:
                    probs.append(r.probs[j])
            else:
                other += think
                decided_other += 1
        for c in r.comments:
            if c.line == r.snippet.bounds[INFORMATIVE]:
                written.append(c.text.strip())
                right += plan_kind(c.text) == _kind_of(r.snippet)
                clean += is_clean(c.text)
    n_inf = sum(1 for r in rollouts if len(r.widths) > INFORMATIVE and r.widths[INFORMATIVE] is not None)
    return Measured(
        think_informative=informative / max(1, n_inf),
        think_other=other / max(1, decided_other),
        plan_accuracy=right / len(written) if written else float("nan"),
        clean_rate=clean / len(written) if written else float("nan"),
        p_think_informative=sum(probs) / len(probs) if probs else float("nan"),
        comments=written,
    )


def run_estep(
    prior: Any,
    tokenizer: Any,
    cfg: RA3Config,
    train: list[Snippet],
    held_out: list[Snippet],
    *,
    seed: int = 0,
    every: int = 5,
    on_point: Callable[[dict], None] | None = None,
    on_line: Callable[[dict], None] | None = None,
) -> tuple[Any, list[dict]]:
    """The real E-step (``estep.estep``: q a copy of the prior, pi the prior, frozen) on ``train``, with
    :func:`measure` on ``held_out`` before it and every ``every`` steps (from its log callback, under a
    forked RNG: the E-step's own random stream is the one it has without measurements); ``on_line``
    gets each of the E-step's log lines.
    Returns (q, one point per measurement: the step, the E-step's reward there, :class:`Measured`)."""
    q = copy.deepcopy(prior)
    policy = Policy.build(tokenizer, cfg, len(tokenizer))
    points: list[dict] = []

    def point(logged: dict) -> None:
        m = measure(q, tokenizer, held_out, cfg, seed=seed + 7919)
        row = {"estep_step": logged.get("estep_step", 0), "estep_reward": logged.get("estep_reward"), **_public(m)}
        points.append(row)
        if on_point is not None:
            on_point(row)

    def log(line: dict) -> None:
        if on_line is not None:
            on_line(line)
        if line["estep_step"] % every == 0 or line["estep_step"] == cfg.estep_steps:
            point(line)

    point({})
    torch.manual_seed(seed)
    estep(q, prior, train, policy, cfg, log)
    return q, points


def _public(m: Measured) -> dict:
    return {k: v for k, v in vars(m).items() if k != "comments"} | {"comments_sample": m.comments[:4]}
