"""A Hugging Face ``TrainerCallback`` that measures pass@k while a model trains.

Any ``transformers.Trainer`` (TRL's ``SFTTrainer``, ``GRPOTrainer``... are Trainers) evaluates its
in-memory model every ``every`` optimizer steps, at step 0 and at the last step, through
:class:`ra3bench.Session`: the same generation, sandbox, judging and run folders as `ra3bench run`.
The callback writes a training run folder that `ra3bench report` reads::

    <args.output_dir>/ra3bench/
        manifest.json        kind "training": the specs, the schedule, code version, host, training args
        curve.jsonl          a "train" line per Trainer log (loss, learning_rate, grad_norm, ...) and an
                             "eval" line per (suite, group, k) per evaluation, in ra3bench's curve schema
        curves.png           pass@k and the loss against the step, redrawn after each evaluation
        evals/step-000050/mbppplus/   an ordinary run folder per suite per evaluation

    from ra3bench import EvalSpec
    from ra3bench.integrations.hf import Ra3benchCallback

    trainer = Trainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer)
    Ra3benchCallback(EvalSpec(suite="mbpp+", limit=50, k=[1]), every=100).attach(trainer)
    trainer.train()    # then: ra3bench report <args.output_dir>/ra3bench

``wall_time_s`` in the curve is training time only (evaluations excluded, as in `ra3bench train`).
Each evaluation's pass@k also goes into the Trainer's logs as ``ra3bench/<suite>/<group>/pass@<k>``:
with :meth:`Ra3benchCallback.attach` (or ``trainer=``) through the base ``Trainer.log``, so wandb,
TensorBoard and the other reporting integrations record it (as ``train/ra3bench/...``: they prefix
what is not ``eval_``); without a trainer only into ``state.log_history`` (a callback is called after
the reporting integrations, so it cannot add to what they saw).

Measuring changes nothing about training: the model's mode, the tokenizer's padding side and torch's
RNG (which sampled generation reseeds) are put back after each evaluation. Only the main process
evaluates (``state.is_world_process_zero``), on its own copy of the weights: fine for one device and
DDP, not for FSDP or DeepSpeed ZeRO-3, which the callback refuses. Resuming from a checkpoint
(``trainer.train(resume_from_checkpoint=...)``) keeps the curve up to the checkpoint's step; a run
started from step 0 replaces what a previous run left in the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from ra3bench.errors import UsageError
from ra3bench.training.curves import CURVE, CurveLog, plot_curves, read_curve

if TYPE_CHECKING:
    from ra3bench import EvalSpec, Sandbox, Session, Summary

logger = logging.getLogger(__name__)

__all__ = ["Ra3benchCallback", "metric_name"]

MANIFEST = "manifest.json"
PNG = "curves.png"
EVALS = "evals"
_RESERVED = ("kind", "step", "tokens_seen", "wall_time_s", "num_input_tokens_seen")


def metric_name(suite: str, group: str, k: int | str) -> str:
    """The key of a pass@k in the Trainer's logs: ``ra3bench/<suite>/<group>/pass@<k>``."""
    return f"ra3bench/{suite}/{group}/pass@{k}"


def suite_folder(suite: str) -> str:
    """A suite's folder inside ``evals/step-N/`` (``mbpp+`` -> ``mbppplus``), as `ra3bench train` names it."""
    return suite.replace("+", "plus")


class Ra3benchCallback(TrainerCallback):
    """Evaluate the training model with ra3bench every ``every`` steps; write ``curve.jsonl`` and run folders.

    ``specs``: one :class:`ra3bench.EvalSpec` or several (one per suite); ``every``: evaluate when
    ``global_step % every == 0`` (0: only at the start and the end), and always at the last step;
    ``at_start``: evaluate the model before its first step (step 0); ``out_dir``: the training run
    folder (default ``<args.output_dir>/ra3bench``); ``sandbox``: a started sandbox to borrow
    (:func:`ra3bench.open_sandbox`; default: one per sandbox kind, opened at the start of training
    and closed at its end, shared by the suites); ``tokenizer``: default the Trainer's
    ``processing_class``; ``name``: the run's label in labels and the plot (default
    ``args.run_name``, else ``hf``); ``train_metric``: the training metric ``curves.png`` draws
    (``loss``; e.g. ``reward`` for GRPO); ``trainer``: the Trainer, to log pass@k through it (or
    call :meth:`attach`).
    """

    def __init__(
        self,
        specs: EvalSpec | Sequence[EvalSpec],
        *,
        every: int,
        at_start: bool = True,
        out_dir: str | os.PathLike | None = None,
        sandbox: Sandbox | None = None,
        tokenizer: Any = None,
        name: str | None = None,
        train_metric: str = "loss",
        trainer: Any = None,
    ) -> None:
        from ra3bench import EvalSpec

        self.specs: list[EvalSpec] = [specs] if isinstance(specs, EvalSpec) else list(specs)
        if not self.specs or not all(isinstance(s, EvalSpec) for s in self.specs):
            raise UsageError("Ra3benchCallback takes one ra3bench.EvalSpec or a list of them")
        folders = [suite_folder(s.suite) for s in self.specs]
        if len(set(folders)) != len(folders):
            raise UsageError(f"Ra3benchCallback: one EvalSpec per suite, got suites {[s.suite for s in self.specs]}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise UsageError(f"Ra3benchCallback: every is a number of steps >= 0 (0: start and end), not {every!r}")
        self.every = every
        self.at_start = at_start
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.tokenizer = tokenizer
        self.name = name
        self.train_metric = train_metric
        self.trainer = trainer
        self.evaluated: set[int] = set()  # steps evaluated (this run, and before a resume)
        self.last_metrics: dict[str, float] = {}  # the latest evaluation's pass@k, by metric_name
        self._borrowed_sandbox = sandbox
        self._sandboxes: dict[tuple[str, int], Any] = {}  # opened here, closed at the end
        self._sessions: list[Session] = []
        self._curve: CurveLog | None = None
        self._manifest: dict[str, Any] = {}
        self._pending: tuple[int, dict[str, float]] | None = None  # for on_log, without a trainer
        self._clock = 0.0  # perf_counter when training time last resumed
        self._train_time_s = 0.0  # training time before _clock (evaluations excluded)
        self._eval_time_s = 0.0
        self._running = False
        # should training die with an exception, the sandboxes still go at exit
        self._finalizer = weakref.finalize(self, _close_all, self._sessions, self._sandboxes)

    # -- wiring --------------------------------------------------------------------------------

    def attach(self, trainer: Any) -> Ra3benchCallback:
        """Add this callback to ``trainer`` (unless it is there) and log pass@k through it; returns self."""
        self.trainer = trainer
        if not any(cb is self for cb in trainer.callback_handler.callbacks):
            trainer.add_callback(self)
        return self

    # -- Trainer events ------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        _refuse_sharded(args)
        self.out_dir = self.out_dir or Path(args.output_dir or "trainer_output") / "ra3bench"
        self.name = self.name or args.run_name or "hf"
        self._running = True
        started = time.perf_counter()
        try:
            self._start_folder(args, state, kwargs.get("model"))
            self._open()
        except BaseException:
            self.close()
            raise
        self._clock = time.perf_counter()
        self._eval_time_s += self._clock - started
        step = state.global_step  # > 0: resumed from a checkpoint, whose evaluation may not have been logged
        if (step == 0 and self.at_start) or (step > 0 and self.due(step, state.max_steps)):
            self._evaluate(state, control, kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.due(state.global_step, state.max_steps):
            self._evaluate(state, control, kwargs)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self._curve is None or not logs:
            return
        if self._pending is not None and self._pending[0] == state.global_step:
            logs.update(self._pending[1])  # the callbacks after this one (the console) show them
            self._pending = None
        if "train_loss" in logs or "total_flos" in logs:  # the end-of-training summary: into the manifest
            self._record(hf_train_metrics={k: _number(v) for k, v in logs.items() if _is_number(v)})
            return
        metrics = {
            key: _number(value)
            for key, value in logs.items()
            if _is_number(value) and not key.startswith(("ra3bench/", "eval_", "test_")) and key not in _RESERVED
        }
        if set(metrics) - {"epoch"}:
            self._curve.log_train(state.global_step, _tokens(state), self.train_time_s(), **metrics)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not self._running:
            return
        try:
            if state.global_step not in self.evaluated:  # stopped early, or a last step off the schedule
                self._evaluate(state, control, kwargs)
            self._pause()
            self.draw()  # the last step's training log came after its evaluation's drawing
            self._record(
                finished=_now(),
                final_step=state.global_step,
                train_time_s=round(self._train_time_s, 3),
                eval_time_s=round(self._eval_time_s, 3),
            )
        finally:
            self.close()

    # -- the evaluation ------------------------------------------------------------------------

    def due(self, step: int, max_steps: int) -> bool:
        """Whether optimizer step ``step`` is on the schedule: every ``every`` steps, and the last one."""
        return bool(self.every and step % self.every == 0) or step == max_steps

    def train_time_s(self) -> float:
        """Training time so far, evaluations excluded (the curve's ``wall_time_s``)."""
        return self._train_time_s + (time.perf_counter() - self._clock if self._running else 0.0)

    def _pause(self) -> None:
        if self._running:
            self._train_time_s += time.perf_counter() - self._clock
            self._clock = time.perf_counter()

    def _evaluate(self, state: Any, control: Any, kwargs: dict[str, Any]) -> dict[str, float] | None:
        step = state.global_step
        if step in self.evaluated:
            return None
        if self._curve is None:
            raise UsageError("Ra3benchCallback: training has not begun (no on_train_begin), or has ended")
        model = kwargs.get("model")
        if model is None:
            raise UsageError("Ra3benchCallback: the Trainer passed no model to the callback")
        tokenizer = self._tokenizer(kwargs)
        self._pause()
        started = time.perf_counter()
        try:
            summaries = self._run(model, tokenizer, step)
            metrics = self._log(state, summaries)
            self.evaluated.add(step)
            self.draw()
        except BaseException:
            self.close()
            raise
        finally:
            self._eval_time_s += time.perf_counter() - started
            self._clock = time.perf_counter()
        self.last_metrics = metrics
        self._report(state, control, metrics)
        return metrics

    def _run(self, model: Any, tokenizer: Any, step: int) -> list[Summary]:
        """Every suite on the in-memory model (``Session.evaluate`` gives it back as it was: train mode,
        padding side, pad token, RNG states)."""
        assert self.out_dir is not None
        folder = self.out_dir / EVALS / f"step-{step:06d}"
        label = f"{self.name}@step{step}"
        return [
            session.evaluate(
                model,
                folder / suite_folder(session.suite.name),
                tokenizer=tokenizer,
                label=label,
                manifest={"training_checkpoint": label, "training_step": step, "training_run": str(self.out_dir)},
            )
            for session in self._sessions
        ]

    def _log(self, state: Any, summaries: list[Summary]) -> dict[str, float]:
        """The curve's eval lines (training time at the point, tokens seen) and the logs' metrics."""
        assert self._curve is not None and self.out_dir is not None
        metrics = {}
        for summary in summaries:
            logged = self._curve.log_summary(
                state.global_step, _tokens(state), self._train_time_s, summary, relative_to=self.out_dir
            )
            metrics.update({metric_name(summary.suite, group, k): value for (group, k), value in logged.items()})
        return metrics

    def _report(self, state: Any, control: Any, metrics: dict[str, float]) -> None:
        """pass@k into the Trainer's logs: through ``Trainer.log`` with a trainer, else the log history."""
        if self.trainer is not None:
            from transformers import Trainer

            # on_log clears control.should_log: called from on_step_end, the Trainer's own log of this
            # step (the loss) would be skipped, so the flag is put back
            controls = {id(c): c for c in (control, self.trainer.control) if c is not None}
            flags = {key: c.should_log for key, c in controls.items()}
            # the base method: a TRL trainer's own log() would flush its batch metrics into this line
            Trainer.log(self.trainer, dict(metrics))
            for key, c in controls.items():
                c.should_log = flags[key]
            return
        state.log_history.append({**metrics, "step": state.global_step})
        self._pending = (state.global_step, dict(metrics))

    def draw(self) -> Path | None:
        """Redraw ``curves.png`` from ``curve.jsonl``."""
        if self.out_dir is None or not (self.out_dir / CURVE).is_file():
            return None
        curve = read_curve(self.out_dir)
        return plot_curves({self.name or "hf": curve}, self.out_dir / PNG, train_metric=self.train_metric)

    def _tokenizer(self, kwargs: dict[str, Any]) -> Any:
        from transformers import PreTrainedTokenizerBase

        for candidate in (self.tokenizer, kwargs.get("processing_class"), kwargs.get("tokenizer")):
            if isinstance(candidate, PreTrainedTokenizerBase):
                return candidate
            inner = getattr(candidate, "tokenizer", None)  # a processor holds its tokenizer
            if isinstance(inner, PreTrainedTokenizerBase):
                return inner
        raise UsageError(
            "Ra3benchCallback needs a tokenizer: give the Trainer processing_class=tokenizer, "
            "or Ra3benchCallback(..., tokenizer=tokenizer)"
        )

    # -- the run folder and the sessions -------------------------------------------------------

    def _start_folder(self, args: Any, state: Any, model: Any) -> None:
        """A fresh run folder, or (resuming at step S) the curve up to S with what it evaluated."""
        assert self.out_dir is not None
        if self._curve is not None:
            self._curve.close()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fresh = self._fresh_manifest(args, model)
        step = state.global_step
        old: dict[str, Any] = {}
        if step > 0 and (self.out_dir / CURVE).is_file():  # resumed from a checkpoint at `step`
            self._curve = CurveLog(self.out_dir)
            self._curve.truncate_after(step)
            kept = read_curve(self.out_dir)
            self.evaluated = {int(r["step"]) for r in kept if r.get("kind") == "eval"}
            for folder in (self.out_dir / EVALS).glob("step-*"):  # evaluations of weights trained after it
                if folder.name[5:].isdigit() and int(folder.name[5:]) > step:
                    shutil.rmtree(folder)
            self._train_time_s = max((float(r.get("wall_time_s", 0.0)) for r in kept), default=0.0)
            try:
                old = json.loads((self.out_dir / MANIFEST).read_text())
            except (OSError, ValueError):
                old = {}
        else:
            stale = [p for p in (CURVE, PNG, MANIFEST, EVALS) if (self.out_dir / p).exists()]
            if stale:
                logger.warning("ra3bench: a new training run in %s replaces the one there", self.out_dir)
            for name in stale:
                path = self.out_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            self._curve = CurveLog(self.out_dir)
            self.evaluated = set()
            self._train_time_s = 0.0
        if old:
            kept_fields = {k: v for k, v in old.items() if k not in ("finished", "final_step", "hf_train_metrics")}
            resume = {"at": fresh["created"], "step": step, "code": fresh["code"], "versions": fresh["versions"]}
            self._manifest = fresh | kept_fields | {"resumes": [*old.get("resumes", []), resume]}
        else:
            self._manifest = fresh
        self._write_manifest()

    def _fresh_manifest(self, args: Any, model: Any) -> dict[str, Any]:
        from ra3bench.results import code_version, host_info

        config = getattr(model, "config", None)
        return {
            "kind": "training",
            "created": _now(),
            "trainer": type(self.trainer).__name__ if self.trainer is not None else None,  # None: not attached
            "callback": f"{__name__}.{type(self).__name__}",
            "name": self.name,
            "model": {
                "class": type(model).__name__ if model is not None else None,
                "name_or_path": getattr(config, "_name_or_path", None),
            },
            "evaluation": {
                "every": self.every,
                "at_start": self.at_start,
                "specs": [asdict(spec) for spec in self.specs],
            },
            "training_args": _sanitized(args),
            "code": code_version(),
            "versions": _versions(),
            "host": host_info(),
        }

    def _record(self, **fields: Any) -> None:
        self._manifest.update(fields)
        self._write_manifest()

    def _write_manifest(self) -> None:
        assert self.out_dir is not None
        tmp = self.out_dir / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(self._manifest, indent=2, default=str) + "\n")
        tmp.replace(self.out_dir / MANIFEST)

    def _open(self) -> None:
        """One session per spec, one sandbox per sandbox kind (or the one given), expected outputs now."""
        from ra3bench import Session, open_sandbox

        if self._sessions:
            return
        try:
            for spec in self.specs:
                sandbox = self._borrowed_sandbox
                if sandbox is None:
                    key = (spec.sandbox, spec.workers)
                    if key not in self._sandboxes:
                        self._sandboxes[key] = open_sandbox(spec.sandbox, spec.workers, spec.ray_address)
                    sandbox = self._sandboxes[key]
                self._sessions.append(Session(spec, sandbox=sandbox).prepare())
        except BaseException:
            self.close()
            raise
        self._record(
            evaluation=self._manifest.get("evaluation", {})
            | {"suites": {s.suite.name: {"tasks": [p.task_id for p in s.problems]} for s in self._sessions}}
        )

    def close(self) -> None:
        """Close the sessions, the sandboxes opened here and the curve (at the end of training; idempotent)."""
        _close_all(self._sessions, self._sandboxes)
        if self._curve is not None:
            self._curve.close()
            self._curve = None
        self._running = False


def _close_all(sessions: list, sandboxes: dict) -> None:
    while sessions:
        sessions.pop().close()
    while sandboxes:
        _, sandbox = sandboxes.popitem()
        sandbox.close()


def _refuse_sharded(args: Any) -> None:
    """The main process generates with its own copy of the weights, which sharded weights rule out."""
    if getattr(args, "world_size", 1) <= 1:
        return
    from transformers.integrations import is_deepspeed_zero3_enabled

    if getattr(args, "fsdp", None):
        raise UsageError("Ra3benchCallback evaluates on the main process alone, which FSDP's sharded weights rule out")
    if is_deepspeed_zero3_enabled():
        raise UsageError("Ra3benchCallback evaluates on the main process alone, which DeepSpeed ZeRO-3 rules out")


def _tokens(state: Any) -> int:
    return int(getattr(state, "num_input_tokens_seen", 0) or 0)


def _is_number(value: Any) -> bool:
    """A log value that is a number: int, float, or a 0-d tensor / numpy scalar (not a bool, not None)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (getattr(value, "ndim", None) == 0 and hasattr(value, "item"))


def _number(value: Any) -> int | float:
    return value if isinstance(value, (int, float)) else value.item()


def _sanitized(args: Any) -> dict:
    try:
        return args.to_sanitized_dict()
    except Exception:  # a custom args class: the manifest does without
        return {}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "transformers", "trl", "peft", "accelerate"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def _now() -> str:
    from ra3bench.results import now_iso

    return now_iso()
