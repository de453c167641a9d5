"""The in-place KV cache: same keys, values and logits as transformers' concatenating cache."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from harmdrift.lm.kv import is_plain, roomy_cache


def test_updates_past_the_room_keep_every_position():
    torch.manual_seed(0)
    keys, values = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    layer = roomy_cache([(keys, values)], room=2, config=None).layers[0]
    expect_k, expect_v = keys, values
    for step in range(7):  # the room runs out at the third step and the buffers grow
        new_k, new_v = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4)
        got_k, got_v = layer.update(new_k, new_v)
        expect_k, expect_v = torch.cat([expect_k, new_k], -2), torch.cat([expect_v, new_v], -2)
        assert torch.equal(got_k, expect_k) and torch.equal(got_v, expect_v), step
    assert layer.get_seq_length() == 12
    index = torch.tensor([2, 0])
    layer.batch_select_indices(index)
    assert torch.equal(layer.keys, expect_k[index]) and torch.equal(layer.values, expect_v[index])
    layer.update(torch.zeros(2, 2, 1, 4), torch.zeros(2, 2, 1, 4))
    assert layer.keys.shape == (2, 2, 13, 4) and torch.equal(layer.keys[:, :, :12], expect_k[index])


def test_crop_refuses_a_positive_count():
    layer = roomy_cache([(torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2))], room=1, config=None).layers[0]
    layer.crop(-1)
    assert layer.get_seq_length() == 2
    with pytest.raises(ValueError, match="negative"):
        layer.crop(1)


def test_decoding_through_it_gives_the_same_logits_bit_for_bit(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    torch.manual_seed(1)
    prompt = torch.randint(3, model.config.vocab_size, (4, 9))
    with torch.inference_mode():
        plain = DynamicCache(config=model.config)
        model(input_ids=prompt, past_key_values=plain, use_cache=True)
        roomy = roomy_cache([(k.clone(), v.clone()) for k, v, _ in plain], room=3, config=model.config)
        assert is_plain(roomy) and is_plain(plain)
        for step in range(6):  # past the room, so one step also reallocates
            token = torch.randint(3, model.config.vocab_size, (4, 1))
            position = torch.full((4, 1), 9 + step)
            a = model(input_ids=token, position_ids=position, past_key_values=plain, use_cache=True).logits
            b = model(input_ids=token, position_ids=position, past_key_values=roomy, use_cache=True).logits
            assert torch.equal(a, b), step
