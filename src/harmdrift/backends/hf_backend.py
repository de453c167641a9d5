"""Chat completions from a local Hugging Face model, through the pipeline's own generation engine."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from harmdrift.backends.base import BackendConfig, Completion, StopCheck, UsageTotals, check_keys
from harmdrift.core.decoding import GenParams
from harmdrift.lm.engine import HFGenerator, HFModelConfig
from harmdrift.lm.refs import model_provenance, parse_model_spec, resolve_load_path

logger = logging.getLogger(__name__)


class HFChatBackend:
    """A local (or hub) causal LM as a chat back-end, e.g. a teacher or judge run on the same GPU.

    The model is loaded on the first request that misses the cache, not at construction:
    a re-run answered entirely from the cache never loads it. Sampling is seeded per
    request by (``params.seed``, key), so a reply does not depend on its batch mates.
    """

    def __init__(self, cfg: BackendConfig, *, models_root: str | None = None, progress: bool = True):
        """Resolve the model reference (no loading yet).

        Args:
            cfg: a config with backend ``hf``; ``model`` is a folder, a hub id or
                ``embedded:<name>``.
            models_root: where the run's converted embedded models live (needed for an
                ``embedded:`` model only).
            progress: show a progress bar on stderr while generating.

        Raises:
            ValueError: when ``cfg.model`` is neither a folder, a hub id nor a known embedded model.
        """
        self.cfg = cfg
        self.spec = parse_model_spec(cfg.model, key="model")
        if self.spec.kind == "embedded" and models_root is None:
            raise ValueError(f"{cfg.model}: an embedded model needs models_root (the run's converted models)")
        self.load_path = resolve_load_path(self.spec, models_root or "")
        self.progress = progress
        self._generator = None
        self._description: dict | None = None
        self._warned_format = False
        self._totals = UsageTotals()

    def describe(self) -> dict:
        """Backend, model and its weights' provenance (hash or hub revision), dtype and quantisation.

        Raises:
            FileNotFoundError: when an embedded model has not been converted yet.
        """
        if self._description is None:
            if self.spec.kind == "embedded" and not Path(self.load_path).is_dir():
                raise FileNotFoundError(
                    f"{self.cfg.model} is not converted yet: expected the folder {self.load_path}"
                )
            self._description = {
                "backend": "hf",
                "model": self.cfg.model,
                "weights": model_provenance(self.spec, self.load_path, self.cfg.revision),
                "dtype": self.cfg.dtype,
                "quantization": self.cfg.quantization,
                # Tells the cache that, when sampling, each request's key changes its reply.
                "keyed_sampling": True,
            }
        return self._description

    def usage(self) -> dict:
        """Requests, tokens and errors so far; cost_usd is None unless prices are configured."""
        return self._totals.as_dict(self.cfg.price_prompt_per_mtok, self.cfg.price_completion_per_mtok)

    def _load(self):
        if self._generator is None:
            model_cfg = HFModelConfig(
                model=self.load_path,
                revision=self.cfg.revision,
                dtype=self.cfg.dtype,
                quantization=self.cfg.quantization,
                device=self.cfg.device,
                batch_size=self.cfg.batch_size,
            )
            self._generator = HFGenerator(model_cfg, progress=self.progress)
        return self._generator

    def complete(
        self,
        conversations: Sequence[list[dict]],
        params: GenParams,
        *,
        keys: Sequence[str],
        stop: StopCheck | None = None,
        response_format: dict | None = None,
    ) -> list[Completion]:
        """Answer every conversation (see :class:`~harmdrift.backends.base.ChatBackend`).

        ``response_format`` cannot be enforced on a local model and is ignored; the prompt
        itself must ask for the format.
        """
        check_keys(conversations, keys)
        if response_format is not None and not self._warned_format:
            logger.warning("hf backend: response_format is not enforced locally; relying on the prompt")
            self._warned_format = True
        if not conversations:
            return []
        generator = self._load()
        generations = generator.generate(
            conversations, params, keys=keys, stop=stop, desc=f"hf {self.cfg.model}"
        )
        completions = []
        for gen in generations:
            completion = Completion(
                text=gen.text,
                prompt_tokens=gen.n_prompt_tokens,
                completion_tokens=gen.n_new_tokens,
                finish_reason=gen.finish_reason,
            )
            self._totals.add(completion)
            completions.append(completion)
        return completions

    def option_scores(self, conversations: Sequence[list[dict]], options: Sequence[str]) -> list[list[float]]:
        """Log-likelihood of each option as each reply's opening (one row per conversation)."""
        if not conversations:
            return []
        return self._load().score_options(conversations, options)

    def choose(self, conversations: Sequence[list[dict]], options: Sequence[str]) -> list[str]:
        """The most likely of ``options`` as each reply's opening, by log-likelihood (never free text)."""
        scores = self.option_scores(conversations, options)
        return [options[max(range(len(options)), key=row.__getitem__)] for row in scores]


def make_hf_backend(cfg: BackendConfig, *, models_root: str | None = None) -> HFChatBackend:
    """Factory for the ``hf`` entry of the back-end registry (torch is imported on first use)."""
    return HFChatBackend(cfg, models_root=models_root)
