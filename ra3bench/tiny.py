"""A tiny causal LM built from a config, with no download: for tests and quick dry runs.

``--model tiny-random`` (or :func:`tiny_model`) gives a 2-layer Llama with random weights and
a byte-level BPE tokenizer trained in well under a second on a few lines of Python. It runs
every real code path (tokenizing, chat template, batched generate, training steps) in
seconds on a CPU; what it writes is noise, which is what the tests expect of it.
"""

from __future__ import annotations

from typing import Any

TINY_SPEC = "tiny-random"

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n: int) -> bool:\n    return n % 2 == 0\n",
    "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    s = 0\n",
    "    for x in xs:\n        s += x\n    return s\n",
    "class Solution:\n    def solve(self, nums):\n        return sorted(nums)\n",
    "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n",
    '"""Return the maximum of a list."""\nwhile True:\n    break\nif x > y:\n    pass\nelse:\n    pass\n',
    "```python\n# comment\n```\nHere is the code. The function returns the answer.\n",
]


def tiny_tokenizer(vocab_size: int = 384, corpus: list[str] | None = None) -> Any:
    """A byte-level BPE tokenizer (every text encodes) with a ChatML-style template, trained on a few lines
    of Python, or on ``corpus`` (a task of its own, e.g. RA3's known-answer task)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS * 4 if corpus is None else corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_model(seed: int = 0, *, hidden_size: int = 64, layers: int = 2, tokenizer: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer): a random 2-layer Llama sized to the tiny tokenizer (or to ``tokenizer``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer() if tokenizer is None else tokenizer
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.config._name_or_path = TINY_SPEC
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer
