"""A whole study from one recipe (``medrlvr run RECIPE.yaml``): the recipe (:mod:`.recipe`), its arms (seeds,
controls, sweeps: :mod:`.arms`), the commands it may run (:mod:`.commands`), the runner that drives the stages in
order with caching (:mod:`.runner`), stage folders (:mod:`.stagedirs`), provenance and the time estimate."""

from .recipe import load_recipe
from .runner import run_study

__all__ = ["load_recipe", "run_study"]
