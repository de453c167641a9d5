"""A tiny random chat Llama written to a folder, for checks that need a real model but no weights.

The unit tests load one in milliseconds; ``perf/gpu_check.py`` builds a larger one on the GPU
machine, which has no internet and cannot receive the embedded model. Both need the same
pieces (a word-level tokenizer, a chat template the engine can apply, pad and EOS ids wired
into the generation config), so they share this builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The tokenizer needs these; the chat template below writes the role tokens.
SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>", "<user>", "<assistant>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)


@dataclass(frozen=True)
class TinyShape:
    """Model dimensions (the defaults load fastest; the GPU check uses multiples of 64)."""

    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256


def build_tiny_llama(folder, words, shape: TinyShape = TinyShape(), seed: int = 0) -> str:
    """Write a random Llama (tied embeddings) and a whitespace word-level tokenizer to ``folder``.

    ``words`` is the vocabulary; the special tokens are added in front when missing. Returns
    the folder as a string, ready for ``from_pretrained``.
    """
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab_words = [t for t in SPECIAL_TOKENS if t not in words] + list(dict.fromkeys(words))
    ids = {word: i for i, word in enumerate(vocab_words)}
    core = Tokenizer(WordLevel(ids, unk_token="<unk>"))
    core.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(ids),
        pad_token_id=ids["<pad>"],
        eos_token_id=ids["<eos>"],
        bos_token_id=None,
        tie_word_embeddings=True,
        **vars(shape),
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.eos_token_id = ids["<eos>"]
    model.save_pretrained(Path(folder))
    tokenizer.save_pretrained(Path(folder))
    return str(folder)
