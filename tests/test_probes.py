"""The robustness probes with scripted engines: the adversarial prefill (flips against the plain run), open-form
answers (exact, normalised, a judge on a local OpenAI-compatible server whose key is written nowhere), and the
reasoning/knowledge split on questions written for it; then a tiny study whose report shows all three."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fakes import ScriptedEngine

from medrlvr.engines import Completion
from medrlvr.errors import RecipeError, UserError
from medrlvr.evaluate import EvalConfig, evaluate
from medrlvr.evaluate.openform import free_answer, normalise, skip_reason, verdict
from medrlvr.evaluate.prefill import wrong_option
from medrlvr.evaluate.split import question_kind, signs
from medrlvr.prompts import OPEN_FORM_NOTE
from medrlvr.records import Record
from medrlvr.stats import wilson

RECS = [Record(id=f"p{i}", question=f"Question {i}?", options={"A": "w", "B": "x", "C": "y", "D": "z"},
               answer="ABCD"[i % 4], subject="anatomy") for i in range(10)]  # fmt: skip


class PrefillEngine(ScriptedEngine):
    """Plain: questions 0-5 right, 6-9 no answer. Under the adversarial prefill (read from the assistant turn):
    questions 0 and 1 take the pushed option, question 6 finds the gold, the rest answer as plainly."""

    def __init__(self):
        super().__init__({})

    def generate(self, prompts, n=1, sampling=None):
        self.calls.append((len(prompts), 0))
        out = []
        for p in prompts:
            user = next(m["content"] for m in p if m["role"] == "user")
            i = int(re.search(r"Question (\d+)\?", user).group(1))
            pushed = re.search(r"the answer is ([A-J])\.", p[-1]["content"]) if p[-1]["role"] == "assistant" else None
            gold = RECS[i].answer
            answer = gold if i < 6 else "none"
            if pushed and i in (0, 1):
                answer = pushed.group(1)
            elif pushed and i == 6:
                answer = gold
            out.append([Completion(f" ...</think><answer>{answer}</answer>", 8, "stop", 5)])
        return out


def test_adversarial_prefill_counts_flips_against_the_plain_run(tmp_path):
    config = EvalConfig(model="fake", mode="generate", prefill="<think>", adversarial_prefill=True, chunk_size=4)
    engine = PrefillEngine()
    res = evaluate(RECS, config, tmp_path, "mmlu@generate", engine=engine, progress=False)
    probe = res["adversarial_prefill"]
    assert res["accuracy"] == 0.6 and probe["accuracy_plain"] == 0.6 and probe["n"] == 10
    assert probe["accuracy"] == pytest.approx(0.5) and probe["ci95"] == pytest.approx(list(wilson(5, 10)))
    r2w, w2r = probe["right_to_wrong"], probe["wrong_to_right"]
    assert (r2w["count"], r2w["n"], w2r["count"], w2r["n"]) == (2, 6, 1, 4)
    assert r2w["ci95"] == pytest.approx(list(wilson(2, 6))) and w2r["rate"] == 0.25
    assert probe["followed"]["count"] == 2 and 0 < probe["mcnemar_p"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "prefill.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(r["pushed"] != r["gold"] for r in rows)
    assert all(r["response"].startswith("<think>My first thought is that the answer is " + r["pushed"]) for r in rows)
    # the pushes are seeded per question: the same on a rerun, other ones under another seed
    assert [r["pushed"] for r in rows] == [wrong_option(rec, 0) for rec in RECS]
    assert [wrong_option(rec, 1) for rec in RECS] != [wrong_option(rec, 0) for rec in RECS]
    again = PrefillEngine()
    assert evaluate(RECS, config, tmp_path, "mmlu@generate", engine=again, progress=False) == res
    assert again.calls == []  # plain and probe rows are both resumed, nothing asked twice
    with pytest.raises(UserError, match="adversarial_prefill' needs mode generate"):
        evaluate(RECS, EvalConfig(model="fake", adversarial_prefill=True), tmp_path / "x", "mmlu", engine=engine)
    with pytest.raises(UserError, match="judge_model' judges open-form answers"):
        EvalConfig(model="fake", judge_model="j")


# --- open form ------------------------------------------------------------------------------------------------

OPEN = [
    Record(id="o0", question="Which nerve supplies the diaphragm?", options={"A": "Vagus nerve", "B": "Phrenic nerve"},
           answer="B"),
    Record(id="o1", question="Which nerve innervates the deltoid?", options={"A": "Axillary nerve", "B": "Ulnar nerve"},
           answer="A"),
    Record(id="o2", question="Which vitamin deficiency causes scurvy?", options={"A": "Vitamin C", "B": "Vitamin D"},
           answer="A"),
    Record(id="o3", question="Which enzyme does aspirin inhibit?", options={"A": "COX", "B": "LOX"}, answer="A"),
    Record(id="o4", question="苯二氮卓类药物过量的解毒剂是", options={"A": "纳洛酮", "B": "氟马西尼"}, answer="B"),
    Record(id="o5", question="Which are signs of shock?", options={"A": "Tachycardia", "B": "Hypotension",
           "C": "All of the above"}, answer="C"),
    Record(id="o6", question="All of the following cause fever EXCEPT", options={"A": "Malaria", "B": "Aspirin"},
           answer="B"),
]  # fmt: skip
OPEN_ANSWERS = {
    "supplies the diaphragm": "<answer>the phrenic nerve.</answer>",  # normalised only
    "deltoid": "<answer>Axillary nerve</answer>",  # exact
    "scurvy": "<answer>Vitamin D</answer>",  # wrong
    "aspirin inhibit": "I think it is COX",  # no answer in the format
    "解毒剂": "<answer>氟马西尼。</answer>",  # CJK, normalised only
}


class OpenEngine(ScriptedEngine):
    """Generate: the open answers above. Log-likelihood: the gold letter for every question but o2."""

    def loglikelihood(self, pairs):
        out = []
        for context, continuation in pairs:
            rec = next(r for r in OPEN if r.question in context)
            best = rec.answer if rec.id != "o2" else "B"
            out.append((0.0 if continuation.strip() == best else -3.0, False))
        return out


class JudgeServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible judge: CORRECT when the candidate's answer holds the reference, a hedge for the
    CJK answer (unparseable), and every Authorization header it was sent."""

    seen_auth: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen_auth.append(self.headers.get("Authorization"))
        user = body["messages"][-1]["content"]
        reference = user.split("Reference answer: ")[1].split("\n")[0]
        candidate = user.split("Candidate's answer: ")[1]
        if "氟" in candidate:
            reply = "CORRECT or INCORRECT, hard to say"
        else:
            reply = "CORRECT" if reference.lower() in candidate.lower() else "INCORRECT."
        payload = {"choices": [{"message": {"content": reply}, "finish_reason": "stop"}], "usage": {}}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(payload).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), JudgeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def _files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_open_form_grades_free_answers_and_a_judge_whose_key_is_written_nowhere(tmp_path, judge_url, monkeypatch):
    secret = "sk-judge-secret-4711"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    engine = OpenEngine({k: [v] for k, v in OPEN_ANSWERS.items()})
    config = EvalConfig(model="fake", open_form=True, judge_model="judge-m", judge_options={"base_url": judge_url},
                        max_new_tokens=16)  # fmt: skip
    res = evaluate(OPEN, config, tmp_path, "mmlu", engine=engine, progress=False)
    asked = [p[-1]["content"] for p in engine.prompts]
    assert len(asked) == 5 and all(a.endswith(OPEN_FORM_NOTE) and "A. " not in a for a in asked)  # no options
    probe = res["open_form"]
    assert probe["n"] == 5 and probe["skipped"] == {"the gold option refers to the others": 1,
                                                    "the stem picks an exception or a statement": 1}  # fmt: skip
    assert probe["multiple_choice"]["accuracy"] == pytest.approx(4 / 5)  # the same 5 questions, by log-likelihood
    assert probe["exact"]["accuracy"] == pytest.approx(1 / 5) and probe["normalised"]["accuracy"] == pytest.approx(
        3 / 5
    )
    assert probe["exact"]["ci95"] == pytest.approx(list(wilson(1, 5))) and probe["no_answer"] == 1
    judge = probe["judge"]
    assert judge["model"] == "judge-m" and judge["accuracy"] == pytest.approx(2 / 5) and judge["unparseable"] == 1
    assert probe["inflation"]["measure"] == "judge" and probe["inflation"]["difference"] == pytest.approx(2 / 5)
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "open_form.jsonl").read_text().splitlines())}
    assert rows["o0"]["judge_raw"] == "CORRECT" and rows["o0"]["judge"] is True
    assert rows["o2"]["judge_raw"] == "INCORRECT." and rows["o2"]["judge"] is False
    assert rows["o4"]["judge"] is None and rows["o4"]["normalised"] and not rows["o4"]["exact"]
    assert rows["o3"]["answer"] is None and rows["o3"]["judge_raw"] is None  # nothing to judge: not sent
    assert rows["o0"]["judge_prompt"][-1]["content"].endswith("Candidate's answer: the phrenic nerve.")
    assert rows["o5"]["skipped"] and "response" not in rows["o5"]
    assert JudgeServer.seen_auth and set(JudgeServer.seen_auth) == {f"Bearer {secret}"}  # the key was sent ...
    assert _files_containing(tmp_path, secret) == []  # ... and written nowhere
    assert res["config"]["judge_options"] == {"base_url": judge_url}


def test_open_form_reading_and_normalisation():
    assert normalise("  The Phrenic-Nerve. ") == "phrenic nerve" == normalise("phrenic nerve")
    assert normalise("Ａｓｐｉｒｉｎ") == "aspirin"  # full width, NFKC
    assert normalise("阿司匹林 。") == normalise("阿司匹林") and normalise("維生素 C") == "維生素 c"
    assert normalise("an apple") == normalise("Apple") and normalise("...") == ""
    assert free_answer("<answer>Vitamin C</answer>", "r1_zero") == "Vitamin C"
    assert free_answer("<answer>Vitamin C</answer><answer>Vitamin D</answer>", "r1_zero") is None  # a hedge
    assert free_answer("\\boxed{COX-1}", "filter") == "COX-1" and free_answer("COX-1", "r1_zero") is None
    assert verdict("CORRECT") is True and verdict("incorrect.") is False
    assert verdict("CORRECT or INCORRECT") is None and verdict("yes") is None
    assert skip_reason(Record(id="x", question="Which is NOT a feature?", options={"A": "a1", "B": "b1"},
                              answer="A")) is not None  # fmt: skip
    assert skip_reason(Record(id="x", question="A man who does not smoke has a cough. Diagnosis?",
                              options={"A": "Asthma", "B": "Both A and C", "C": "x"}, answer="A")) is None  # fmt: skip


# --- reasoning- and knowledge-heavy questions (written for this test) ------------------------------------------

REASONING = [
    "A 54-year-old man comes to the emergency department with crushing chest pain for 2 hours. His blood pressure "
    "is 90/60 mm Hg and pulse is 120/min. Troponin is elevated. What is the most appropriate next step in management?",
    "A 6-year-old girl is brought to the physician with periorbital edema. Urine protein is 4 g/24 h and serum "
    "albumin 2.1 g/dL. Which of the following is the most likely diagnosis?",
    "A 30-year-old woman presents with fatigue, weight gain and cold intolerance for several months. On examination "
    "her skin is dry and her reflexes relax slowly; her mother had a similar illness treated years ago and she has "
    "been taking lithium for a bipolar disorder since her early twenties without any monitoring of her blood levels. "
    "Which of the following best explains her findings?",
    "患者，男，65岁，突发胸痛2小时，血压85/50 mmHg，心率118/min。最可能的诊断是",
]
KNOWLEDGE = [
    "Which nerve innervates the deltoid muscle?",
    "What is the drug of choice for absence seizures?",
    "A 40-year-old woman is found drowsy after taking many alprazolam tablets. Which drug reverses benzodiazepines?",
    "What is the most likely cause of scurvy?",
    "Deficiency of which vitamin causes pellagra?",
    "膈肌的神经支配来自",
]


def test_the_rule_labels_questions_written_for_it():
    rec = lambda q: Record(id="q", question=q, options={"A": "a", "B": "b"}, answer="A")  # noqa: E731
    assert [question_kind(rec(q)) for q in REASONING] == ["reasoning"] * len(REASONING)
    assert [question_kind(rec(q)) for q in KNOWLEDGE] == ["knowledge"] * len(KNOWLEDGE)
    assert signs(REASONING[0]) == {"case": True, "decision": True, "measurements": True, "long": False}
    assert signs(KNOWLEDGE[2])["case"] and sum(signs(KNOWLEDGE[2]).values()) == 1  # a patient, then a recall


def test_each_row_carries_its_label_and_results_split_the_accuracy(tmp_path):
    recs = [Record(id=f"k{i}", question=q, options={"A": "a", "B": "b"}, answer="A")
            for i, q in enumerate(REASONING + KNOWLEDGE)]  # fmt: skip
    script = {q[:40]: ["<answer>A</answer>" if i % 2 == 0 else "<answer>B</answer>"]
              for i, q in enumerate(REASONING + KNOWLEDGE)}  # fmt: skip
    res = evaluate(recs, EvalConfig(model="fake", mode="generate"), tmp_path, "mmlu@generate",
                   engine=ScriptedEngine(script), progress=False)  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["reasoning"] * 4 + ["knowledge"] * 6
    kinds = res["by_kind"]
    assert kinds["reasoning"]["n"] == 4 and kinds["reasoning"]["accuracy"] == 0.5
    assert kinds["knowledge"]["n"] == 6 and kinds["knowledge"]["accuracy"] == 0.5
    assert kinds["knowledge"]["ci95"] == pytest.approx(list(wilson(3, 6))) and "at least 2" in kinds["rule"]


# --- a study whose report shows the probes ----------------------------------------------------------------------


class ServedModel(BaseHTTPRequestHandler):
    """One OpenAI-compatible server for the evaluated model and the judge (no model is loaded): multiple choice is
    answered "A", an open question "Flumazenil", a prefilled answer follows the push, and the judge says CORRECT
    when the candidate's answer holds the reference."""

    seen_auth: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen_auth.append(self.headers.get("Authorization"))
        messages = body["messages"]
        last = messages[-1]["content"]
        if messages[0]["content"].startswith("You grade answers"):
            reference = last.split("Reference answer: ")[1].split("\n")[0]
            reply = "CORRECT" if reference.lower() in last.split("Candidate's answer: ")[1].lower() else "INCORRECT"
        elif messages[-1]["role"] == "assistant" and "My first thought" in last:  # the adversarial prefill
            pushed = re.search(r"the answer is ([A-J])\.", last).group(1)
            reply = f"</think><answer>{pushed}</answer>"
        elif next(m["content"] for m in messages if m["role"] == "user").endswith(OPEN_FORM_NOTE):
            reply = "</think><answer>Flumazenil</answer>"
        else:
            reply = "</think><answer>A</answer>"
        payload = {"choices": [{"message": {"content": reply}, "finish_reason": "stop"}], "usage": {}}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(payload).encode())

    def log_message(self, *args):
        pass


STUDY = """
name: probes
data: {{pool: demo:train, pool_limit: 4}}
train: {{model: served-m}}
eval:
  engine: openai
  benchmarks:
    - {{benchmark: demo, mode: generate, prefill: "<think>", max_new_tokens: 8, adversarial_prefill: true,
       open_form: true, judge_model: judge-m, judge_options: {{base_url: "{url}"}}}}
    - {{benchmark: demo, mode: generate, name: plain, max_new_tokens: 8}}
"""


def test_a_study_requests_the_probes_per_benchmark_and_its_report_shows_them(tmp_path, monkeypatch):
    from medrlvr.study.runner import load_recipe, run_study

    server = ThreadingHTTPServer(("127.0.0.1", 0), ServedModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    secret = "sk-study-judge-secret-99"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    recipe = tmp_path / "probes.yaml"
    recipe.write_text(STUDY.format(url=url))
    try:
        # a judge at an address the recipe chose gets no key; at the one the user chose (--base-url) it does
        assert load_recipe(recipe).evals[0].config.judge_options["api_key_env"] is None
        with pytest.raises(RecipeError, match=r"probes.yaml: eval \(demo\): setting 'adversarial_prefill' needs mode"):
            load_recipe(recipe, ["eval.benchmarks=[{benchmark: demo, adversarial_prefill: true}]"])
        loaded = load_recipe(recipe, run_dir=str(tmp_path / "run"), base_url=url)
        assert "api_key_env" not in loaded.evals[0].config.judge_options and not loaded.evals[1].config.open_form
        run = run_study(loaded, progress=False, log=lambda line: None)
    finally:
        server.shutdown()
    results = json.loads((run / "eval" / "base" / "demo@generate" / "results.json").read_text())
    probe, open_form = results["adversarial_prefill"], results["open_form"]
    assert probe["n"] == 40 and probe["followed"]["count"] == 40 and probe["accuracy"] == 0.0
    assert probe["right_to_wrong"]["count"] == probe["right_to_wrong"]["n"] == round(40 * results["accuracy"])
    assert open_form["n"] >= 30 and 1 <= round(open_form["judge"]["accuracy"] * open_form["n"]) <= 2  # flumazenil
    assert "adversarial_prefill" not in json.loads((run / "eval" / "base" / "plain" / "results.json").read_text())
    report = run / "report"
    prefill_md, open_md, split_md = ((report / f"{s}.md").read_text() for s in ("prefill", "open_form", "split"))
    assert (
        "| base | demo@generate | 40 |" in prefill_md and prefill_md.count(" [") == 5
    )  # 5 rates, each with its interval
    assert "| base | demo@generate |" in open_md and "(judge-m, 0 unparseable)" in open_md and open_md.count(" [") >= 4
    assert "| base | plain |" in split_md and "| base | demo@generate |" in split_md
    page = (report / "index.html").read_text()
    assert "Adversarial prefill" in page and "Open-form answers" in page and "Reasoning- vs knowledge-heavy" in page
    assert ServedModel.seen_auth and set(ServedModel.seen_auth) == {f"Bearer {secret}"}
    assert _files_containing(tmp_path, secret) == []


def test_medrlvr_eval_takes_the_probes_as_flags_and_prints_them(tmp_path, monkeypatch, capsys):
    from medrlvr.cli import main

    server = ThreadingHTTPServer(("127.0.0.1", 0), ServedModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-secret-123")
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    argv = ["eval", "--engine", "openai", "--base-url", url, "--model", "m", "--benchmarks", "demo@generate",
            "--limit", "4", "--adversarial-prefill", "--open-form", "--judge-model", "j", "--judge-options",
            f"base_url={url}", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    try:
        assert main(argv) == 0
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert "adversarial prefill: 0.000 [" in out and "took the pushed option 4/4" in out
    assert "open form on 4 (0 skipped): multiple choice" in out and ", judge 0." in out and "knowledge-heavy" in out
    assert _files_containing(tmp_path, "sk-cli-secret-123") == []
    argv = ["eval", "--model", "m", "--benchmarks", "demo@generate,demo", "--adversarial-prefill"]
    assert main(argv) == 2  # the loglik one is refused before any model loads
    assert "demo: setting 'adversarial_prefill' needs mode generate" in capsys.readouterr().err
