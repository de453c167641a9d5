"""Stage III settings and severity weights."""

from __future__ import annotations

from dataclasses import dataclass, fields

from harmdrift.core.vocab import SEVERITIES


@dataclass(frozen=True)
class RepairConfig:
    """Stage III settings (the ``repair`` config section). Every key's type, range and default is
    config/schema.yaml's; build it from a schema-filled section with :meth:`from_dict`.

    Attributes:
        severity_weights: weight of a repaired case per judge severity (vocab.SEVERITIES), each > 0.
        mode: "weight" (one row per case, the weight scales its loss) or "oversample" (DART's
            code: round(weight) copies of the row, each with weight 1).
        replay_share: share of the final training set drawn from Stage I rationales, in [0, 1).
        seed: seed of the replay sample.
        max_rescore_rounds: re-asks of the teacher when a repair scores higher than M0's explanation.
        max_fix_rounds: format-fix rounds of a repair rationale (Stage I's checks), apart from
            ``distill.max_fix_rounds`` since the two teachers' tasks fail them differently.

    ``repair.rounds`` is not a field: it decides how many repair models the workflow builds
    (rules/common.smk), and rules/repair.smk leaves it out of the section it hands the repair
    jobs, so changing it re-runs none of them.
    """

    severity_weights: dict[str, float]
    mode: str
    replay_share: float
    seed: int
    max_rescore_rounds: int
    max_fix_rounds: int

    @classmethod
    def from_dict(cls, section: dict) -> RepairConfig:
        """Build from the schema-filled ``repair`` config section.

        Every field is read from the section, so a key the schema does not fill fails loudly
        (KeyError) instead of taking a default; keys that are not fields (``rounds``) are
        ignored, and the config schema is what rejects misspelt keys.
        """
        values = {f.name: section[f.name] for f in fields(cls)}
        values["severity_weights"] = dict(values["severity_weights"])
        return cls(**values)


def severity_weight(severity: str, cfg: RepairConfig) -> float:
    """The training weight of a drift case of this severity.

    Raises:
        ValueError: naming the severity when it is not one of vocab.SEVERITIES.
    """
    if severity not in cfg.severity_weights:
        raise ValueError(f"unknown drift severity {severity!r}; known: {list(SEVERITIES)}")
    return float(cfg.severity_weights[severity])
