"""GRPO variants by name: each paper's settings, applied where a recipe leaves medrlvr's default (``variant:``).
Data only, so that the settings (:mod:`medrlvr.train.config`) can resolve a variant without importing a backend."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

# GRPO variants: name -> (paper, the settings it sets). ``variant: NAME`` applies them to every setting the recipe
# leaves at medrlvr's default (a setting given any other value wins; one given medrlvr's default value explicitly
# cannot be told apart from an unset one, so it takes the variant's). The resolved values are what
# train_config.json records. The same settings without ``variant`` make the same training.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "grpo": ("DeepSeekMath, arXiv 2402.03300 (medrlvr's pinned defaults)", {}),
    "dr_grpo": (
        "Dr. GRPO, Liu et al., arXiv 2503.20783: no length or std normalisation, no KL",
        {"loss_type": "dr_grpo", "scale_rewards": "none", "beta": 0.0},
    ),
    "dapo": (
        "DAPO, Yu et al., arXiv 2503.14476: clip-higher, token-mean loss, dynamic sampling, overlong shaping, no KL",
        {
            "loss_type": "dapo",
            "epsilon_high": 0.28,
            "dynamic_sampling": True,
            "beta": 0.0,
            "overlong_buffer": lambda config: max(1, config.max_completion_length // 5),  # 4096 of 20480 in DAPO
        },
    ),
    "gspo": (
        "GSPO, Zheng et al., arXiv 2507.18071: the sequence's length-normalised ratio, clipped at 3e-4/4e-4, no KL",
        {"importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4, "beta": 0.0},
    ),
    "cispo": (
        "CISPO, MiniMax-M1, arXiv 2506.13585: the clipped ratio as a stopped weight on log-probs (max 5, ScaleRL)",
        {"loss_type": "cispo", "epsilon_high": 5.0, "beta": 0.0},
    ),
}


def apply_variant(config: Any) -> None:
    """Set ``config.variant``'s settings (:data:`VARIANTS`) where ``config`` holds medrlvr's default."""
    if config.variant is None:
        return
    if config.variant not in VARIANTS:  # the field's choices say so too, with the setting's name
        return
    defaults = {f.name: f.default for f in fields(config) if f.default is not MISSING}
    for name, value in VARIANTS[config.variant][1].items():
        if name in defaults and getattr(config, name) == defaults[name]:
            setattr(config, name, value(config) if callable(value) else value)
