"""ra3bench: measure code LLMs and the training methods that improve them."""

__version__ = "0.1.0"
