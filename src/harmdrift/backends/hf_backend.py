"""The one local back-end: a Hugging Face causal LM run by the pipeline's own generation engine.

The student's answers (Stage II and the evaluation), a local teacher (Stages I and III) and a
local judge (Stage II) all go through :class:`HFChatBackend`: the same loading, chat
template, per-item seeded decoding and option scoring. Teacher and judge build it from
their config section (:func:`make_hf_backend`); the student's generation rule builds it
from the student section, with its LoRA adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from harmdrift.backends.base import BackendConfig, Completion, StopCheck, UsageTotals, check_keys
from harmdrift.core.decoding import GenParams
from harmdrift.lm.engine import HFGenerator, HFModelConfig
from harmdrift.lm.forced import ForcedChoice
from harmdrift.lm.refs import model_provenance, parse_model_spec, resolve_load_path

logger = logging.getLogger(__name__)


class HFChatBackend:
    """A local (or hub) causal LM as a chat back-end.

    The engine, and with it the tokenizer, is built on the first request (or prompt
    rendering), and the weights on the first request that needs them: a re-run answered
    entirely from a cache never loads them. Sampling is seeded per request by
    (``params.seed``, key), so a reply does not depend on its batch mates.
    """

    def __init__(
        self,
        model: HFModelConfig,
        *,
        name: str,
        weights: Callable[[], dict],
        prices: tuple[float | None, float | None] = (None, None),
        progress: bool = True,
    ):
        """Hold the model's settings (nothing is loaded yet).

        Args:
            model: what to load and how to batch it.
            name: the model as configured (``embedded:<name>``, a folder or a hub id), for
                descriptions and progress bars.
            weights: returns the weights' provenance (hash or hub revision); called once, by
                :meth:`describe`.
            prices: USD per million prompt and completion tokens, for usage totals.
            progress: show a progress bar on stderr while generating.
        """
        self.model = model
        self.name = name
        self._weights = weights
        self._prices = prices
        self.progress = progress
        self._engine: HFGenerator | None = None
        self._description: dict | None = None
        self._warned_format = False
        self._totals = UsageTotals()

    def describe(self) -> dict:
        """Backend, model and its weights' provenance, dtype and quantisation (cache keys use it)."""
        if self._description is None:
            self._description = {
                "backend": "hf",
                "model": self.name,
                "weights": self._weights(),
                "dtype": self.model.dtype,
                "quantization": self.model.quantization,
                # Tells the cache that, when sampling, each request's key changes its reply.
                "keyed_sampling": True,
            }
        return self._description

    def usage(self) -> dict:
        """Requests, tokens and errors so far; cost_usd is None unless prices are configured."""
        return self._totals.as_dict(*self._prices)

    @property
    def engine(self) -> HFGenerator:
        """The generation engine (tokenizer loaded; weights on first use)."""
        if self._engine is None:
            self._engine = HFGenerator(self.model, progress=self.progress)
        return self._engine

    def render(self, conversation: list[dict]) -> str:
        """The exact prompt text the model sees (chat template applied); loads no weights."""
        return self.engine.render(conversation)

    def decoding_settings(self) -> dict:
        """What besides the decoding parameters can change a reply: dtype, quantisation, device
        and batching (batch composition changes padding, which nudges low-precision logits)."""
        return {
            "dtype": self.engine.dtype_name,
            "quantization": self.engine.quantization,
            "device": self.engine.device,
            "batch_size": self.model.batch_size,
            "sort_by_length": self.model.sort_by_length,
        }

    def complete(
        self,
        conversations: Sequence[list[dict]],
        params: GenParams,
        *,
        keys: Sequence[str],
        stop: StopCheck | None = None,
        response_format: dict | None = None,
        forced: ForcedChoice | None = None,
        desc: str | None = None,
    ) -> list[Completion]:
        """Answer every conversation (see :class:`~harmdrift.backends.base.ChatBackend`).

        ``response_format`` cannot be enforced on a local model and is ignored; the prompt
        itself must ask for the format. Local only: ``forced`` adds each reply's forced-choice
        scores (``Completion.forced_scores``, read from the reply's KV cache), and ``desc``
        labels the progress bar.
        """
        check_keys(conversations, keys)
        if response_format is not None and not self._warned_format:
            logger.warning("hf backend: response_format is not enforced locally; relying on the prompt")
            self._warned_format = True
        if not conversations:
            return []
        generations = self.engine.generate(
            conversations, params, keys=keys, stop=stop, desc=desc or f"hf {self.name}", forced=forced
        )
        completions = []
        for gen in generations:
            completion = Completion(
                text=gen.text,
                prompt_tokens=gen.n_prompt_tokens,
                completion_tokens=gen.n_new_tokens,
                finish_reason=gen.finish_reason,
                forced_scores=gen.forced_scores,
            )
            self._totals.add(completion)
            completions.append(completion)
        return completions

    def option_scores(self, conversations: Sequence[list[dict]], options: Sequence[str]) -> list[list[float]]:
        """Log-likelihood of each option as each reply's opening (one row per conversation)."""
        if not conversations:
            return []
        return self.engine.score_options(conversations, options)

    def choose(self, conversations: Sequence[list[dict]], options: Sequence[str]) -> list[str]:
        """The most likely of ``options`` as each reply's opening, by log-likelihood (never free text)."""
        scores = self.option_scores(conversations, options)
        return [options[max(range(len(options)), key=row.__getitem__)] for row in scores]


def make_hf_backend(
    cfg: BackendConfig, *, models_root: str | None = None, progress: bool = True
) -> HFChatBackend:
    """The local back-end of a teacher or judge section (the ``hf`` entry of the registry).

    Args:
        cfg: a config with backend ``hf``; ``model`` is a folder, a hub id or
            ``embedded:<name>``.
        models_root: where the run's converted embedded models live (needed for an
            ``embedded:`` model only).
        progress: show a progress bar on stderr while generating.

    Raises:
        ValueError: when ``cfg.model`` is neither a folder, a hub id nor a known embedded
            model, or is embedded and ``models_root`` is missing.
    """
    spec = parse_model_spec(cfg.model, key="model")
    if spec.kind == "embedded" and models_root is None:
        raise ValueError(f"{cfg.model}: an embedded model needs models_root (the run's converted models)")
    load_path = resolve_load_path(spec, models_root or "")

    def weights() -> dict:
        if spec.kind == "embedded" and not Path(load_path).is_dir():
            raise FileNotFoundError(f"{cfg.model} is not converted yet: expected the folder {load_path}")
        return model_provenance(spec, load_path, cfg.revision)

    model = HFModelConfig(
        model=load_path,
        revision=cfg.revision,
        dtype=cfg.dtype,
        quantization=cfg.quantization,
        device=cfg.device,
        batch_size=cfg.batch_size,
    )
    prices = (cfg.price_prompt_per_mtok, cfg.price_completion_per_mtok)
    return HFChatBackend(model, name=cfg.model, weights=weights, prices=prices, progress=progress)
