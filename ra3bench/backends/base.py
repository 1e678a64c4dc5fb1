"""The backend contract: something that turns problems into samples.

Generation backends (hf, vllm, openai) and file-based ones (reference, replay) look the
same to the pipeline: an iterator of :class:`ra3bench.pipeline.Sample`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator

from ra3bench.pipeline import Sample
from ra3bench.suites.base import Problem, Suite


class Backend(abc.ABC):
    name: str = "?"

    @abc.abstractmethod
    def samples(self, suite: Suite, problems: list[Problem], n: int) -> Iterator[Sample]:
        """Yield up to ``n`` samples per problem (a file may hold fewer or more)."""

    def describe(self) -> dict:
        """What the manifest records: model, generation parameters, file hashes."""
        return {"backend": self.name}

    def run_name(self) -> str:
        """A short name for the default run folder."""
        return str(self.describe().get("model", self.name))
