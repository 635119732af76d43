"""medrlvr's PPO math against verl's: scripts/ppo_verl_check.py, run in .venv-verl (verl and medrlvr's training
stack do not share an environment). The literal cases are in tests/test_ppo_core.py."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERL_PYTHON = ROOT / ".venv-verl" / "bin" / "python"

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
# every check the script must report as agreeing, in float64 and in float32: one that went missing fails here
CHECKS = [
    "masked_mean",
    "masked_mean(dim=-1)",
    "masked_var",
    "masked_var(biased)",
    "masked_whiten(shift_mean=True)",
    "masked_whiten(shift_mean=False)",
    *(f"kl_estimate({e})" for e in ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")),
    "kl_in_reward(kl)",
    "kl_in_reward(low_var_kl)",
    *(
        f"gae(gamma={g}, lam={lam}).{part}"
        for g, lam in ((1.0, 1.0), (0.99, 0.95))
        for part in ("advantages", "returns")
    ),
    "gae(whiten=False) = verl's returns - values",
    *(
        f"policy_loss(clip {clip}, {agg}){part}"
        for clip in ("0.2/0.2", "0.2/0.28")
        for agg in AGG_MODES
        for part in ("", ".grad", ".clipfrac", ".approx_kl", ".clipfrac_lower")
    ),
    *(f"value_loss(clip 0.5, {agg}){part}" for agg in AGG_MODES for part in ("", ".grad", ".clipfrac")),
    "explained_variance",
]


@pytest.mark.slow
@pytest.mark.skipif(
    not VERL_PYTHON.exists(),
    reason=".venv-verl not found: `bash scripts/install.sh --dev` installs verl there (CI has it)",
)
def test_ppo_core_agrees_with_verls_functions():
    result = subprocess.run(
        [str(VERL_PYTHON), str(ROOT / "scripts" / "ppo_verl_check.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    passed = {line.split("  max|diff|")[0].removeprefix("ok ") for line in result.stdout.splitlines()}
    missing = [f"{c} [{d}]" for c in CHECKS for d in ("float64", "float32") if f"{c} [{d}]" not in passed]
    assert not missing, f"checks that did not print ok: {missing}\n{result.stdout[-4000:]}"
    assert "all checks passed" in result.stdout
