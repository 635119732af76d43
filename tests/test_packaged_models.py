"""Slow tests on the real packaged models (pytest -m slow; CI runs them): loading, the conversion cache, chat
template, generation, log-likelihood, determinism, and the OpenAI-compatible engine against llama.cpp's server."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from medrlvr import models
from medrlvr.engines import Sampling, get_engine

pytestmark = pytest.mark.slow
SMOL = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "Which organ produces insulin? Answer in one word."}]


def test_packaged_models_resolve_and_convert_once():
    for name in models.PACKAGED:
        ref = models.resolve(name)
        assert ref.kind == "gguf" and Path(ref.location).stat().st_size > 50_000_000
        path = Path(models.checkpoint_dir(ref))
        assert (path / "model.safetensors").exists() and (path / "medrlvr-converted.json").exists()
        stamp = (path / "model.safetensors").stat().st_mtime
        assert models.checkpoint_dir(name) == str(path)  # reused, not converted again
        assert (path / "model.safetensors").stat().st_mtime == stamp
    assert all(row["installed"] and row["prepared"] for row in models.list_models())


def test_interrupted_conversion_leaves_no_checkpoint(tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    monkeypatch.setenv("MEDRLVR_CACHE", str(tmp_path))
    gguf = Path(models.resolve(SMOL).location)
    target = tmp_path / "checkpoints" / "smol"

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the middle of writing

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        models.convert_gguf(gguf, target)
    assert not target.exists() and list((tmp_path / "checkpoints").iterdir()) == []


def test_transformers_engine_on_smollm2():
    eng = get_engine("transformers", SMOL)
    assert eng.tokenizer.chat_template and "<|im_start|>" in eng.render(QUESTION)
    sampling = Sampling(max_new_tokens=24, temperature=0.7, seed=5)
    out = eng.generate([QUESTION, QUESTION], n=2, sampling=sampling)
    assert all(c.text.strip() and c.tokens > 0 for cs in out for c in cs)
    assert [c.text for c in eng.generate([QUESTION, QUESTION], n=2, sampling=sampling)[0]] == [c.text for c in out[0]]
    greedy = eng.generate([QUESTION], sampling=Sampling(max_new_tokens=24, temperature=0))[0][0].text
    assert "pancreas" in greedy.lower()
    (paris, g1), (london, g2) = eng.loglikelihood(
        [("The capital of France is", " Paris"), ("The capital of France is", " London")]
    )
    assert paris > london and g1 and not g2


def test_gemma_base_model_plain_completion():
    eng = get_engine("transformers", "gemma-3-270m")
    assert not eng.chat  # a base model: filter and eval render plain prompts
    out = eng.generate(["The heart has four"], sampling=Sampling(max_new_tokens=8, temperature=0))
    assert out[0][0].tokens > 0
    (good, _), (bad, _) = eng.loglikelihood([("The heart has four", " chambers"), ("The heart has four", " wheels")])
    assert good > bad


# llama.cpp is native code built on the machine: a crash there (a build that uses CPU features the machine reports
# but will not run) must fail its test, not kill pytest. So its tests run llama.cpp in a child process.
LLAMACPP_CHILD = """
import json, sys
from medrlvr.engines import Sampling, get_engine
question = [{"role": "user", "content": "Which organ produces insulin? Answer in one word."}]
eng = get_engine("llamacpp", "smollm2-135m-instruct")
sampling = Sampling(max_new_tokens=24, temperature=0.7, seed=5)
first = eng.generate([question], n=2, sampling=sampling)
again = eng.generate([question], n=2, sampling=sampling)
greedy = eng.generate([question], sampling=Sampling(max_new_tokens=24, temperature=0))[0][0].text
pairs = [("The capital of France is", " Paris"), ("The capital of France is", " London")]
print(json.dumps({
    "chat": eng.chat,
    "sampled": [c.text for c in first[0]],
    "repeatable": [c.text for c in first[0]] == [c.text for c in again[0]],
    "greedy": greedy,
    "loglik": eng.loglikelihood(pairs),
}))
"""


def skip_without_llamacpp() -> None:
    """Skip when llama-cpp-python is not installed, without importing it here (its import loads native code)."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (bash scripts/install.sh --dev builds it)")


def run_child(code: str, timeout: float = 600) -> str:
    """Run ``code`` in a fresh interpreter; a crash (a signal) or an error is a test failure that says which."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    if proc.returncode < 0:
        pytest.fail(f"llama.cpp child process died of signal {-proc.returncode}: {proc.stderr[-2000:]}")
    if proc.returncode:
        pytest.fail(f"llama.cpp child process exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def test_run_child_reports_a_crash_as_a_failure():
    with pytest.raises(pytest.fail.Exception, match="signal 11"):
        run_child("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")


def test_llamacpp_engine_agrees_with_transformers():
    import json

    skip_without_llamacpp()

    out = json.loads(run_child(LLAMACPP_CHILD).strip().splitlines()[-1])
    assert out["chat"]  # the GGUF carries SmolLM2's chat template, so filter and eval send chat prompts
    assert out["repeatable"] and all(text.strip() for text in out["sampled"])
    assert "pancreas" in out["greedy"].lower()
    pairs = [("The capital of France is", " Paris"), ("The capital of France is", " London")]
    ref = get_engine("transformers", SMOL, dtype="fp32").loglikelihood(pairs)
    for (a, ga), (b, gb) in zip(out["loglik"], ref):
        assert a == pytest.approx(b, abs=0.3) and ga == gb  # Q4_1 weights against their dequantized copy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    skip_without_llamacpp()
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                models.resolve(SMOL).location,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--logits_all",
                "true",
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(120):  # bounded: 60 s at most
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"llama.cpp server exited: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("llama.cpp server did not start in 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_openai_engine_against_llamacpp_server(llama_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-needed-locally")
    eng = get_engine("openai", SMOL, base_url=llama_server, concurrency=2)
    sampling = Sampling(max_new_tokens=24, temperature=0, seed=1)
    out = eng.generate([QUESTION, "The largest organ of the human body is"], n=1, sampling=sampling)
    assert "pancreas" in out[0][0].text.lower() and out[0][0].tokens > 0 and out[1][0].text.strip()
    stopped = eng.generate(
        ["Count: one, two, three,"], sampling=Sampling(max_new_tokens=24, temperature=0, stop=(",",))
    )
    assert "," not in stopped[0][0].text and stopped[0][0].finish_reason == "stop"
    # Log-likelihoods are not checked here: llama-cpp-python's server (0.3.x) shifts echoed logprobs by one
    # token (entry i holds the distribution that predicts token i+1); vLLM's are aligned. The parsing is tested
    # against a server that answers as vLLM does (test_engines.py).


def test_filter_20_medmcqa_questions_with_smollm2(real_data, tmp_path):
    import json

    from medrlvr.data import load_pool
    from medrlvr.filter import FilterConfig, filter_pool, load_labels
    from medrlvr.select import SelectConfig, select

    pool = load_pool("medmcqa:dev", real_data)[:20]
    config = FilterConfig(model=SMOL, max_new_tokens=64, chunk_size=10)
    out = filter_pool(pool, config, tmp_path / "filter", progress=False)
    labels = load_labels(out)
    assert set(labels) == {r.id for r in pool}
    stats = json.loads((out / "stats.json").read_text())
    assert sum(stats["labels"].values()) == 20 and stats["this_run"]["questions"] == 20
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert all(len(r["responses"]) == 1 and r["tokens"][0] > 0 for r in rows)
    hard = stats["labels"].get("hard", 0)
    chosen = select(pool, labels, SelectConfig(strategy="ratio", hard=min(hard, 5), easy=0))
    assert len(chosen) == min(hard, 5)
