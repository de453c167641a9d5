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


def item_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one item's random stream, stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()
    return int(digest[:15], 16)


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


def pick_dtype(dtype: str, device: str):
    """Resolve ``dtype: auto``: bf16 on GPUs that have it, and on CPUs where it measures faster."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    ratio = cpu_bf16_speedup()
    chosen = torch.bfloat16 if ratio > 1.2 else torch.float32
    logger.info("dtype auto: bf16 matmul runs %.2fx fp32 speed on this CPU -> %s", ratio, chosen)
    return chosen


class TokenSampler:
    """Choose each active row's next token: greedy, or a draw from that item's own random stream.

    Sampling adds Gumbel noise to the tempered, nucleus-filtered log-probabilities and takes
    the argmax, which draws an exact sample from that distribution. Each item has its own
    torch Generator, seeded by (seed, item key) and advanced exactly once per step while the
    item is active, so an item's draws do not depend on its batch mates, on the batch size,
    or on the model: the paired audit gives M0 and M_int the same random numbers.
    transformers' built-in sampler shares one stream across the batch, hence this class.
    """

    def __init__(self, keys: Sequence[str], params: GenParams) -> None:
        import torch
        from transformers.generation import TopPLogitsWarper

        self.params = params
        sampling = params.temperature > 0
        self.generators = (
            [torch.Generator().manual_seed(item_seed(params.seed, k)) for k in keys] if sampling else []
        )
        self.top_p = TopPLogitsWarper(params.top_p) if sampling and params.top_p < 1.0 else None

    def __call__(self, logits):
        """Next token ids, one per row of ``logits`` (shape: rows x vocabulary)."""
        import torch

        scores = logits.float()
        if self.params.temperature == 0:
            return scores.argmax(dim=-1)
        scores = scores / self.params.temperature
        if self.top_p is not None:
            scores = self.top_p(None, scores)
        vocab = scores.shape[-1]
        uniform = torch.stack([torch.rand(vocab, generator=g) for g in self.generators])
        uniform = uniform.clamp_(1e-20, 1.0 - 1e-7).to(scores.device)
        return (scores - torch.log(-torch.log(uniform))).argmax(dim=-1)

    def keep(self, rows: Sequence[int]) -> None:
        """Forget the streams of rows that finished (their items are done)."""
        if self.generators:
            self.generators = [self.generators[r] for r in rows]


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
            from transformers import BitsAndBytesConfig

            load_kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=self.dtype,
            )
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
            # Longest first: the biggest batch (memory peak) is met at once, not after an hour.
            order.sort(key=lambda i: len(encoded[i]), reverse=True)
        results: list[Generation | None] = [None] * len(texts)
        bar = tqdm(total=len(texts), desc=desc, unit="item", disable=not self.progress, dynamic_ncols=True)
        new_tokens = 0
        started = time.perf_counter()
        for offset in range(0, len(order), self.cfg.batch_size):
            batch = order[offset : offset + self.cfg.batch_size]
            outs = self._generate_batch([encoded[i] for i in batch], [keys[i] for i in batch], params, stop)
            for i, out in zip(batch, outs, strict=True):
                results[i] = out
                new_tokens += out.n_new_tokens
            if on_batch is not None:
                on_batch(batch, outs)
            bar.update(len(batch))
            bar.set_postfix(tok_s=f"{new_tokens / max(time.perf_counter() - started, 1e-9):.0f}")
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

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        return {i for i in ids if i is not None}

    def _generate_batch(self, token_ids, keys, params: GenParams, stop) -> list[Generation]:
        """Decode one batch, dropping each row from the computation as soon as it finishes.

        transformers' generate() keeps finished rows in the batch (padding them) until the
        longest reply ends; with replies of very different lengths most of that work is
        wasted. Here a finished row leaves the KV cache at once, so a batch costs what its
        live rows cost.
        """
        import torch
        from transformers import DynamicCache

        padded = self.tokenizer.pad({"input_ids": token_ids}, return_tensors="pt", padding=True)
        device = self.model.device
        step_ids = padded["input_ids"].to(device)
        mask = padded["attention_mask"].to(device)
        # Left padding: positions count real tokens only, so padding never shifts RoPE.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        last_position = positions[:, -1].clone()
        cache = DynamicCache(config=self.model.config)
        sampler = TokenSampler(keys, params)
        eos_ids = self._eos_ids()
        active = list(range(len(token_ids)))
        written: list[list[int]] = [[] for _ in token_ids]
        reasons = ["length"] * len(token_ids)
        with torch.inference_mode():
            for _ in range(params.max_new_tokens):
                logits = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits[:, -1, :]
                chosen = sampler(logits).tolist()
                keep = []
                for slot, row in enumerate(active):
                    token = chosen[slot]
                    if token in eos_ids:
                        reasons[row] = "eos"
                        continue
                    written[row].append(token)
                    if stop is not None and stop(
                        self.tokenizer.decode(written[row], skip_special_tokens=True)
                    ):
                        reasons[row] = "stop"
                        continue
                    keep.append(slot)
                if not keep:
                    break
                next_ids = torch.tensor([chosen[k] for k in keep], device=device)[:, None]
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    mask, last_position = mask[index], last_position[index]
                    sampler.keep(keep)
                    active = [active[k] for k in keep]
                step_ids = next_ids
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                last_position = last_position + 1
                positions = last_position[:, None]
        return [
            Generation(
                text=self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                n_new_tokens=len(ids) + (reason == "eos"),
                finish_reason=reason,
            )
            for ids, reason in zip(written, reasons, strict=True)
        ]


def make_hf_generator(cfg: HFModelConfig, *, progress: bool = True) -> HFGenerator:
    """Factory kept for symmetry with the API back-ends added by later stages."""
    return HFGenerator(cfg, progress=progress)
