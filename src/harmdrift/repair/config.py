"""Stage III settings and severity weights."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from harmdrift.core.vocab import SEVERITIES


def _default_weights() -> dict[str, float]:
    # DART's code: minor 1, moderate 2, severe 3, extreme 4 copies.
    return {"minor": 1.0, "moderate": 2.0, "severe": 3.0, "extreme": 4.0}


@dataclass(frozen=True)
class RepairConfig:
    """Stage III settings (the ``repair`` config section, whose keys config/schema.yaml checks).

    Attributes:
        severity_weights: weight of a repaired case per judge severity; all four levels, each > 0.
        mode: "weight" (one row per case, the weight scales its loss) or "oversample" (DART's
            code: round(weight) copies of the row, each with weight 1).
        replay_share: share of the final training set drawn from Stage I rationales, in [0, 1).
        seed: seed of the replay sample.
        max_rescore_rounds: re-asks of the teacher when a repair scores higher than M0's explanation.
        max_fix_rounds: format-fix rounds of a repair rationale (Stage I's checks), apart from
            ``distill.max_fix_rounds`` since the two teachers' tasks fail them differently.
        rounds: audit-and-repair rounds (1 = DART; more give m_dart_r2, m_dart_r3, ...).
    """

    severity_weights: dict[str, float] = field(default_factory=_default_weights)
    mode: str = "weight"
    replay_share: float = 0.5
    seed: int = 0
    max_rescore_rounds: int = 1
    max_fix_rounds: int = 2
    rounds: int = 1

    @classmethod
    def from_dict(cls, section: dict) -> RepairConfig:
        """Build from the ``repair`` config section.

        Keys this class does not know are left to the stages that use them (training settings
        of the repair run, say); the config schema is what rejects misspelt ones.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in section.items() if k in known}
        if "severity_weights" in values and isinstance(values["severity_weights"], dict):
            values["severity_weights"] = dict(values["severity_weights"])
        return cls(**values)


def severity_weight(severity: str, cfg: RepairConfig) -> float:
    """The training weight of a drift case of this severity.

    Raises:
        ValueError: naming the severity when it is not one of minor/moderate/severe/extreme.
    """
    if severity not in cfg.severity_weights:
        raise ValueError(f"unknown drift severity {severity!r}; known: {list(SEVERITIES)}")
    return float(cfg.severity_weights[severity])
