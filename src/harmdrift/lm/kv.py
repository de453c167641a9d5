"""A KV cache that grows in place: each layer's keys and values live in buffers with room left
along the time axis, so a decode step writes one position instead of copying the whole cache.

transformers' DynamicLayer appends with ``torch.cat``: every step allocates and fills a new
tensor for every layer's keys and values. Writing in place took a decode step of 32 rows of
about 340 positions from 247.5 to 225.2 ms (SmolLM2-135M, fp32, 2-core AMD EPYC). torch.profiler
put 79% of the step in ``aten::cat``, but that was the profiler's own cost: without it the
matmuls (63%) and attention (21%) dominate.

This is the engine's one subclass of transformers internals, and with ``plain_layers`` and
``is_plain`` its only reliance on them: a ``DynamicCache`` keeps a list ``layers`` whose
``update``, ``get_seq_length``, ``batch_select_indices`` and ``crop`` the model and the cache
call, and iterating a cache yields ``(keys, values, sliding window)`` per layer. The
continuous batching, the shared-prefix runs and the grouped scoring passes (3.5x DART-style
generation, ``perf/bench_generation.py``) need plain caches they can copy and merge.
``tests/unit/lm/test_transformers_contract.py`` and ``test_kv.py`` (bit-for-bit logits through
a real forward pass) fail if a transformers upgrade changes any of it.
"""

from __future__ import annotations

import functools


@functools.cache
def roomy_layer_class() -> type:
    """The layer class, built on first use so importing this module does not import transformers."""
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """A DynamicLayer whose ``keys`` and ``values`` are views of larger buffers.

        ``update`` writes new positions into the room after the last one and only reallocates
        (with half as much room again) when it runs out. Positions past the current length are
        never part of the views, so attention never sees them.
        """

        def __init__(self, keys, values, room: int) -> None:
            super().__init__()
            self.dtype, self.device = keys.dtype, keys.device
            self.is_initialized = True
            self._store(keys, values, room)

        def _store(self, keys, values, room: int) -> None:
            length = keys.shape[-2]
            shape = (*keys.shape[:-2], length + room, keys.shape[-1])
            self._keys, self._values = keys.new_empty(shape), values.new_empty(shape)
            self._keys[..., :length, :] = keys
            self._values[..., :length, :] = values
            self._view(length)

        def _view(self, length: int) -> None:
            self.length = length
            self.keys = self._keys[..., :length, :]
            self.values = self._values[..., :length, :]

        def update(self, key_states, value_states, *args, **kwargs):
            end = self.length + key_states.shape[-2]
            if end > self._keys.shape[-2]:
                self._store(self.keys, self.values, room=max(key_states.shape[-2], self.length // 2))
            self._keys[..., self.length : end, :] = key_states
            self._values[..., self.length : end, :] = value_states
            self._view(end)
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices) -> None:
            self._keys = self._keys.index_select(0, indices)
            self._values = self._values.index_select(0, indices)
            self._view(self.length)

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._view(self.length)

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError(f"crop takes a negative count of positions, got {tokens_to_remove}")
            self._view(self.length + tokens_to_remove)

    return RoomyLayer


def is_plain(cache) -> bool:
    """Whether every layer is plain attention (keys and values only, no sliding window)."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) in (DynamicLayer, roomy_layer_class()) for layer in cache.layers)


def plain_layers(cache) -> list[tuple]:
    """A plain attention cache's (keys, values) per layer."""
    return [(keys, values) for keys, values, _ in cache]


def roomy_cache(layers, room: int, config):
    """A DynamicCache of RoomyLayers from (keys, values) pairs, each with ``room`` free positions."""
    from transformers import DynamicCache

    layer = roomy_layer_class()
    cache = DynamicCache(config=config)
    cache.layers = [layer(keys, values, room) for keys, values in layers]
    return cache
