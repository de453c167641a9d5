"""Batched text generation with Hugging Face models: the hot path of the whole pipeline.

What makes it fast on a small CPU and still right for a paired audit:

- prompts are sorted by length and padded on the left, so a batch wastes little on padding;
- each sequence stops as soon as its answer is written (a caller-supplied check on the
  decoded text), not at ``max_new_tokens``;
- bf16 is used where the processor runs it faster than fp32 (measured at load time);
- sampling is seeded *per item*: every item draws its random numbers from its own stream,
  seeded by (seed, item key), so the same item gets the same draws whatever batch it lands
  in and whichever model (base or fine-tuned) is generating. This is what lets the audit
  compare M0 and M_int on equal terms.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
QUANTIZATIONS = ("none", "4bit")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class GenParams:
    """Decoding settings that change the output (and so belong in provenance and cache keys)."""

    max_new_tokens: int = 256
    temperature: float = 0.2
    top_p: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HFModelConfig:
    """How to load a causal LM for generation."""

    model: str  # what from_pretrained takes: a folder or a hub id
    revision: str | None = None
    adapter: str | None = None  # a PEFT LoRA adapter folder applied on top
    dtype: str = "auto"
    quantization: str = "none"
    device: str = "auto"
    batch_size: int = 16
    sort_by_length: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class Generation:
    """One model reply: the text, how many tokens it took, and why it ended."""

    text: str
    n_new_tokens: int
    finish_reason: str  # "stop": answer written; "eos": model ended; "length": hit max_new_tokens
    n_prompt_tokens: int | None = None


def item_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one item's random stream, stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()
    return int(digest[:15], 16)


def set_threads(threads: int | None) -> None:
    """Let torch use the job's CPU threads (Snakemake's ``threads``); None leaves its default."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA GPU on this machine")
    return device


def cpu_bf16_speedup(size: int = 768, repeats: int = 5) -> float:
    """Measure how much faster a bf16 matmul runs than fp32 on this CPU (ratio > 1 = faster)."""
    import torch

    a32, b32 = torch.randn(size, size), torch.randn(size, size)
    a16, b16 = a32.bfloat16(), b32.bfloat16()

    def best(a, b) -> float:
        a @ b  # warm-up: the first call pays for kernel selection
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a32, b32) / max(best(a16, b16), 1e-9)


def pick_dtype(dtype: str, device: str, *, allow_fp16: bool = True):
    """Resolve ``dtype: auto``: bf16 on GPUs that have it, and on CPUs where it measures faster.

    A GPU without bf16 falls back to fp16, or to fp32 when ``allow_fp16`` is off (training:
    fp16 needs loss scaling and still overflows on some models).
    """
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if allow_fp16 else torch.float32
    ratio = cpu_bf16_speedup()
    chosen = torch.bfloat16 if ratio > 1.2 else torch.float32
    logger.info("dtype auto: bf16 matmul runs %.2fx fp32 speed on this CPU -> %s", ratio, chosen)
    return chosen


class TokenSampler:
    """Choose each row's next token: greedy, or a draw from that item's own random stream.

    A draw is inverse-CDF sampling from the tempered, nucleus-filtered distribution with
    one uniform number per row and step. Each item has its own torch Generator, seeded by
    (seed, item key) and advanced once per token the item generates, so an item's draws do
    not depend on its batch mates, the batch size, or the model: the paired audit gives M0
    and M_int the same random numbers, and where their distributions agree they pick the
    same token. transformers' sampler shares one stream across the batch, hence this class.

    The nucleus is found among the ``candidates`` most likely tokens (a partial top-k, far
    cheaper than sorting a 50k-token vocabulary on a CPU); a row whose nucleus is wider
    than that falls back to a full sort, so the result is exact either way.
    """

    def __init__(self, params: GenParams, candidates: int = 64) -> None:
        self.params = params
        self.sampling = params.temperature > 0
        self.candidates = candidates

    def stream(self, key: str):
        """The random stream of one item (None when decoding is greedy)."""
        import torch

        return torch.Generator().manual_seed(item_seed(self.params.seed, key)) if self.sampling else None

    def pick(self, logits, streams: Sequence):
        """Next token ids, one per row of ``logits`` (rows x vocabulary), row i drawing from streams[i]."""
        import torch

        scores = logits.float()
        if not self.sampling:
            return scores.argmax(dim=-1)
        scores = scores / self.params.temperature
        uniform = torch.cat([torch.rand(1, generator=g) for g in streams]).to(scores.device)
        log_total = torch.logsumexp(scores, dim=-1, keepdim=True)
        if self.params.top_p >= 1.0:  # no nucleus: draw over the whole vocabulary, no sort needed
            order = torch.arange(scores.shape[-1], device=scores.device).expand_as(scores)
            return _draw((scores - log_total).exp(), order, uniform, 1.0)
        k = min(self.candidates, scores.shape[-1])
        values, tokens = scores.topk(k, dim=-1)  # sorted, most likely first
        probs = (values - log_total).exp()
        covered = probs.sum(dim=-1) >= self.params.top_p
        chosen = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
        if covered.any():
            rows = covered.nonzero().flatten()
            chosen[rows] = _draw(probs[rows], tokens[rows], uniform[rows], self.params.top_p)
        if not covered.all():
            rows = (~covered).nonzero().flatten()
            full, order = (scores[rows] - log_total[rows]).exp().sort(dim=-1, descending=True)
            chosen[rows] = _draw(full, order, uniform[rows], self.params.top_p)
        return chosen


def _draw(probs, tokens, uniform, top_p: float):
    """Inverse-CDF draw from each row's nucleus.

    ``probs`` are sorted most likely first when top_p < 1; a token stays in the nucleus
    while the mass before it is below top_p, so the most likely token always stays.
    """
    import torch

    before = probs.cumsum(dim=-1) - probs
    kept = torch.where(before < top_p, probs, torch.zeros_like(probs))
    cumulative = kept.cumsum(dim=-1)
    target = uniform * cumulative[:, -1]
    index = torch.searchsorted(cumulative, target[:, None], right=True).clamp_(max=probs.shape[-1] - 1)
    return tokens.gather(1, index).flatten()


@dataclass
class _Row:
    """One reply being written: where it goes, its prompt, its random stream and its tokens."""

    index: int
    prompt: list[int]
    stream: object
    written: list[int]
    reason: str | None = None  # set once finished: "stop", "eos" or "length"


class _LiveBatch:
    """The rows currently decoding together, with their shared KV cache.

    Rows finish at very different lengths. transformers' generate() keeps finished rows in
    the batch until the longest reply ends, and on a CPU most of that work is wasted. Here
    finished rows are dropped and their slots refilled with waiting prompts (continuous
    batching), so the batch stays full. Each compaction copies the cache once, so it is done
    when a quarter of the slots are free rather than after every finished row.
    """

    def __init__(self, owner: HFGenerator, params: GenParams, stop) -> None:
        self.model = owner.model
        self.tokenizer = owner.tokenizer
        self.eos_ids = owner.eos_ids()
        self.sampler = TokenSampler(params)
        self.params = params
        self.stop = stop
        self.rows: list[_Row] = []
        self.cache = None
        self.mask = None
        self.last_position = None
        self.next_ids = None

    @property
    def finished(self) -> int:
        return sum(row.reason is not None for row in self.rows)

    def _accept(self, rows: list[_Row], chosen: list[int]) -> None:
        """Record each unfinished row's new token and decide whether the row is done."""
        for row, token in zip(rows, chosen, strict=True):
            if row.reason is not None:
                continue
            if token in self.eos_ids:
                row.reason = "eos"
                continue
            row.written.append(token)
            text = self.tokenizer.decode(row.written, skip_special_tokens=True) if self.stop else ""
            if self.stop is not None and self.stop(text):
                row.reason = "stop"
            elif len(row.written) >= self.params.max_new_tokens:
                row.reason = "length"

    def _sample(self, logits, rows: list[_Row]) -> list[int]:
        import torch

        live = [i for i, row in enumerate(rows) if row.reason is None]
        chosen = torch.full((len(rows),), self.tokenizer.pad_token_id, dtype=torch.long)
        if live:
            index = torch.tensor(live, device=logits.device)
            picked = self.sampler.pick(logits.index_select(0, index), [rows[i].stream for i in live])
            chosen[live] = picked.cpu()
        return chosen.tolist()

    def step(self) -> None:
        """Feed every row its last token and sample the next one."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        self.last_position = self.last_position + 1
        logits = self.model(
            input_ids=self.next_ids[:, None],
            attention_mask=self.mask,
            position_ids=self.last_position[:, None],
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        chosen = self._sample(logits, self.rows)
        self._accept(self.rows, chosen)
        self.next_ids = torch.tensor(chosen, device=self.mask.device)

    def drop_finished(self) -> list[_Row]:
        """Remove finished rows from the batch (one cache copy) and return them."""
        import torch

        done = [row for row in self.rows if row.reason is not None]
        if not done:
            return []
        keep = [i for i, row in enumerate(self.rows) if row.reason is None]
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache = self.mask = self.last_position = self.next_ids = None
            return done
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask.index_select(0, index)
        self.last_position = self.last_position.index_select(0, index)
        self.next_ids = self.next_ids.index_select(0, index)
        return done

    def add(self, rows: list[_Row]) -> None:
        """Prefill new rows, sample their first token and merge them into the batch."""
        import torch
        from transformers import DynamicCache

        prompts = {"input_ids": [r.prompt for r in rows]}
        padded = self.tokenizer.pad(prompts, return_tensors="pt", padding=True)
        device = self.model.device
        mask = padded["attention_mask"].to(device)
        # Left padding: positions count real tokens only, so padding never shifts RoPE.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self.model(
            input_ids=padded["input_ids"].to(device),
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        chosen = self._sample(logits, rows)
        self._accept(rows, chosen)
        next_ids = torch.tensor(chosen, device=device)
        if self.cache is None:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            self.last_position, self.next_ids = positions[:, -1].clone(), next_ids
            return
        self.cache = _merge_caches(self.cache, cache, self.model.config)
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(mask, width)], dim=0)
        self.last_position = torch.cat([self.last_position, positions[:, -1]])
        self.next_ids = torch.cat([self.next_ids, next_ids])
        self.rows += rows


def _left_pad(tensor, width: int, dim: int = 1):
    """Zero-pad ``tensor`` on the left of ``dim`` up to ``width`` (masked-out positions)."""
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _merge_caches(old, new, config):
    """Stack two KV caches along the batch, left-padding the shorter one in time."""
    import torch
    from transformers import DynamicCache

    layers = []
    for (k_old, v_old, _), (k_new, v_new, _) in zip(old, new, strict=True):
        width = max(k_old.shape[2], k_new.shape[2])
        keys = [_left_pad(k_old, width, dim=2), _left_pad(k_new, width, dim=2)]
        values = [_left_pad(v_old, width, dim=2), _left_pad(v_new, width, dim=2)]
        layers.append((torch.cat(keys, dim=0), torch.cat(values, dim=0)))
    return DynamicCache(ddp_cache_data=layers, config=config)


class HFGenerator:
    """Generate replies to chat conversations with a local or hub causal LM (optionally LoRA-adapted)."""

    def __init__(self, cfg: HFModelConfig, *, progress: bool = True) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.progress = progress
        self.device = pick_device(cfg.device)
        if cfg.quantization == "4bit" and self.device != "cuda":
            raise RuntimeError(
                "quantization: 4bit (QLoRA-style NF4 loading) needs a CUDA GPU and bitsandbytes; "
                "this machine has no GPU. Set the model's quantization to none to run on CPU."
            )
        self.dtype = pick_dtype(cfg.dtype, self.device)
        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, revision=cfg.revision)
        self.tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        load_kwargs: dict = {"revision": cfg.revision, "dtype": self.dtype}
        if cfg.quantization == "4bit":
            from harmdrift.models import nf4_quantization

            load_kwargs["quantization_config"] = nf4_quantization(self.dtype)
            load_kwargs["device_map"] = {"": 0}
        model = AutoModelForCausalLM.from_pretrained(cfg.model, **load_kwargs)
        if cfg.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, cfg.adapter)
            if cfg.quantization == "none":
                # Folding LoRA into the base weights removes the adapter's extra matmuls per step.
                model = model.merge_and_unload()
        if cfg.quantization == "none":
            model = model.to(self.device)
        self.model = model.eval()
        logger.info(
            "loaded %s%s on %s as %s in %.1fs",
            cfg.model,
            f" + adapter {cfg.adapter}" if cfg.adapter else "",
            self.device,
            str(self.dtype).replace("torch.", ""),
            time.perf_counter() - started,
        )

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

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
        on_batch: Callable[[list[int], list[Generation]], None] | None = None,
        desc: str = "generate",
    ) -> list[Generation]:
        """Answer every conversation.

        Args:
            conversations: chat messages, one list per item.
            params: decoding settings.
            keys: one stable key per item (its id): seeds that item's random stream.
            stop: called on the decoded reply after each step; True ends that row early.
            on_batch: called with (item indices, generations) after each batch, so callers
                can checkpoint partial results.
            desc: label of the progress bar.

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

        def finish(rows: list[_Row]) -> None:
            nonlocal new_tokens
            outs = [self._to_generation(row) for row in rows]
            for row, out in zip(rows, outs, strict=True):
                results[row.index] = out
                new_tokens += out.n_new_tokens
            if on_batch is not None:
                on_batch([row.index for row in rows], outs)
            bar.update(len(rows))
            bar.set_postfix(tok_s=f"{new_tokens / max(time.perf_counter() - started, 1e-9):.0f}")

        self._decode(order, encoded, keys, params, stop, finish)
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
        scores: list[float] = []
        size = batch_size or self.cfg.batch_size
        with torch.inference_mode():
            for start in range(0, len(pairs), size):
                chunk = pairs[start : start + size]
                padded = self.tokenizer.pad(
                    {"input_ids": [p + o for p, o in chunk]}, return_tensors="pt", padding=True
                )
                mask = padded["attention_mask"].to(self.model.device)
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(
                    input_ids=padded["input_ids"].to(self.model.device),
                    attention_mask=mask,
                    position_ids=positions,
                    logits_to_keep=keep,
                ).logits.float()
                logprobs = logits.log_softmax(dim=-1)
                width = logits.shape[1]
                for row, (_, option) in enumerate(chunk):
                    # Token t of the option is predicted at position t - 1.
                    first = width - len(option)
                    targets = torch.tensor(option, device=logprobs.device)
                    picked = logprobs[row, first - 1 : width - 1].gather(1, targets[:, None])
                    scores.append(float(picked.sum()))
        n = len(options)
        return [scores[i * n : (i + 1) * n] for i in range(len(conversations))]

    def _score_first_tokens(
        self, prompts: list[list[int]], option_ids: list[int], batch_size: int | None
    ) -> list[list[float]]:
        """Single-token options: one forward pass per prompt reads all options at once."""
        import torch

        scores: list[list[float]] = []
        size = batch_size or self.cfg.batch_size
        with torch.inference_mode():
            for start in range(0, len(prompts), size):
                padded = self.tokenizer.pad(
                    {"input_ids": prompts[start : start + size]}, return_tensors="pt", padding=True
                )
                mask = padded["attention_mask"].to(self.model.device)
                logits = self.model(
                    input_ids=padded["input_ids"].to(self.model.device),
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    logits_to_keep=1,
                ).logits.float()
                logprobs = logits[:, -1].log_softmax(dim=-1)[:, option_ids]
                scores += logprobs.tolist()
        return scores

    def eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        return {i for i in ids if i is not None}

    def _can_refill(self) -> bool:
        """Refilling merges caches, which is only right for plain (non-sliding) attention caches."""
        from transformers import DynamicCache

        probe = DynamicCache(config=self.model.config)
        return all(type(layer).__name__ == "DynamicLayer" for layer in probe.layers)

    def _decode(self, order, encoded, keys, params: GenParams, stop, finish) -> None:
        """Run every prompt through one live batch that is topped up as rows finish."""
        import torch

        size = self.cfg.batch_size
        refill = self._can_refill()
        sampler = TokenSampler(params)
        waiting = [_Row(i, encoded[i], sampler.stream(keys[i]), []) for i in order]
        waiting.reverse()  # pop() from the end takes them in order
        batch = _LiveBatch(self, params, stop)
        threshold = max(1, size // 4)
        with torch.inference_mode():
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

    def _to_generation(self, row: _Row) -> Generation:
        return Generation(
            text=self.tokenizer.decode(row.written, skip_special_tokens=True).strip(),
            n_new_tokens=len(row.written) + (row.reason == "eos"),
            finish_reason=row.reason or "length",
            n_prompt_tokens=len(row.prompt),
        )


def make_hf_generator(cfg: HFModelConfig, *, progress: bool = True) -> HFGenerator:
    """Factory kept for symmetry with the API back-ends added by later stages."""
    return HFGenerator(cfg, progress=progress)
