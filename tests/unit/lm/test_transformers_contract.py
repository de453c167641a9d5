"""What the engine takes from transformers beyond its public API, one test per reliance.

Each test names the place in ``harmdrift.lm`` that needs it. A transformers upgrade that
breaks one of these fails here first, with the reason, rather than as a slowdown or a
mismatch deep inside a generation test.
"""

from __future__ import annotations

import ast
import inspect

import torch
from transformers import DynamicCache, LlamaConfig
from transformers.cache_utils import DynamicLayer

from harmdrift.lm.kv import is_plain, plain_layers, roomy_cache


def tiny_llama_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2
    )


def test_a_llama_cache_is_made_of_plain_dynamic_layers():
    """HFGenerator.refills: continuous batching and prefix copies are on only for such caches."""
    cache = DynamicCache(config=tiny_llama_config())
    assert len(cache.layers) == 2 and all(type(layer) is DynamicLayer for layer in cache.layers)
    assert is_plain(cache)


def test_iterating_a_cache_yields_keys_and_values_first():
    """kv.plain_layers reads (keys, values, sliding window) per layer."""
    cache = DynamicCache(config=tiny_llama_config())
    keys, values = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    cache.update(keys, values, layer_idx=0)
    cache.update(keys + 1, values + 1, layer_idx=1)
    layers = plain_layers(cache)
    assert torch.equal(layers[0][0], keys) and torch.equal(layers[1][1], values + 1)


def test_the_cache_calls_its_layers_through_the_methods_roomy_layer_overrides():
    """kv.RoomyLayer overrides these; if DynamicCache stopped calling them, writes would go
    around the in-place buffers."""
    cache = roomy_cache([(torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8))] * 2, room=4, config=None)
    cache.update(torch.ones(1, 2, 1, 8), torch.ones(1, 2, 1, 8), layer_idx=0)
    assert cache.get_seq_length(0) == 4 and cache.layers[0].length == 4
    cache.batch_select_indices(torch.tensor([0]))
    assert cache.layers[0].keys.shape == (1, 2, 4, 8)
    for name in ("update", "get_seq_length", "batch_select_indices", "crop"):
        assert callable(getattr(DynamicLayer, name)), name


def _function_imports_from_gguf(module) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    names = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module == "gguf":
                    names |= {alias.name for alias in node.names}
    return names


def test_transformers_imports_the_gguf_reader_and_name_map_at_call_time():
    """lm.convert.gguf_parsed_once patches gguf's module attributes, which works only while
    transformers imports these names inside its functions, not once at import."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    assert {"GGUFReader", "get_tensor_name_map"} <= _function_imports_from_gguf(gguf_utils)
    assert not hasattr(gguf_utils, "GGUFReader") and not hasattr(gguf_utils, "get_tensor_name_map")
