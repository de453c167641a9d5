"""Top-p / temperature sampling with one uniform draw per row from its item's own stream."""

from __future__ import annotations

from collections.abc import Sequence

from harmdrift.core.decoding import GenParams, item_seed


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
