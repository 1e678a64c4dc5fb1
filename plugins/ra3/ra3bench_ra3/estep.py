"""The E-step: q learns where a comment line helps pi predict the expert's next lines.

    for step in 1..estep_steps:
        snippets <- the next estep_batch_size snippets (a seeded order)
        rollouts <- group_size annotated versions of each, sampled from q            (rollout.sample)
        score    <- log pi(expert line | annotated prefix) per code line: one teacher-forced pass each
        R_j      <- per boundary j: pi's score of the code lines in j's horizon (normalised),
                    - penalty_c per <think> in it, - format_reward_weight per malformed comment in it
        A_j      <- R_j - mean of R_j over the group (/ its std if normalize_advantage)
        loss     <- -sum_j A_j * log q(decision_j [, comment_j]) / #decisions  (+ kl_coef * KL(q || pi))

pi is the model at the E-step's start, frozen; q starts as its copy. Only latent tokens carry
gradient: the decision at each boundary and the comment's tokens after ``#``; the expert's code
is teacher-forced. The horizon (``reward_horizon``): ``next_line`` the code up to the next
boundary, ``until_next_think`` up to the next <think> (a comment's intent lasts until the next
one), ``until_group_think`` up to the next boundary where any rollout of the group thinks (the
same lines for every rollout it is compared with), ``return_to_go`` all that follows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ra3bench_ra3.annotate import indentation, line_spans
from ra3bench_ra3.config import RA3Config
from ra3bench_ra3.rollout import Policy, Rollout, Snippet, content_start, decision_token, sample
from ra3bench_ra3.scoring import Encoded, decision_logprobs, gather_logprobs, line_scores, logits_at, token_logprobs


@dataclass
class Scored:
    """pi's log-likelihood of one rollout's code: per boundary segment, and over all code lines."""

    seg_lp: list[float]
    seg_n: list[int]
    lp: float
    n: int


@dataclass
class Terms:
    """Where one rollout's latent tokens are in its sequence: (boundary, logits position, act 0 / think 1
    or the target token)."""

    decisions: list[tuple[int, int, int]]
    latent: list[tuple[int, int, int]]


def score(pi: torch.nn.Module, rollouts: list[Rollout], policy: Policy) -> tuple[list[Encoded], list[Scored]]:
    """pi's per-line log-likelihood of each rollout's code, from one forward pass per sequence."""
    encs = [policy.encoder(r.snippet.prompt, r.annotated) for r in rollouts]
    pad = policy.encoder.tokenizer.pad_token_id
    lps = token_logprobs(pi, [e.ids for e in encs], pad, policy.micro)
    scored = []
    for r, enc, lp in zip(rollouts, encs, lps, strict=True):
        starts, owner = line_spans(r.snippet.code, r.comments)
        sums, counts = line_scores(lp, enc, starts, len(starts))
        segment = segment_of_lines(r.snippet)
        s = Scored([0.0] * len(r.snippet.bounds), [0] * len(r.snippet.bounds), 0.0, 0)
        for a, line in enumerate(owner):
            if line < 0:  # a comment: latent, not scored
                continue
            s.lp, s.n = s.lp + sums[a], s.n + counts[a]
            if segment[line] >= 0:
                s.seg_lp[segment[line]] += sums[a]
                s.seg_n[segment[line]] += counts[a]
        scored.append(s)
    return encs, scored


def segment_of_lines(snippet: Snippet) -> list[int]:
    """For each code line, the boundary it follows (-1 before the first)."""
    owner, j = [], -1
    for i in range(len(snippet.lines)):
        while j + 1 < len(snippet.bounds) and snippet.bounds[j + 1] <= i:
            j += 1
        owner.append(j)
    return owner


def group_ends(group: list[Rollout]) -> list[int]:
    """For ``until_group_think``: per boundary j, the first boundary after j where any rollout of the group
    thinks (or the end), so that every rollout's R_j covers the same lines."""
    n = len(group[0].snippet.bounds)
    return [next((u for u in range(j + 1, n) if any(r.thinks[u] for r in group)), n) for j in range(n)]


def rewards(r: Rollout, s: Scored, cfg: RA3Config, ends: list[int] | None = None) -> tuple[list[float], float]:
    """(R_j per boundary over its horizon, the whole rollout's reward). ``ends``: the group's shared horizon
    ends (:func:`group_ends`), needed by ``until_group_think``."""
    malformed = iter(r.malformed)
    cost = [-(cfg.penalty_c + cfg.format_reward_weight * next(malformed)) if t else 0.0 for t in r.thinks]

    def value(js: range) -> float:
        lp, n = sum(s.seg_lp[j] for j in js), sum(s.seg_n[j] for j in js)
        return _norm(lp, n, cfg) + sum(cost[j] for j in js)

    per = [value(range(j, horizon_end(r, j, cfg, ends))) for j in range(len(cost))]
    return per, _norm(s.lp, s.n, cfg) + sum(cost)


def horizon_end(r: Rollout, j: int, cfg: RA3Config, ends: list[int] | None = None) -> int:
    """The boundary (exclusive) where boundary ``j``'s horizon ends in rollout ``r`` under ``reward_horizon``."""
    n = len(r.snippet.bounds)
    if cfg.reward_horizon == "next_line":
        return j + 1
    if cfg.reward_horizon == "return_to_go":
        return n
    if cfg.reward_horizon == "until_group_think":
        if ends is None:
            raise ValueError("until_group_think needs the group's horizon ends (group_ends)")
        return ends[j]
    return next((u for u in range(j + 1, n) if r.thinks[u]), n)  # until_next_think


def group_rewards(rollouts: list[Rollout], scored: list[Scored], cfg: RA3Config) -> list[tuple[list[float], float]]:
    """:func:`rewards` of every rollout, groups of ``group_size`` in order (they share a snippet)."""
    out = []
    for first in range(0, len(rollouts), cfg.group_size):
        group = rollouts[first : first + cfg.group_size]
        ends = group_ends(group) if cfg.reward_horizon == "until_group_think" else None
        out += [rewards(r, s, cfg, ends) for r, s in zip(group, scored[first : first + cfg.group_size], strict=True)]
    return out


def _norm(lp: float, n: int, cfg: RA3Config) -> float:
    return lp / max(1, n) if cfg.reward_norm == "mean_per_token" else lp


def advantages(per: list[list[float]], group: int, normalize: bool) -> list[list[float]]:
    """R_j minus the mean of R_j over the rollouts of the same snippet (they share boundaries)."""
    out: list[list[float]] = []
    for first in range(0, len(per), group):
        values = torch.tensor(per[first : first + group], dtype=torch.float64)
        adv = values - values.mean(0, keepdim=True)
        if normalize and values.size(0) > 1:
            adv = adv / (values.std(0, keepdim=True) + 1e-6)
        out.extend(adv.tolist())
    return out


def crosstalk(rollouts: list[Rollout], adv: list[list[float]], group: int) -> float:
    """Mean |advantage| where every rollout of a group acted at a boundary, over the mean |advantage| of all
    decisions: 0 when a decision's return depends on that decision alone.

    Where the whole group acted, the decision made no difference between its rollouts, so any advantage
    there comes from other decisions: an earlier comment that made these lines likelier (in every
    horizon), and with ``until_next_think`` a later think that ends this act's horizon sooner in some
    rollouts (other lines, other difficulty), with ``return_to_go`` every later decision. Noise in its
    gradient, which docs/ra3.md measures per horizon."""
    a = abs_advantages(rollouts, adv, group)
    if not a.acted or not a.decided or sum(a.decided) == 0:
        return 0.0
    return (sum(a.acted) / len(a.acted)) / (sum(a.decided) / len(a.decided))


@dataclass
class AbsAdvantages:
    """|A| of every rollout at the boundaries where its whole group had a choice, by what the group did."""

    acted: list[float]  # the whole group acted: the decision made no difference (noise)
    mixed: list[float]  # the group's decisions differed: what the E-step learns from (signal)
    decided: list[float]  # all of them


def abs_advantages(rollouts: list[Rollout], adv: list[list[float]], group: int) -> AbsAdvantages:
    out = AbsAdvantages([], [], [])
    for first in range(0, len(rollouts), group):
        members = rollouts[first : first + group]
        for j in range(len(members[0].snippet.bounds)):
            if any(r.widths[j] is None for r in members):
                continue
            values = [abs(adv[first + g][j]) for g in range(len(members))]
            out.decided += values
            decisions = {r.thinks[j] for r in members}
            if decisions == {False}:
                out.acted += values
            elif len(decisions) > 1:
                out.mixed += values
    return out


def latent_terms(r: Rollout, enc: Encoded) -> Terms:
    """The decision position of every boundary where q had a choice, and each comment's tokens after ``#``."""
    starts, owner = line_spans(r.snippet.code, r.comments)
    comments = {c.line: c for c in r.comments}
    terms = Terms([], [])
    for j, b in enumerate(r.snippet.bounds):
        if r.widths[j] is None:
            continue
        if not r.thinks[j]:
            at = decision_token(enc, content_start(starts, owner, b, r.snippet.lines[b]))
            if at is not None:
                terms.decisions.append((j, at - 1, 0))
            continue
        first = starts[owner.index(-1 - b)]
        text = comments[b].text
        hash_at, end = first + len(indentation(text)), first + len(text)
        # the context q decided in: the same tokens before the line (none such: not trained, rare)
        at = next((k for k, (begin, _) in enumerate(enc.offsets) if begin == first + r.widths[j]), None)
        if at is not None and enc.n_prompt + at > 0:
            terms.decisions.append((j, enc.n_prompt + at - 1, 1))
        for k, (begin, _) in enumerate(enc.offsets):
            if hash_at < begin < end:
                terms.latent.append((j, enc.n_prompt + k - 1, enc.ids[enc.n_prompt + k]))
    return terms


def policy_loss(
    q: torch.nn.Module,
    pi: torch.nn.Module,
    items: list[tuple[Encoded, Terms, list[float]]],
    policy: Policy,
    kl_coef: float,
) -> tuple[float, float]:
    """Backward of -sum A * log q(latent) / #decisions (+ KL); (loss, KL per decision)."""
    n = max(1, sum(len(t.decisions) for _, t, _ in items))
    pad, tau = policy.encoder.tokenizer.pad_token_id, policy.temperature
    total, total_kl = 0.0, 0.0
    for first in range(0, len(items), policy.micro):
        chunk = items[first : first + policy.micro]
        seqs = [e.ids for e, _, _ in chunk]
        positions = [[p for _, p, _ in t.decisions] + [p for _, p, _ in t.latent] for _, t, _ in chunk]
        ref: dict[int, torch.Tensor] = {}
        if kl_coef:
            with torch.no_grad():
                ref = dict(logits_at(pi, seqs, positions, pad, policy.micro))
        loss = torch.zeros(())
        for i, logits in logits_at(q, seqs, positions, pad, policy.micro):
            if not positions[i]:
                continue
            _, terms, adv = chunk[i]
            d = len(terms.decisions)
            acts = torch.tensor([a for _, _, a in terms.decisions], dtype=torch.long)
            targets = torch.tensor([t for _, _, t in terms.latent], dtype=torch.long)
            weights = torch.tensor([adv[j] for j, _, _ in terms.decisions + terms.latent], dtype=torch.float32)
            dec = decision_logprobs(logits[:d], policy.mask, tau, policy.bias)
            decided = dec.gather(-1, acts[:, None].to(dec.device))[:, 0]
            chosen = torch.cat([decided, gather_logprobs(logits[d:] / tau, targets)])
            loss = loss + -(weights.to(chosen.device) * chosen).sum().cpu() / n
            if kl_coef:
                ref_dec = decision_logprobs(ref[i][:d], policy.mask, tau, policy.bias)
                kl = (dec.exp() * (dec - ref_dec)).sum()  # exact, for the Bernoulli decisions
                delta = gather_logprobs(ref[i][d:] / tau, targets) - chosen[d:]
                kl = kl + (delta.exp() - delta - 1).sum()  # k3 estimate, for the sampled comment tokens
                loss = loss + kl_coef * kl.cpu() / n
                total_kl += kl.item() / n
        if loss.requires_grad:
            loss.backward()
        total += loss.item()
    return total, total_kl


def estep(
    q: torch.nn.Module,
    pi: torch.nn.Module,
    pool: list[Snippet],
    policy: Policy,
    cfg: RA3Config,
    log: Callable[[dict], None],
) -> dict:
    """``estep_steps`` policy-gradient steps on q; the E-step's compute (tokens, seconds)."""
    params = [p for p in q.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.estep_lr, weight_decay=0.0)
    started, tokens, order = time.perf_counter(), 0, []
    q.eval()  # no dropout: the log-probs trained are the ones sampled from
    pi.eval()
    for step in range(1, cfg.estep_steps + 1):
        while len(order) < cfg.estep_batch_size:
            order += torch.randperm(len(pool)).tolist()
        picks, order = order[: cfg.estep_batch_size], order[cfg.estep_batch_size :]
        rollouts = [Rollout(pool[i]) for i in picks for _ in range(cfg.group_size)]
        tokens += sample(q, rollouts, policy)
        encs, scored = score(pi, rollouts, policy)
        per, totals = zip(*group_rewards(rollouts, scored, cfg), strict=True)
        adv = advantages(list(per), cfg.group_size, cfg.normalize_advantage)
        items = [(e, latent_terms(r, e), a) for r, e, a in zip(rollouts, encs, adv, strict=True)]
        optimizer.zero_grad(set_to_none=True)
        loss, kl = policy_loss(q, pi, items, policy, cfg.kl_coef)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.estep_max_grad_norm))
        optimizer.step()
        tokens += sum(len(e.ids) for e in encs) * (3 if cfg.kl_coef else 2)  # pi's score, q's (and pi's) PG pass
        stats = {f"estep_{k}": v for k, v in rollout_stats(rollouts).items()}
        stats["estep_act_crosstalk"] = crosstalk(rollouts, adv, cfg.group_size)
        log({"estep_step": step, **stats, "estep_reward": sum(totals) / len(totals),
             "estep_loss": loss, "estep_kl": kl, "estep_grad_norm": grad_norm, "estep_tokens": tokens,
             "estep_time_s": time.perf_counter() - started})  # fmt: skip
    return {"estep_tokens": tokens, "estep_time_s": time.perf_counter() - started}


def rollout_stats(rollouts: list[Rollout]) -> dict[str, float]:
    """Think rate (of the boundaries where q had a choice), comment length, format violations."""
    decided = sum(w is not None for r in rollouts for w in r.widths)
    comments = sum(len(r.comments) for r in rollouts)
    return {
        "think_rate": sum(sum(r.thinks) for r in rollouts) / max(1, decided),
        "comment_tokens": sum(r.latent_tokens for r in rollouts) / max(1, comments),
        "format_violation_rate": sum(sum(r.malformed) for r in rollouts) / max(1, comments),
    }


def annotate(q: torch.nn.Module, snippets: list[Snippet], policy: Policy, chunk: int) -> tuple[list[Rollout], int]:
    """One rollout of q per snippet (the annotated traces), ``chunk`` at a time; and the tokens spent."""
    q.eval()
    rollouts, tokens = [Rollout(s) for s in snippets], 0
    for first in range(0, len(rollouts), max(1, chunk)):
        tokens += sample(q, rollouts[first : first + chunk], policy)
    return rollouts, tokens
