"""Throughput and agreement benchmarks (``medrlvr bench ...``), one module each. Speed goals are checked here,
never by timed unit tests.

- :mod:`.rewards`  -- ms per reward call on adversarial 100 KB completions (``medrlvr bench rewards``)
- :mod:`.generate` -- engines' tokens/s against transformers' generate (``medrlvr bench generate``)
- :mod:`.filter`   -- the filter's seconds at k samples per question against k = 1, same pool (``medrlvr bench filter``)
- :mod:`.train`    -- seconds per GRPO step, medrlvr's rollouts against TRL's (``medrlvr bench train``)
- :mod:`.lmeval`   -- speed and agreement against lm-evaluation-harness on MMLU (``medrlvr bench lmeval``)
- :mod:`.circular` -- log-likelihood circular evaluation's seconds against one plain pass (``medrlvr bench circular``)
- :mod:`.study`    -- each stage's seconds and peak memory in finished studies, side by side (``medrlvr bench study``)
"""

from .circular import bench_circular, print_circular
from .filter import bench_filter, print_filter
from .generate import bench_generate, print_generate
from .lmeval import bench_lmeval, print_lmeval
from .rewards import ADVERSARIAL_UNITS, bench_rewards, print_rewards
from .study import print_stage_table, stage_table
from .train import bench_train, print_train

__all__ = [
    "ADVERSARIAL_UNITS", "bench_circular", "bench_filter", "bench_generate", "bench_lmeval", "bench_rewards",
    "bench_train", "print_circular", "print_filter", "print_generate", "print_lmeval", "print_rewards",
    "print_stage_table", "print_train", "stage_table",
]  # fmt: skip
