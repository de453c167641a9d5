"""The local generation engine: load a (LoRA-adapted, optionally 4-bit) causal LM and decode
prompts with continuous batching, per-item seeded sampling and early stops."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harmdrift.core.decoding import GenParams
from harmdrift.core.runtime import (
    check_4bit_support,
    pick_device,
    pick_dtype,
    quantization_record,
    quantized_load_kwargs,
)
from harmdrift.lm.batch import LiveBatch, Row, inputs_after_prefix
from harmdrift.lm.forced import ForcedChoice, ForcedScorer
from harmdrift.lm.groups import group_rows, inputs_after_heads, pack_groups, run_heads, tail_passes
from harmdrift.lm.kv import is_plain, plain_layers
from harmdrift.lm.sampler import TokenSampler

logger = logging.getLogger(__name__)

# Fewer shared leading tokens than this are not worth a forward pass of their own.
MIN_SHARED_PREFIX = 16


@dataclass(frozen=True)
class HFModelConfig:
    """How to load a causal LM for generation.

    Built from schema-checked config sections, whose schema holds the allowed values; whether
    the machine can honour device and quantization is checked when the model loads.
    """

    model: str  # what from_pretrained takes: a folder or a hub id
    revision: str | None = None
    adapter: str | None = None  # a PEFT LoRA adapter folder applied on top
    dtype: str = "auto"
    quantization: str = "none"
    device: str = "auto"
    batch_size: int = 16
    sort_by_length: bool = True


def keep_compute_dtype(model, dtype) -> int:
    """Make a 4-bit model's inference compute in ``dtype``, as its training did.

    On CPUs with AVX-512-BF16, bitsandbytes 0.50.2 repacks each ``Linear4bit`` the first time it
    runs without gradients and from then on multiplies in bf16, whatever the compute dtype: the
    same config then gave other numbers on such a CPU than on an AVX2 one, and the adapter was
    evaluated on other arithmetic than it was trained with (SmolLM2-135M in NF4, fp32 compute:
    last-token logits off by up to 0.25 from the fp32 path, measured on a 2-core AMD EPYC with
    AVX-512-BF16). Its module flag ``support_avx512bf16_for_cpu`` switches the repacking off;
    tests/unit/lm/test_bitsandbytes_contract.py checks that the flag still does that. Nothing
    changes for a bf16 compute dtype (then the repacked kernel computes in the asked dtype).

    Returns:
        How many layers were switched.
    """
    import torch

    if dtype == torch.bfloat16:
        return 0
    from bitsandbytes.nn import Linear4bit

    switched = 0
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.support_avx512bf16_for_cpu = False
            switched += 1
    return switched


@dataclass(frozen=True)
class Generation:
    """One model reply: the text, how many tokens it took, and why it ended."""

    text: str
    n_new_tokens: int
    finish_reason: str  # "stop": answer written; "eos": model ended; "length": hit max_new_tokens
    n_prompt_tokens: int | None = None
    # Forced choice (when asked for): log-probability of each option after prompt + reply + prefix.
    forced_scores: dict[str, float] | None = None


class HFGenerator:
    """Generate replies to chat conversations with a local or hub causal LM (optionally LoRA-adapted)."""

    def __init__(self, cfg: HFModelConfig, *, progress: bool = True) -> None:
        from transformers import AutoTokenizer

        self.cfg = cfg
        self.progress = progress
        self.device = pick_device(cfg.device)
        check_4bit_support(cfg.quantization, self.device)
        self.dtype = pick_dtype(cfg.dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, revision=cfg.revision)
        self.tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @functools.cached_property
    def model(self):
        """The weights, loaded on first use: a job that finds an identical job's replies (a
        repair round that kept its parent's adapter) renders its prompts with the tokenizer
        and never loads them (about 5 s a job for the 135M model with an adapter)."""
        from transformers import AutoModelForCausalLM

        cfg = self.cfg
        started = time.perf_counter()
        load_kwargs = quantized_load_kwargs(cfg.quantization, self.dtype, self.device)
        model = AutoModelForCausalLM.from_pretrained(
            cfg.model, revision=cfg.revision, dtype=self.dtype, **load_kwargs
        )
        if cfg.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, cfg.adapter)
            if cfg.quantization == "none":
                # Folding LoRA into the base weights removes the adapter's extra matmuls per step.
                model = model.merge_and_unload()
        if cfg.quantization == "none":
            model = model.to(self.device)
        else:
            keep_compute_dtype(model, self.dtype)
        logger.info(
            "loaded %s%s on %s as %s in %.1fs",
            cfg.model,
            f" + adapter {cfg.adapter}" if cfg.adapter else "",
            self.device,
            str(self.dtype).replace("torch.", ""),
            time.perf_counter() - started,
        )
        return model.eval()

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    @property
    def quantization(self) -> dict:
        """How the weights are (or will be) quantised, for provenance."""
        return quantization_record(self.cfg.quantization, self.dtype)

    def render(self, conversation: list[dict]) -> str:
        """The exact prompt text the model sees (chat template applied)."""
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def generate(
        self,
        conversations: Sequence[list[dict]],
        params: GenParams,
        *,
        keys: Sequence[str],
        stop: Callable[[str], bool] | None = None,
        desc: str = "generate",
        forced: ForcedChoice | None = None,
    ) -> list[Generation]:
        """Answer every conversation.

        Args:
            conversations: chat messages, one list per item.
            params: decoding settings.
            keys: one stable key per item (its id): seeds that item's random stream.
            stop: called on the decoded reply after each step; True ends that row early.
            desc: label of the progress bar.
            forced: when given, each finished reply is followed by ``forced.prefix`` and the
                log-probability of each option is read (from the row's KV cache, one short
                forward pass per compaction) into ``Generation.forced_scores``. It never
                changes the sampled replies.

        Returns:
            One :class:`Generation` per conversation, in input order.
        """
        from tqdm.auto import tqdm

        if len(keys) != len(conversations):
            raise ValueError(f"got {len(conversations)} conversations but {len(keys)} keys")
        texts = [self.render(c) for c in conversations]
        encoded = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        order = list(range(len(texts)))
        if self.cfg.sort_by_length:
            # Longest first: the memory peak comes at once, not after an hour; and rows that
            # decode together have similar lengths, so little is spent on padding.
            order.sort(key=lambda i: len(encoded[i]), reverse=True)
        results: list[Generation | None] = [None] * len(texts)
        bar = tqdm(total=len(texts), desc=desc, unit="item", disable=not self.progress, dynamic_ncols=True)
        started = time.perf_counter()
        new_tokens = 0

        def finish(rows: list[Row]) -> None:
            nonlocal new_tokens
            outs = [self._to_generation(row) for row in rows]
            for row, out in zip(rows, outs, strict=True):
                results[row.index] = out
                new_tokens += out.n_new_tokens
            bar.update(len(rows))
            bar.set_postfix(tok_s=f"{new_tokens / max(time.perf_counter() - started, 1e-9):.0f}")

        scorer = ForcedScorer(forced, self.tokenizer) if forced is not None else None
        self._decode(order, encoded, keys, params, stop, finish, scorer)
        bar.close()
        elapsed = time.perf_counter() - started
        logger.info(
            "%s: %d items, %d new tokens in %.1fs (%.2f items/s, %.0f tokens/s)",
            desc,
            len(texts),
            new_tokens,
            elapsed,
            len(texts) / max(elapsed, 1e-9),
            new_tokens / max(elapsed, 1e-9),
        )
        return results  # type: ignore[return-value]

    def score_options(
        self, conversations: Sequence[list[dict]], options: Sequence[str], *, batch_size: int | None = None
    ) -> list[list[float]]:
        """Log-likelihood of each option as the start of the reply, per conversation.

        Reading the choice off the model's probabilities (rather than its free text) always
        yields one of the allowed answers, however weak the model: the LLM judge and the
        predicted-label teacher use it on local models.

        Returns:
            For every conversation, the summed log-probability of each option's tokens.
        """
        import torch

        prompts = [
            self.tokenizer(self.render(c), add_special_tokens=False)["input_ids"] for c in conversations
        ]
        option_ids = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
        if all(len(o) == 1 for o in option_ids):
            return self._score_first_tokens(prompts, [o[0] for o in option_ids], batch_size)
        # Left padding puts every option at the right edge, so only the last (longest option
        # + 1) positions' logits are needed; the prompt's full-vocabulary logits never are.
        keep = max(len(o) for o in option_ids) + 1
        pairs = [(p, o) for p in prompts for o in option_ids]
        sequences = [p + o for p, o in pairs]
        scores: list[float] = [0.0] * len(pairs)
        with torch.inference_mode():
            prefix = self._run_prefix(sequences, keep)
            for rows, logits in self._scoring_passes(sequences, batch_size, keep, prefix):
                logprobs = logits.log_softmax(dim=-1)
                width = logprobs.shape[1]
                for row, index in enumerate(rows):
                    # Token t of the option is predicted at position t - 1.
                    option = pairs[index][1]
                    first = width - len(option)
                    targets = torch.tensor(option, device=logprobs.device)
                    picked = logprobs[row, first - 1 : width - 1].gather(1, targets[:, None])
                    scores[index] = float(picked.sum())
        n = len(options)
        return [scores[i * n : (i + 1) * n] for i in range(len(conversations))]

    def _batches(
        self, sequences: list[list[int]], batch_size: int | None, keep: int, start: int
    ) -> list[list[tuple[int, list[int]]]]:
        """Scoring batches of row groups ``(shared length, rows)``: rows that share a long
        opening beyond the call's common ``start`` are grouped so it runs once (``lm.groups``);
        with ``sort_by_length``, a batch's rows have similar lengths, so it pads little. The
        check set's prompts hold one-line and 512-character explanations alike, so batches in
        file order padded most rows to the longest."""
        if self.refills:
            groups = group_rows(sequences, start, keep)
        else:  # heads are copied per row, which only plain attention caches allow
            groups = [(start, [i]) for i in range(len(sequences))]
        size = batch_size or self.cfg.batch_size
        return pack_groups(groups, sequences, size, start, self.cfg.sort_by_length)

    def _score_first_tokens(
        self, prompts: list[list[int]], option_ids: list[int], batch_size: int | None
    ) -> list[list[float]]:
        """Single-token options: one forward pass per prompt reads all options at once."""
        import torch

        scores: list[list[float]] = [[] for _ in prompts]
        with torch.inference_mode():
            prefix = self._run_prefix(prompts, 1)
            for rows, logits in self._scoring_passes(prompts, batch_size, 1, prefix):
                logprobs = logits[:, -1].log_softmax(dim=-1)[:, option_ids]
                for index, row in zip(rows, logprobs.tolist(), strict=True):
                    scores[index] = row
        return scores

    def _run_prefix(self, sequences: list[list[int]], keep: int) -> tuple[int, list[tuple] | None]:
        """Run the leading tokens every sequence shares once, for all of a call's batches.

        The judge's prompts share their whole instruction block (381 of 554-772 tokens on the
        default check set), so each batch copies this one cache rather than running the block
        again; generation's prefills copy it the same way. Returns the shared length and its
        (keys, values) per layer, or ``(0, None)`` when nothing is shared (see
        :meth:`_shared_length`).
        """
        import torch

        shared = self._shared_length(sequences, keep)
        if not shared:
            return 0, None
        head = torch.tensor([sequences[0][:shared]], device=self.model.device)
        cache = self.model(input_ids=head, use_cache=True, logits_to_keep=1).past_key_values
        return shared, plain_layers(cache)

    def _scoring_passes(self, sequences: list[list[int]], batch_size: int | None, keep: int, prefix):
        """Every forward pass of a scoring call, batch by batch (see :meth:`_passes`)."""
        for batch in self._batches(sequences, batch_size, keep, prefix[0]):
            yield from self._passes(sequences, batch, keep, prefix)

    def _passes(self, sequences: list[list[int]], batch, keep: int, prefix: tuple[int, list | None]):
        """The forward passes of one batch of row groups: per pass, its row indices and the
        float logits of each row's last ``keep`` positions.

        ``prefix`` (from :meth:`_run_prefix`) holds the KV cache of the tokens every sequence
        starts with (see :func:`inputs_after_prefix`). A batch of groups with a longer shared
        head runs the heads first, once (:func:`~harmdrift.lm.groups.run_heads`), then the
        rows' own tokens. Results equal a plain padded pass up to float rounding.
        """
        if all(shared == prefix[0] for shared, _ in batch):
            rows = [i for _, group in batch for i in group]
            inputs = inputs_after_prefix(self.tokenizer, self.model, [sequences[i] for i in rows], prefix)
            yield rows, self._logits(inputs, keep)
            return
        heads = run_heads(self.model, self.tokenizer, sequences, batch, prefix)
        for rows in tail_passes(sequences, batch):
            inputs = inputs_after_heads(self.tokenizer, self.model, sequences, heads, rows)
            yield [i for _, _, i in rows], self._logits(inputs, keep)

    def _logits(self, inputs, keep: int):
        ids, mask, positions, cache = inputs
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=cache is not None,
            logits_to_keep=keep,
        ).logits.float()

    def _shared_length(self, sequences: list[list[int]], keep: int) -> int:
        """How many leading tokens the rows share and :meth:`_run_prefix` runs once: 0 when
        it would not pay (a short prefix or a single row) or the cache is not plain attention.
        Each row keeps at least ``keep`` tokens of its own, the positions whose logits are read."""
        if len(sequences) < 2:
            return 0
        shared = min(len(os.path.commonprefix(sequences)), min(map(len, sequences)) - keep)
        if shared < MIN_SHARED_PREFIX or not self.refills:
            return 0
        return shared

    def eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        return {i for i in ids if i is not None}

    @functools.cached_property
    def refills(self) -> bool:
        """Whether rows may be merged into a live batch and share copied prefix caches: only
        right for plain (non-sliding) attention caches, which this model's cache is when
        every layer transformers builds for it is a plain ``DynamicLayer``."""
        from transformers import DynamicCache

        return is_plain(DynamicCache(config=self.model.config))

    def _decode(self, order, encoded, keys, params: GenParams, stop, finish, scorer=None) -> None:
        """Run every prompt through one live batch that is topped up as rows finish."""
        import torch

        size = self.cfg.batch_size
        refill = self.refills
        sampler = TokenSampler(params)
        waiting = [Row(i, encoded[i], sampler.stream(keys[i]), []) for i in order]
        waiting.reverse()  # pop() from the end takes them in order
        threshold = max(1, size // 4)
        with torch.inference_mode():
            # The chat header and the template's opening line (34 of about 194 tokens of a
            # default binary prompt) are the same in every prompt: run them once per call. M0 on
            # the 96 test prompts, one thread, AMD EPYC: 123.0 and 128.8 s against 133.3 and
            # 143.8 s prefilling every prompt whole, the same 96 replies.
            batch = LiveBatch(self, params, stop, scorer, prefix=self._run_prefix(encoded, 1))
            while waiting or batch.rows:
                room = size - (len(batch.rows) - batch.finished)
                compact = batch.finished >= max(1, len(batch.rows) // 4)
                top_up = refill and bool(waiting) and room >= threshold
                if not batch.rows or compact or top_up:
                    done = batch.drop_finished()
                    if done:
                        finish(done)
                    if waiting and (refill or not batch.rows):
                        fresh = [waiting.pop() for _ in range(min(size - len(batch.rows), len(waiting)))]
                        batch.add(fresh)
                    continue
                batch.step()

    def _to_generation(self, row: Row) -> Generation:
        return Generation(
            text=self.tokenizer.decode(row.written, skip_special_tokens=True).strip(),
            n_new_tokens=len(row.written) + (row.reason == "eos"),
            finish_reason=row.reason or "length",
            n_prompt_tokens=len(row.prompt),
            forced_scores=row.forced,
        )
