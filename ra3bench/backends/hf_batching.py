"""Continuous batching for the hf backend: a row that ends leaves the batch at once, a waiting one takes its place.

``model.generate`` on a static batch decodes every row until the longest ends: with sampling, a few
rows that run to the token budget keep the finished ones decoding padding. Here each step decodes
only live rows. Rows are left-padded so that every row's next token sits in the last column of one
shared KV cache (``DynamicCache``): newcomers are prefilled together (a prompt once, however many
samples it has), padded on the left to the batch's length (or the batch to theirs) and appended;
rows that end are dropped from the cache, and columns that are padding for every remaining row are
cut off. Positions come from the attention mask, as ``generate`` computes them.

Sampling draws each row's tokens from a generator of its own, seeded by the run's seed, the task and
the sample's index: a sample does not depend on which rows shared its batch (the numbers can still
differ in the last bits with the batch's shape, as in any batched matmul). Greedy decoding takes the
argmax, as ``generate`` does.

transformers' own continuous batching (``generate_batch``, paged attention) was 2.7x slower than a
static ``generate`` on this project's 2-core CPU (16 prompts, 128 tokens, smollm2-135m, greedy texts
identical), so this loop drives the model's ``forward`` directly; it works on CPU and CUDA alike.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

NUCLEUS_CANDIDATES = 256  # top-p looks among this many most likely tokens first (all of them if they fall short)
STOP_WINDOW_TOKENS = 8  # besides the stop string's own length: tokens decoded to look for a stop string
HEADROOM_POSITIONS = 64  # cache positions allocated ahead: a new buffer every 64 steps, not a copy every step


@dataclass
class Row:
    """One sequence to generate: a prompt's ids and the sample's own random generator (None: greedy)."""

    prompt: int  # index of the prompt (rows of one prompt share its prefill)
    ids: list[int]
    seed: int | None
    new: list[int] = field(default_factory=list)
    stopped: bool = False  # ended at an end token or a stop string
    generator: Any = field(default=None, repr=False)  # made from ``seed`` when the row starts


@dataclass
class BatchStats:
    """What a generate() call made the model compute, for the benchmark's padding share."""

    rows: int = 0  # sequences generated
    steps: int = 0  # decoding forward calls
    slots: int = 0  # (row, new position) pairs the model computed: generated tokens, plus padding (static)
    prefill_tokens: int = 0  # prompt tokens run through the model
    prefill_padding: int = 0  # padding tokens in the prefill batches

    def padding_share(self, generated: int) -> float:
        """The share of the computed new positions that were not generated tokens (rows that had ended)."""
        return 1.0 - generated / self.slots if self.slots else 0.0


def sample_seed(seed: int, task_id: str, index: int) -> int:
    """The generator seed of sample ``index`` of ``task_id``: the same whatever else is in the batch."""
    return int(hashlib.sha256(f"{seed}:{task_id}:{index}".encode()).hexdigest()[:15], 16)


def supports(model: Any) -> bool:
    """Whether the model's cache is the plain per-layer one this loop pads, joins and trims."""
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # an exotic config: let generate() handle it
        return False
    return all(type(layer).__name__ == "DynamicLayer" for layer in cache.layers)


@dataclass
class ContinuousBatcher:
    """Generates every row of a run with at most ``max_rows`` live at a time; see the module docstring."""

    model: Any
    max_rows: int
    max_new_tokens: int
    end_ids: set[int]
    pad_id: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop_check: Callable[[Row], bool] | None = None
    device: str = "cpu"
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        self.max_rows = max(1, self.max_rows)
        accepted = inspect.signature(self.model.forward).parameters
        # the vocabulary projection for the last position only, where the model can (as generate asks)
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
        self._cache_arg = "cache" if "cache" in accepted else "past_key_values"  # renamed in transformers 5

    def run(self, rows: Sequence[Row]) -> None:
        """Fill each row's ``new`` tokens (in place)."""
        import torch

        waiting = deque(rows)
        live: list[Row] = []
        cache: Any = None
        mask: Any = None  # [live, columns]: 1 where a row has a real token
        last: Any = None  # [live, 1]: each row's newest token, the next step's input
        with torch.inference_mode():
            while waiting or live:
                take = _admit(waiting, self.max_rows - len(live), len(live), self.max_rows) if waiting else []
                if take:
                    new_cache, new_mask, logits = self._prefill(take)
                    for row in take:
                        if row.seed is not None:
                            row.generator = torch.Generator(device=self.device).manual_seed(row.seed)
                    first = self._pick(logits, take)
                    self.stats.rows += len(take)
                    self.stats.slots += len(take)
                    cache, mask = _join(cache, mask, _with_headroom(new_cache), new_mask)
                    last = first if last is None else torch.cat([last, first])
                    live += take
                    self._append(take, first)
                else:
                    mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
                    positions = mask.sum(dim=1, keepdim=True) - 1
                    out = self.model(
                        input_ids=last,
                        attention_mask=mask,
                        position_ids=positions,
                        use_cache=True,
                        **{self._cache_arg: cache},
                    )
                    cache = _cache_of(out)
                    last = self._pick(out.logits[:, -1, :], live)
                    self._append(live, last)
                    self.stats.steps += 1
                    self.stats.slots += len(live)
                keep = [i for i, row in enumerate(live) if not self._done(row)]
                if len(keep) < len(live):
                    live = [live[i] for i in keep]
                    if not live:
                        cache = mask = last = None
                        continue
                    index = torch.tensor(keep, device=self.device)
                    mask, last = mask[index], last[index]
                    start = int(mask.any(dim=0).nonzero()[0])  # columns that are padding for every row left
                    mask = mask[:, start:]
                    for layer in cache.layers:
                        layer.keys = layer.keys[index, :, start:]
                        layer.values = layer.values[index, :, start:]

    def _prefill(self, rows: list[Row]) -> tuple[Any, Any, Any]:
        """One forward over the distinct prompts of ``rows``, left-padded; cache, mask and last logits per row."""
        import torch

        order: dict[int, int] = {}
        prompts: list[list[int]] = []
        for row in rows:
            if row.prompt not in order:
                order[row.prompt] = len(prompts)
                prompts.append(row.ids)
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **self._last_only)
        self.stats.prefill_tokens += sum(len(p) for p in prompts)
        self.stats.prefill_padding += len(prompts) * width - sum(len(p) for p in prompts)
        expand = torch.tensor([order[row.prompt] for row in rows], device=self.device)
        cache = _cache_of(out)
        for layer in cache.layers:
            layer.keys = layer.keys[expand]
            layer.values = layer.values[expand]
        return cache, mask[expand], out.logits[expand, -1, :]

    def _pick(self, logits: Any, rows: list[Row]) -> Any:
        """The next token of each row: the argmax (greedy), else a draw by inverse CDF with one uniform
        number from the row's own generator (the rest is batched: a per-row ``multinomial`` over the
        vocabulary cost as much as the model's attention)."""
        import torch

        if self.temperature <= 0.0:
            return logits.argmax(dim=-1, keepdim=True)
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        uniform = torch.stack([torch.rand((), generator=row.generator, device=probs.device) for row in rows])
        uniform = uniform.unsqueeze(1)
        if self.top_p < 1.0:
            top, index = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
            if bool((top.sum(dim=-1) >= self.top_p).all()):  # every nucleus is among the candidates
                return index.gather(1, _draw(_nucleus(top, self.top_p), uniform))
            probs = _top_p(probs, self.top_p)
        return _draw(probs, uniform)

    def _append(self, rows: list[Row], tokens: Any) -> None:
        for row, token in zip(rows, tokens[:, 0].tolist(), strict=True):
            row.new.append(token)
            if token in self.end_ids or (self.stop_check is not None and self.stop_check(row)):
                row.stopped = True

    def _done(self, row: Row) -> bool:
        return row.stopped or len(row.new) >= self.max_new_tokens


def _admit(waiting: deque[Row], room: int, live: int, max_rows: int) -> list[Row]:
    """Rows to start now, up to ``room``, in whole prompts (a prompt's samples share one prefill): a
    prompt the room would split waits for more room while other rows decode (unless it has more
    samples than the batch holds, or nothing else runs)."""
    take = [waiting.popleft() for _ in range(min(room, len(waiting)))]
    if waiting and take and waiting[0].prompt == take[-1].prompt:
        split = take[-1].prompt
        back = [row for row in take if row.prompt == split]
        whole = len(back) + sum(1 for row in waiting if row.prompt == split)
        if len(back) < len(take) or (live and whole <= max_rows):
            take = take[: len(take) - len(back)]
            waiting.extendleft(reversed(back))
    return take


class _Headroom:
    """A cache layer's ``update`` that writes each new position into spare room of one buffer instead of
    concatenating (``DynamicLayer.update`` copies the whole cache at every step: a tenth of the time of a
    batch of 32). ``keys``/``values`` stay views of the buffer's filled part; whoever replaces them (the
    batcher, when rows leave or join) drops the buffer, and the next update makes a new one."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.buffers: tuple[Any, Any] | None = None
        self.seen: tuple[Any, Any] | None = None  # the views handed out last: anything else was replaced

    def __call__(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        import torch

        layer = self.layer
        have = layer.keys.shape[-2]
        new = key_states.shape[-2]
        buffers = self.buffers
        stale = self.seen is None or layer.keys is not self.seen[0] or layer.values is not self.seen[1]
        if buffers is None or stale or have + new > buffers[0].shape[-2]:
            room = have + new + HEADROOM_POSITIONS
            buffers = tuple(
                torch.empty((*t.shape[:-2], room, t.shape[-1]), dtype=t.dtype, device=t.device)
                for t in (key_states, value_states)
            )
            buffers[0][..., :have, :] = layer.keys
            buffers[1][..., :have, :] = layer.values
            self.buffers = buffers
        buffers[0][..., have : have + new, :] = key_states
        buffers[1][..., have : have + new, :] = value_states
        layer.keys, layer.values = buffers[0][..., : have + new, :], buffers[1][..., : have + new, :]
        self.seen = (layer.keys, layer.values)
        return layer.keys, layer.values


def _with_headroom(cache: Any) -> Any:
    """``cache`` with every layer updating in place (:class:`_Headroom`); once per cache."""
    for layer in cache.layers:
        if not isinstance(layer.__dict__.get("update"), _Headroom):
            layer.update = _Headroom(layer)
    return cache


def _cache_of(out: Any) -> Any:
    """The KV cache a forward returned (``cache`` since transformers 5, ``past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _join(cache: Any, mask: Any, new_cache: Any, new_mask: Any) -> tuple[Any, Any]:
    """The live batch and the newcomers as one, the shorter side padded on the left."""
    import torch

    if cache is None:
        return new_cache, new_mask
    have, come = mask.shape[1], new_mask.shape[1]
    if have < come:
        mask = torch.nn.functional.pad(mask, (come - have, 0))
    elif come < have:
        new_mask = torch.nn.functional.pad(new_mask, (have - come, 0))
    for old, new in zip(cache.layers, new_cache.layers, strict=True):
        for name in ("keys", "values"):
            a, b = getattr(old, name), getattr(new, name)
            if a.shape[2] < b.shape[2]:
                a = torch.nn.functional.pad(a, (0, 0, b.shape[2] - a.shape[2], 0))
            elif b.shape[2] < a.shape[2]:
                b = torch.nn.functional.pad(b, (0, 0, a.shape[2] - b.shape[2], 0))
            setattr(old, name, torch.cat([a, b]))
    return cache, torch.cat([mask, new_mask])


def _nucleus(descending: Any, top_p: float) -> Any:
    """Probabilities sorted high to low, zeroed past the nucleus: a token stays while the ones above it
    sum to less than ``top_p`` (the set ``_top_p`` keeps, the first token always)."""
    before = descending.cumsum(dim=-1) - descending
    return descending * (before < top_p)


def _draw(weights: Any, uniform: Any) -> Any:
    """Column indices [rows, 1] drawn from unnormalized ``weights`` by inverse CDF at ``uniform`` [rows, 1]."""
    import torch

    cdf = weights.cumsum(dim=-1)
    picked = torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True)
    return picked.clamp(max=weights.shape[-1] - 1)


def _top_p(probs: Any, top_p: float) -> Any:
    """Nucleus filtering as transformers' TopPLogitsWarper does: keep the smallest set of tokens whose
    probability reaches ``top_p`` (at least one), renormalized."""
    import torch

    sorted_probs, order = probs.sort(dim=-1, descending=False)
    cumulative = sorted_probs.cumsum(dim=-1)
    remove = cumulative <= 1 - top_p
    remove[..., -1] = False
    filtered = sorted_probs.masked_fill(remove, 0.0)
    out = torch.zeros_like(probs).scatter(-1, order, filtered)
    return out / out.sum(dim=-1, keepdim=True)
