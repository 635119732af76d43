"""The verl backend without verl: the parquet it writes, the override list per algorithm, the launch script, the
one-line stop when verl is missing, and a study whose policy is trained by a fake verl (a tiny random checkpoint as
its Hugging Face export) and then evaluated like any other. Against verl itself: scripts/verl_check.py in
.venv-verl (the last test)."""

import json
import subprocess
from pathlib import Path

import pytest

from medrlvr.cli import main
from medrlvr.data import load_benchmark
from medrlvr.store import write_jsonl
from medrlvr.study.runner import load_recipe, run_study
from medrlvr.train import TrainConfig, check
from medrlvr.train.verl import launch as verl_backend

ROOT = Path(__file__).resolve().parents[1]
VERL_PYTHON = ROOT / ".venv-verl" / "bin" / "python"


@pytest.fixture
def train_file(tmp_path):
    path = tmp_path / "select" / "train.jsonl"
    write_jsonl(path, [r.to_dict() for r in load_benchmark("demo", "train")[:10]])
    return path


def _config(train_file, out, **kw):
    verl = kw.pop("verl", {})
    values = {"model": "Qwen/Qwen2.5-3B", "train_file": str(train_file), "output_dir": str(out), "backend": "verl",
              "rewards": {"accuracy": 1.0}, "batch_size": 4, "gradient_accumulation_steps": 2, "num_generations": 4,
              "verl": {"n_gpus_per_node": 8, **verl}}  # fmt: skip
    return check(TrainConfig(**{**values, **kw}))  # as a recipe's policy is checked when it is read


def _overrides(config) -> dict[str, str]:
    return dict(item.split("=", 1) for item in verl_backend.overrides(config))


def test_parquet_has_verls_schema(train_file, tmp_path):
    import pyarrow.parquet as pq

    config = _config(train_file, tmp_path / "out", verl={"val_size": 3})
    verl_backend.prepare(config, model_path=config.model)
    paths = verl_backend.paths(config)
    train, val = (pq.read_table(paths[s]).to_pylist() for s in ("train", "val"))
    assert len(train) == 10 and len(val) == 3
    row = train[0]
    assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert [m["role"] for m in row["prompt"]] == ["system", "user"] and "<answer>" in row["prompt"][0]["content"]
    assert row["reward_model"]["style"] == "rule" and row["reward_model"]["ground_truth"] in "ABCD"
    assert set(json.loads(row["extra_info"]["options"])) == {"A", "B", "C", "D"}
    assert {r["extra_info"]["split"] for r in val} == {"validation"}
    assert json.loads((paths["out"] / "train_config.json").read_text())["backend"] == "verl"


# DAPO is GRPO with shared settings (dynamic sampling, clip-higher, the token-mean loss), not a verl algorithm
DAPO = {"dynamic_sampling": True, "epsilon_high": 0.28, "loss_type": "dapo"}


@pytest.mark.parametrize("algorithm", ["ppo", "grpo", "dapo"])
def test_overrides_pin_each_algorithms_settings(train_file, tmp_path, algorithm):
    shared = {"beta": 0.001, **(DAPO if algorithm == "dapo" else {})}
    verl = {"algorithm": "grpo" if algorithm == "dapo" else algorithm, "nnodes": 2}
    config = _config(train_file, tmp_path / "out", **shared, verl=verl)
    o = _overrides(config)
    common = {
        "actor_rollout_ref.model.path": "Qwen/Qwen2.5-3B",
        "data.train_batch_size": "8",  # batch_size x gradient_accumulation_steps questions per update ...
        "actor_rollout_ref.actor.ppo_mini_batch_size": "8",  # ... in one update: on-policy
        "actor_rollout_ref.rollout.n": "4",
        "actor_rollout_ref.rollout.name": "vllm",
        "trainer.nnodes": "2",
        "trainer.n_gpus_per_node": "8",
        "reward.custom_reward_function.path": '"pkg://medrlvr.rewards"',
        "reward.custom_reward_function.name": "compute_score",
        "trainer.default_local_dir": str((tmp_path / "out" / "checkpoints").resolve()),
    }
    assert {k: o.get(k) for k in common} == common
    expected = {
        "ppo": {"algorithm.adv_estimator": "gae", "critic.enable": "true", "critic.model.path": "Qwen/Qwen2.5-3B",
                "algorithm.use_kl_in_reward": "true", "algorithm.kl_ctrl.kl_coef": "0.001",
                "actor_rollout_ref.actor.use_kl_loss": "false",
                "actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-mean",  # loss_type grpo, the default
                "actor_rollout_ref.actor.clip_ratio_high": "0.2", "algorithm.filter_groups.enable": "false"},
        "grpo": {"algorithm.adv_estimator": "grpo", "critic.enable": "false", "algorithm.use_kl_in_reward": "false",
                 "actor_rollout_ref.actor.use_kl_loss": "true", "actor_rollout_ref.actor.kl_loss_coef": "0.001",
                 "actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-mean",
                 "actor_rollout_ref.actor.clip_ratio_high": "0.2", "algorithm.filter_groups.enable": "false"},
        "dapo": {"algorithm.adv_estimator": "grpo", "critic.enable": "false", "algorithm.filter_groups.enable": "true",
                 "algorithm.filter_groups.metric": "reward", "algorithm.filter_groups.max_num_gen_batches": "4",
                 "actor_rollout_ref.actor.clip_ratio_low": "0.2", "actor_rollout_ref.actor.clip_ratio_high": "0.28",
                 "actor_rollout_ref.actor.loss_agg_mode": "token-mean"},
    }[algorithm]  # fmt: skip
    assert {k: o.get(k) for k in expected} == expected
    assert ("critic.model.path" in o) == (algorithm == "ppo")


@pytest.mark.parametrize(
    ("shared", "expected"),
    [
        ({}, {"actor.clip_ratio": "0.2", "actor.clip_ratio_low": "0.2", "actor.clip_ratio_high": "0.2",
              "actor.loss_agg_mode": "seq-mean-token-mean", "actor.loss_scale_factor": None,
              "algorithm.norm_adv_by_std_in_grpo": "true", "actor.ppo_epochs": "1", "rollout.temperature": "0.9",
              "rollout.top_p": "1.0", "rollout.top_k": "-1", "algorithm.filter_groups.enable": "false",
              "algorithm.filter_groups.max_num_gen_batches": None, "model.enable_gradient_checkpointing": "true"}),
        ({"epsilon": 0.1}, {"actor.clip_ratio": "0.1", "actor.clip_ratio_low": "0.1", "actor.clip_ratio_high": "0.1"}),
        ({"epsilon_high": 0.28}, {"actor.clip_ratio_low": "0.2", "actor.clip_ratio_high": "0.28"}),
        ({"loss_type": "dapo"}, {"actor.loss_agg_mode": "token-mean"}),
        ({"loss_type": "bnpo"}, {"actor.loss_agg_mode": "token-mean"}),
        ({"loss_type": "dr_grpo", "max_completion_length": 512},
         {"actor.loss_agg_mode": "seq-mean-token-sum-norm", "actor.loss_scale_factor": "512"}),
        ({"scale_rewards": "none"}, {"algorithm.norm_adv_by_std_in_grpo": "false"}),
        ({"num_iterations": 2}, {"actor.ppo_epochs": "2"}),
        ({"temperature": 0.7, "top_p": 0.95, "top_k": 20},
         {"rollout.temperature": "0.7", "rollout.top_p": "0.95", "rollout.top_k": "20"}),
        ({"dynamic_sampling": True, "max_resample": 5},
         {"algorithm.filter_groups.enable": "true", "algorithm.filter_groups.max_num_gen_batches": "6"}),
        ({"gradient_checkpointing": False}, {"model.enable_gradient_checkpointing": "false"}),
        ({"gradient_checkpointing": True}, {"model.enable_gradient_checkpointing": "true"}),
    ],
)  # fmt: skip
def test_each_shared_setting_reaches_verl(train_file, tmp_path, shared, expected):
    o = _overrides(_config(train_file, tmp_path / "out", **shared))
    prefixed = {k if k.startswith("algorithm.") else f"actor_rollout_ref.{k}": v for k, v in expected.items()}
    assert {k: o.get(k) for k in prefixed} == prefixed


def test_gradient_checkpointing_reaches_the_critic_too(train_file, tmp_path):
    o = _overrides(_config(train_file, tmp_path / "out", gradient_checkpointing=False, verl={"algorithm": "ppo"}))
    assert o["critic.model.enable_gradient_checkpointing"] == "false"
    assert o["actor_rollout_ref.model.enable_gradient_checkpointing"] == "false"


def test_lora_plain_prompt_and_extra_overrides(train_file, tmp_path):
    config = _config(train_file, tmp_path / "out", lora=True, lora_r=16, lora_alpha=32, chat=False,
                     verl={"overrides": ["trainer.val_before_train=false"]})  # fmt: skip
    o = _overrides(config)
    assert (o["actor_rollout_ref.model.lora_rank"], o["actor_rollout_ref.model.lora_alpha"]) == ("16", "32")
    assert o["actor_rollout_ref.model.custom_chat_template"] == f'"{verl_backend.PLAIN_TEMPLATE}"'  # hydra-quoted
    assert verl_backend.overrides(config)[-1] == "trainer.val_before_train=false"  # the user's, last
    o = _overrides(_config(train_file, tmp_path / "out", lora=False))
    assert o["actor_rollout_ref.model.lora_rank"] == "0" and "actor_rollout_ref.model.lora_alpha" not in o


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verl": {"algorithmm": "ppo"}}, "verl: unknown setting 'algorithmm'"),
        ({"verl": {"algorithm": "reinforce"}}, "algorithm must be one of ppo, grpo, got 'reinforce'"),
        (
            {"verl": {"algorithm": "dapo"}},
            "verl: algorithm dapo is grpo with shared settings: set verl.algorithm: grpo, "
            "dynamic_sampling: true, epsilon_high: 0.28, loss_type: dapo",
        ),
        ({"verl": {"clip_ratio_high": 0.28}}, "verl.clip_ratio_high is now the shared train setting epsilon_high"),
        ({"verl": {"loss_agg_mode": "token-mean"}}, "verl.loss_agg_mode is now the shared train setting loss_type"),
        ({"loss_type": "sapo"}, "backend verl: loss_type must be one of grpo, dapo, bnpo, dr_grpo, cispo"),
        ({"scale_rewards": "batch"}, "backend verl: scale_rewards must be group or none .* got 'batch'"),
        ({"prefill": "<think>"}, "backend verl has no prefill"),
        ({"stop": ["</answer>"]}, "backend verl: stop is medrlvr's rollouts' setting"),
        ({"mask_truncated_completions": True}, "verl 0.9 has no mask_truncated_completions.*set it false"),
        ({"rollout_engine": "vllm"}, "backend verl samples with verl.rollout .*set rollout_engine: auto, got 'vllm'"),
        ({"rewards": {"format": 1.0, "accuracy": 1.0}}, r"set rewards: \{accuracy: 1.0\}"),
        ({"verl": {"n_gpus_per_node": 3}}, "32 sequences over verl.nnodes x verl.n_gpus_per_node = 3 GPUs"),
        ({"method": "sft"}, "method sft stays with trl"),
        ({"backend": "openrlhf"}, "setting .backend. must be one of trl, verl, got .openrlhf."),  # the field's choices
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_key(train_file, tmp_path, change, message):
    with pytest.raises(ValueError, match=message) as error:
        _config(train_file, tmp_path / "out", **change)
    assert "\n" not in str(error.value)


def test_launch_script_runs_main_ppo_then_the_model_merger(train_file, tmp_path):
    config = _config(train_file, tmp_path / "out", chat=False, verl={"nnodes": 2})
    script = verl_backend.launch_script(config, "Qwen/Qwen2.5-3B")
    assert '"$PYTHON" -m verl.trainer.main_ppo \\\n' in script and "ray start --head" in script
    for override in verl_backend.overrides(config):
        assert override.split("=", 1)[0] in script
    assert "-m verl.model_merger merge --backend fsdp --local_dir" in script and "verl_hf" in script
    path = tmp_path / "launch.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0


def test_without_verl_the_command_is_printed_and_the_error_is_one_line(
    train_file, tmp_path, monkeypatch, capsys, tiny_checkpoint
):
    import shutil

    monkeypatch.setattr(verl_backend, "verl_available", lambda: False)
    out = tmp_path / "out"
    args = ["train", "--backend", "verl", f"train_file={train_file}", f"output_dir={out}", "model=Qwen/Qwen2.5-3B",
            "rewards={accuracy: 1.0}", "num_generations=2", "batch_size=2", "gradient_accumulation_steps=1",
            "lora=false", "verl={algorithm: grpo}"]  # fmt: skip
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2
    assert len(captured.err.strip().splitlines()) == 1 and "verl is not installed" in captured.err
    assert f"bash {out.resolve() / 'verl_launch.sh'}" in captured.out
    assert (out / "verl_launch.sh").exists() and (out / "data" / "train.parquet").exists()
    shutil.copytree(tiny_checkpoint, out / "verl_hf")  # the script, run by hand where verl is: collected, not rerun
    assert main(args) == 0 and (out / "model" / "config.json").exists()


FAKE_MAIN_PPO = """
import json, os, sys
from pathlib import Path
args = dict(a.split("=", 1) for a in sys.argv[1:])
Path(os.environ["FAKE_VERL_ARGS"]).write_text(json.dumps(args))
checkpoints = Path(args["trainer.default_local_dir"])
(checkpoints / "global_step_2" / "actor").mkdir(parents=True, exist_ok=True)
(checkpoints / "latest_checkpointed_iteration.txt").write_text("2")
with open(os.environ["VERL_FILE_LOGGER_PATH"], "w") as f:
    for step in (1, 2):
        f.write(json.dumps({"step": step, "data": {"critic/score/mean": step / 4, "actor/pg_loss": 0.1}}) + "\\n")
"""
FAKE_MERGER = """
import os, shutil, sys
assert sys.argv[1:4] == ["merge", "--backend", "fsdp"] and sys.argv[5].endswith("global_step_2/actor")
shutil.copytree(os.environ["FAKE_VERL_HF"], sys.argv[sys.argv.index("--target_dir") + 1])
"""


@pytest.fixture
def fake_verl(tmp_path, monkeypatch, tiny_checkpoint):
    """A `verl` package whose trainer writes a checkpoint marker and a metrics log, and whose model merger writes
    the tiny random checkpoint as the Hugging Face export."""
    root = tmp_path / "fake-verl"
    for package, files in {"verl": {}, "verl/trainer": {"main_ppo.py": FAKE_MAIN_PPO},
                           "verl/model_merger": {"__main__.py": FAKE_MERGER}}.items():  # fmt: skip
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        for name, text in files.items():
            (root / package / name).write_text(text)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.setenv("FAKE_VERL_HF", str(tiny_checkpoint))
    monkeypatch.setenv("FAKE_VERL_ARGS", str(tmp_path / "verl_args.json"))
    return tmp_path / "verl_args.json"


STUDY = """
name: tiny-verl
data: {{pool: demo:train, pool_limit: 12}}
select:
  random: {{strategy: random, n: 4}}
train:
  model: "{model}"
  policies:
    ppo:
      selection: random
      backend: verl
      rewards: {{accuracy: 1.0}}
      lora: false
      batch_size: 2
      num_generations: 2
      gradient_accumulation_steps: 1
      max_steps: 2
      verl: {{algorithm: ppo}}
eval:
  benchmarks: [demo]
  limit: 4
  base: false
"""


def test_a_verl_policy_comes_back_into_the_study(fake_verl, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    recipe = tmp_path / "tiny-verl.yaml"
    recipe.write_text(STUDY.format(model=tiny_checkpoint))
    run_dir = run_study(recipe, run_dir=str(tmp_path / "run"), progress=False, log=lambda line: None)
    out = run_dir / "train" / "ppo"
    args = json.loads(fake_verl.read_text())
    assert args["algorithm.adv_estimator"] == "gae" and args["critic.model.path"] == str(tiny_checkpoint.resolve())
    assert (out / "model" / "config.json").exists() and list((out / "model").glob("*.safetensors"))
    assert not (out / "verl_hf").exists()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(m["step"], m["reward"]) for m in metrics] == [(1, 0.25), (2, 0.5)]
    results = json.loads((run_dir / "eval" / "ppo" / "demo" / "results.json").read_text())
    assert results["n"] == 4
    statuses = {s["stage"]: s["status"] for s in json.loads((run_dir / "manifest.json").read_text())["stages"]}
    assert statuses["train"] == "ran" and statuses["eval"] == "ran" and statuses["report"] == "ran"


def test_a_lora_export_becomes_an_adapter_on_its_base(train_file, tiny_checkpoint, tmp_path):
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = _config(train_file, tmp_path / "out", model=str(tiny_checkpoint), lora=True, lora_r=4, lora_alpha=8,
                     merge=True, verl={"n_gpus_per_node": 1})  # fmt: skip
    hf = verl_backend.paths(config)["hf"]
    shutil.copytree(tiny_checkpoint, hf)  # what verl's merger writes: the base weights, the adapter beside them
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_checkpoint), LoraConfig(r=4, lora_alpha=8))
    model.save_pretrained(hf / "lora_adapter")
    verl_backend.collect(config, str(tiny_checkpoint))
    out = tmp_path / "out"
    meta = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert meta["base_model_name_or_path"] == str(tiny_checkpoint) and not hf.exists()
    assert (out / "adapter" / "tokenizer_config.json").exists() and (out / "merged" / "config.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not VERL_PYTHON.exists(),
    reason=".venv-verl not found: `bash scripts/install.sh --dev` installs verl there (CI has it)",
)
def test_overrides_and_reward_pass_verls_own_config_and_reward_loader():
    """scripts/verl_check.py in .venv-verl: the three algorithms' overrides composed with verl's hydra config and
    validated by verl; the reward loaded by verl's custom-reward loader scores gold answers 1.0 and hedges 0.0."""
    result = subprocess.run(
        [str(VERL_PYTHON), str(ROOT / "scripts" / "verl_check.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "all checks passed" in result.stdout


def test_the_recipes_verl_arms():
    recipe = load_recipe(ROOT / "recipes" / "med-rlvr" / "study.yaml")
    arms = {p.name: p.config for p in recipe.policies}
    assert arms["rlvr"].backend == "verl" and verl_backend.settings(arms["rlvr"]).algorithm == "ppo"
    assert arms["rlvr-grpo"].backend == "trl"
    text = (ROOT / "recipes" / "open-medical-r1" / "study.yaml").read_text()
    assert "# backend: verl" in text and "algorithm: grpo" in text
    assert arms["rlvr"].verl["n_gpus_per_node"] == 8 and not arms["rlvr"].lora  # the paper: full fine-tuning


@pytest.mark.parametrize(
    "variant, expected",
    [
        ("dr_grpo", {"actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-sum-norm",
                     "algorithm.norm_adv_by_std_in_grpo": "false", "actor_rollout_ref.actor.use_kl_loss": "false"}),
        ("gspo", {"actor_rollout_ref.actor.policy_loss.loss_mode": "gspo",
                  "actor_rollout_ref.actor.clip_ratio_low": "0.0003",
                  "actor_rollout_ref.actor.clip_ratio_high": "0.0004"}),
        ("cispo", {"actor_rollout_ref.actor.policy_loss.loss_mode": "cispo",
                   "actor_rollout_ref.actor.clip_ratio_high": "4.0",
                   "actor_rollout_ref.actor.loss_agg_mode": "token-mean"}),
        ("dapo", {"actor_rollout_ref.actor.loss_agg_mode": "token-mean", "algorithm.filter_groups.enable": "true",
                  "actor_rollout_ref.actor.clip_ratio_high": "0.28"}),
    ],
)  # fmt: skip
def test_each_grpo_variant_reaches_verl(train_file, tmp_path, variant, expected):
    extra = {"overlong_buffer": 0} if variant == "dapo" else {}  # verl 0.9 has no overlong shaping
    overrides = _overrides(_config(train_file, tmp_path / "out", variant=variant, verl={"algorithm": "grpo"}, **extra))
    assert {k: overrides[k] for k in expected} == expected


def test_variant_settings_verl_lacks_are_errors(train_file, tmp_path):
    with pytest.raises(ValueError, match="backend verl: overlong_buffer is not mapped"):
        _config(train_file, tmp_path / "out", variant="dapo", verl={"algorithm": "grpo"})
    with pytest.raises(ValueError, match="backend verl: top_entropy_quantile is not mapped"):
        _config(train_file, tmp_path / "out", top_entropy_quantile=0.2, verl={"algorithm": "grpo"})


def test_truncated_rollout_importance_sampling_reaches_verl_and_masks_are_errors(train_file, tmp_path):
    """token/sequence truncation -> verl's algorithm.rollout_correction (TIS at the same cap); verl's rejection
    sampling bounds another statistic, so the masked modes and a lower bound are one-line errors."""
    config = _config(train_file, tmp_path / "out", rollout_importance_sampling="sequence_truncate",
                     rollout_importance_sampling_max=2.5, verl={"algorithm": "grpo"})  # fmt: skip
    written = verl_backend.overrides(config, "/models/tiny")
    assert "algorithm.rollout_correction.rollout_is=sequence" in written
    assert "algorithm.rollout_correction.rollout_is_threshold=2.5" in written
    with pytest.raises(ValueError, match="rollout_importance_sampling token_mask is not mapped"):
        _config(train_file, tmp_path / "out", rollout_importance_sampling="token_mask", verl={"algorithm": "grpo"})
    with pytest.raises(ValueError, match="unset rollout_importance_sampling_min"):
        _config(train_file, tmp_path / "out", rollout_importance_sampling="token_truncate",
                rollout_importance_sampling_min=0.5, verl={"algorithm": "grpo"})  # fmt: skip
