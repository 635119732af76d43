"""medrlvr's verl backend checked against verl itself, on a CPU (no GPU, no model download, no Ray cluster).

Run in the environment that has verl (``bash scripts/install.sh --dev`` makes ``.venv-verl``)::

    .venv-verl/bin/python scripts/verl_check.py      # exit 0: every check passed; else one line per failure

1. Configuration. For PPO with a critic (the med-rlvr recipe's ``rlvr`` arm), GRPO (the open-medical-r1 recipe with
   the verl alternative its comment gives) and DAPO (the med-rlvr arm as GRPO with DAPO's shared settings:
   dynamic_sampling, epsilon_high 0.28, loss_type dapo, no KL), medrlvr's overrides are composed with verl's own ``verl/trainer/config/ppo_trainer.yaml`` through hydra's compose API, as
   ``verl.trainer.main_ppo`` does: an unknown key fails there. Each value must then read back as written and with
   the type of verl's default, verl's typed config classes must take the actor, rollout, critic, algorithm and
   reward sections, and verl's ``validate_config`` (batch divisibility, micro batches) must pass.
2. Reward. ``get_custom_reward_fn`` (``verl.trainer.ppo.reward``) loads the reward the composed config names and
   scores every row of the parquet medrlvr wrote (read back with ``datasets``, as verl's RLHFDataset reads it):
   the gold letter in the answer tag scores 1.0, a hedge (two letters) 0.0.
3. Prompt. The ``chat: false`` template, as composed, renders each row exactly as ``plain_prompt`` does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the checkout's medrlvr, whether or not it is installed here
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the Hub: fail at once, do not retry

# The open-medical-r1 recipe's commented verl alternative, as overrides (keep in step with that comment).
GRPO = ["train.backend=verl", "train.rewards={accuracy: 1.0}", "train.rollout_engine=auto",
        "train.verl={algorithm: grpo, nnodes: 1, n_gpus_per_node: 1, rollout: vllm, val: medqa:dev}"]  # fmt: skip
# DAPO (arXiv 2503.14476) is GRPO with shared settings: dynamic sampling, clip-higher, the token-mean loss, no KL.
DAPO = [
    "train.policies.rlvr.method=grpo",
    "train.policies.rlvr.dynamic_sampling=true",
    "train.policies.rlvr.epsilon_high=0.28",
    "train.policies.rlvr.loss_type=dapo",
    "train.policies.rlvr.beta=0.0",
]
# The named GRPO variants verl has (medrlvr.train.grpo.VARIANTS): Dr. GRPO, GSPO (policy_loss gspo), CISPO (cispo).
VARIANT_CASES = {
    name: ("recipes/med-rlvr/study.yaml", "rlvr", ["train.policies.rlvr.method=grpo",
                                                   f"train.policies.rlvr.variant={name}"])
    for name in ("dr_grpo", "gspo", "cispo")
}  # fmt: skip
CASES = {  # name -> (recipe, policy, recipe overrides)
    "ppo": ("recipes/med-rlvr/study.yaml", "rlvr", []),
    "grpo": ("recipes/open-medical-r1/study.yaml", "random", GRPO),
    "dapo": ("recipes/med-rlvr/study.yaml", "rlvr", DAPO),
    **VARIANT_CASES,
    # truncated importance sampling of the rollouts: medrlvr's setting -> algorithm.rollout_correction (TIS)
    "rollout_is": (
        "recipes/med-rlvr/study.yaml",
        "rlvr",
        [
            "train.policies.rlvr.method=grpo",
            "train.policies.rlvr.rollout_importance_sampling=token_truncate",
            "train.policies.rlvr.rollout_importance_sampling_max=2.0",
        ],
    ),
}
# Sections verl's trainer and workers turn into its typed config classes (through their _target_); validate_config
# converts the actor and the critic itself. The model section loads the model's config and tokenizer.
SECTIONS = ("actor_rollout_ref.model", "actor_rollout_ref.rollout", "algorithm")


def tiny_model(path: Path) -> str:
    """A two-layer Llama config and a character tokenizer, saved: what verl's model config loads (no weights)."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<pad>", "<s>", "</s>", "<unk>", *sorted(set(string.printable))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }}\n{% endfor %}"
    tokenizer.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, architectures=["LlamaForCausalLM"])  # fmt: skip
    config.save_pretrained(path)
    return str(path)


def _one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def train_config(case: str, work: Path):
    from medrlvr.study.runner import load_recipe
    from medrlvr.train import TrainConfig

    recipe_path, policy, overrides = CASES[case]
    recipe = load_recipe(ROOT / recipe_path, overrides)
    config = next(p.config for p in recipe.policies if p.name == policy)
    # Validation questions from the training file: the recipes' MedQA dev split is not on a CI machine.
    return TrainConfig(
        **{
            **asdict(config),
            "train_file": str(work / "train.jsonl"),
            "output_dir": str(work / case),
            "verl": {**config.verl, "val": None},
        }
    )


def compose(overrides: list[str]):
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


def check_config(case: str, config, model_path: str) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    from medrlvr.train.verl import launch as verl_backend

    failures = []
    overrides = verl_backend.overrides(config, model_path)
    try:
        cfg = compose(overrides)
    except Exception as e:  # hydra's message names the key
        return [f"{case}: verl's config does not take the overrides: {_one_line(e)}"]
    defaults = compose([])
    written = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(overrides)}  # last wins
    for key, wanted in written.items():
        got = OmegaConf.select(cfg, key)
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        if got != wanted:
            failures.append(f"{case}: {key} composed as {got!r}, medrlvr wrote {wanted!r}")
        default = OmegaConf.select(defaults, key)
        numbers = (int, float)
        same = (
            default is None
            or wanted is None
            or isinstance(default, type(wanted))
            or (isinstance(wanted, numbers) and isinstance(default, numbers) and not isinstance(wanted, bool))
            or (OmegaConf.is_list(default) and isinstance(wanted, list))
        )
        if not same and not (isinstance(default, str) and default.startswith("${")):
            failures.append(f"{case}: {key}={wanted!r} is {type(wanted).__name__}; verl's default {default!r} is not")
    OmegaConf.resolve(cfg)
    for section in SECTIONS:
        try:
            omega_conf_to_dataclass(OmegaConf.select(cfg, section))
        except Exception as e:
            failures.append(f"{case}: verl's config class rejects {section}: {_one_line(e)}")
    checked = cfg.copy()
    if checked.actor_rollout_ref.rollout.name == "vllm" and importlib.util.find_spec("vllm") is None:
        # validate_config asks vLLM itself for its LoRA rank limit; without vLLM (a CPU) that one check is skipped
        checked.actor_rollout_ref.rollout.name = "sglang"
    try:
        validate_config(checked, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except Exception as e:
        failures.append(f"{case}: verl's validate_config: {_one_line(e)}")
    expected = {"ppo": ("gae", True), "grpo": ("grpo", False), "dapo": ("grpo", False)}.get(case)
    if expected and (cfg.algorithm.adv_estimator, need_critic(cfg)) != expected:
        failures.append(f"{case}: adv_estimator {cfg.algorithm.adv_estimator}, critic {need_critic(cfg)}")
    actor = cfg.actor_rollout_ref.actor
    if case == "dapo" and not (
        cfg.algorithm.filter_groups.enable
        and actor.clip_ratio_high > actor.clip_ratio_low
        and actor.loss_agg_mode == "token-mean"
        and not actor.use_kl_loss
    ):
        failures.append("dapo: filter_groups, clip-higher, the token-mean loss or KL-free loss missing")
    return failures


def check_the_check(config, model_path: str) -> list[str]:
    """The configuration check must be able to fail: a misspelt key and a mistyped value, added through
    ``verl.overrides``, are both caught."""
    from medrlvr.train import TrainConfig

    failures = []
    for what, bad in (("a misspelt key", "actor_rollout_ref.actor.clip_ratio_hgh=0.3"),
                      ("a mistyped value", "actor_rollout_ref.actor.ppo_epochs=one")):  # fmt: skip
        spoilt = TrainConfig(**{**asdict(config), "verl": {**config.verl, "overrides": [bad]}})
        if not check_config("self-test", spoilt, model_path):
            failures.append(f"self-test: {what} ({bad}) passed the configuration check")
    return failures


def check_prompt(case: str, config, model_path: str, rows) -> list[str]:
    from jinja2 import Environment

    from medrlvr.prompts import plain_prompt
    from medrlvr.records import Record
    from medrlvr.train.verl import launch as verl_backend

    if config.chat is not False:
        return []
    cfg = compose(verl_backend.overrides(config, model_path))
    template = Environment().from_string(cfg.actor_rollout_ref.model.custom_chat_template)
    failures = []
    for row, record in rows:
        text = template.render(messages=row["prompt"], add_generation_prompt=True)
        if text != plain_prompt(Record.from_dict(record), "r1_zero"):
            failures.append(f"{case}: the plain template renders {row['extra_info']['id']} unlike plain_prompt")
    return failures


def check_reward(case: str, config, model_path: str) -> tuple[list[str], int]:
    import datasets
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from medrlvr.train.verl import launch as verl_backend

    fn = get_custom_reward_fn(compose(verl_backend.overrides(config, model_path)))
    if fn is None:
        return [f"{case}: verl's config names no custom reward"], 0
    failures, scored = [], 0
    paths = verl_backend.paths(config)
    for split in ("train", "val"):
        for row in datasets.load_dataset("parquet", data_files=str(paths[split]), split="train"):
            gold = row["reward_model"]["ground_truth"]
            letters = sorted(json.loads(row["extra_info"]["options"]))
            other = next(x for x in letters if x != gold)
            # verl's reward manager adds these to extra_info before it calls the reward
            extra = {**row["extra_info"], "num_turns": None, "rollout_reward_scores": {}}
            cases = {
                f"<think>The findings fit.</think><answer>{gold}</answer>": 1.0,
                f"<think>Either.</think><answer>{gold} or {other}</answer>": 0.0,
                f"<think>Both.</think><answer>{gold}, {other}</answer>": 0.0,
                f"<think>Both.</think><answer>{other}{gold}</answer>": 0.0,
            }
            for text, want in cases.items():
                score = fn(data_source=row["data_source"], solution_str=text, ground_truth=gold, extra_info=extra)
                scored += 1
                if score != want:
                    failures.append(
                        f"{case}: {split} row {row['extra_info']['id']}: {text!r} scored {score}, not {want}"
                    )
    return failures, scored


def main() -> int:
    started = time.perf_counter()
    import datasets
    import verl

    from medrlvr.data import load_benchmark
    from medrlvr.store import write_jsonl
    from medrlvr.train.verl import launch as verl_backend

    records = load_benchmark("demo", "train")  # medrlvr's bundled questions: no data directory needed
    failures, lines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_jsonl(work / "train.jsonl", [r.to_dict() for r in records])
        model_path = tiny_model(work / "tiny-model")  # stands in for the recipes' hub models: nothing is downloaded
        for case in CASES:
            try:
                config = train_config(case, work)
                verl_backend.prepare(config, model_path=model_path)
            except Exception as e:  # a recipe or setting medrlvr itself rejects
                failures.append(f"{case}: {_one_line(e)}")
                continue
            rows = list(datasets.load_dataset("parquet", data_files=str(verl_backend.paths(config)["train"]))["train"])
            found = check_config(case, config, model_path)
            if case == "ppo":
                found += check_the_check(config, model_path)
            found += check_prompt(case, config, model_path, zip(rows, (r.to_dict() for r in records)))
            reward_failures, scored = check_reward(case, config, model_path)
            found += reward_failures
            failures += found
            n = len(verl_backend.overrides(config, model_path))
            lines.append(f"{case}: {n} overrides composed and validated, {scored} reward calls, {len(found)} failures")
    for line in lines + failures:
        print(line)
    seconds = time.perf_counter() - started
    print(f"verl {verl.__version__}: {'FAILED' if failures else 'all checks passed'} in {seconds:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
