"""The transformers engine on a tiny random model (fast), and the OpenAI-compatible engine against a real
local HTTP server that fails on purpose."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import torch

from medrlvr.engines import Sampling, get_engine, truncate_at_stop
from medrlvr.engines.hf import TransformersEngine

PROMPTS = ["The patient has", "A 45-year-old man presents with chest pain and", [{"role": "user", "content": "Hi?"}],
           "Short", "x" * 60]  # fmt: skip


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    return TransformersEngine(str(tiny_checkpoint), dtype="fp32", batch_size=4, prefill_batch_size=2)


def test_generate_shapes_counts_and_determinism(engine):
    sampling = Sampling(max_new_tokens=12, temperature=1.0, seed=3)
    out = engine.generate(PROMPTS, n=3, sampling=sampling)
    assert [len(c) for c in out] == [3] * len(PROMPTS)
    for completions in out:
        for c in completions:
            assert 1 <= c.tokens <= 12 and c.finish_reason in ("stop", "length") and c.prompt_tokens > 0
            assert c.finish_reason == "stop" or c.tokens == 12
    again = engine.generate(PROMPTS, n=3, sampling=sampling)
    assert [[c.text for c in cs] for cs in out] == [[c.text for c in cs] for cs in again]
    other = engine.generate(PROMPTS, n=3, sampling=Sampling(max_new_tokens=12, temperature=1.0, seed=4))
    assert [[c.text for c in cs] for cs in out] != [[c.text for c in cs] for cs in other]


def test_fast_path_matches_transformers_generate(engine):
    """Growing cache + micro-batch prefill + grouped decode attention give transformers' own greedy output."""
    greedy = Sampling(max_new_tokens=20, temperature=0)
    ours = engine.generate(PROMPTS, sampling=greedy)
    tok = engine.tokenizer
    texts = [engine.render(p) for p in PROMPTS]
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        ref = engine.model.generate(**enc, max_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = [tok.decode(r[enc["input_ids"].shape[1] :], skip_special_tokens=True) for r in ref]
    assert [c[0].text for c in ours] == expected
    plain = TransformersEngine(None, model_obj=engine.model, tokenizer=tok, growing_cache=False, dtype="fp32")
    assert [c[0].text for c in plain.generate(PROMPTS, sampling=greedy)] == expected


def test_a_shared_prefix_is_prefilled_once_with_the_same_output(engine, monkeypatch):
    """Prompts that share a long prefix (the R1-Zero system prompt) prefill it once; greedy text and sampled
    log-probabilities are those of prefilling every prompt whole, and transformers' own generate."""
    import medrlvr.engines.cache as modeling

    head = "A conversation between user and assistant. The assistant thinks first, then answers. "
    prompts = [head + "Question: a 45-year-old man has chest pain.", head + "Q: fever?", head + "Which nerve?" * 3]
    ids = engine._encode([engine.render(p) for p in prompts])
    assert modeling.shared_prefix(ids) >= modeling.MIN_SHARED_PREFIX
    assert modeling.shared_prefix([ids[0]] * 3) == 0  # one prompt sampled n times: nothing to share across
    greedy = Sampling(max_new_tokens=16, temperature=0)
    shared = engine.generate(prompts, sampling=greedy)
    sampled = engine.generate_ids(ids, n=3, sampling=Sampling(max_new_tokens=12, temperature=1.0, seed=5),
                                  logprobs=True)  # fmt: skip
    monkeypatch.setattr(modeling, "MIN_SHARED_PREFIX", 10**9)
    assert modeling.shared_prefix(ids) == 0
    assert [c[0].text for c in engine.generate(prompts, sampling=greedy)] == [c[0].text for c in shared]
    whole = engine.generate_ids(ids, n=3, sampling=Sampling(max_new_tokens=12, temperature=1.0, seed=5),
                                logprobs=True)  # fmt: skip
    for a, b in zip(sum(sampled, []), sum(whole, [])):
        assert a.token_ids == b.token_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)
    tok = engine.tokenizer
    enc = tok([engine.render(p) for p in prompts], return_tensors="pt", padding=True)
    with torch.inference_mode():
        ref = engine.model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
    assert [c[0].text for c in shared] == [tok.decode(r[enc["input_ids"].shape[1] :], skip_special_tokens=True)
                                          for r in ref]  # fmt: skip


def test_n_samples_of_a_prompt_prefill_it_once_and_sample_as_k_copies_would(engine, monkeypatch):
    """A filter's k samples (GRPO's group): each prompt is prefilled once per decode batch and its cache copied to
    its k rows; the tokens and log-probabilities are those of prefilling each of the k rows whole (transformers'
    own cache, one padded prefill of every row) with the same seed, and a prompt's rows are not split over two
    batches where they fit in one."""
    prompts = ["The patient has a fever and", "A 45-year-old man presents with chest pain and", "Short"]
    ids = engine._encode([engine.render(p) for p in prompts])
    whole = TransformersEngine(None, model_obj=engine.model, tokenizer=engine.tokenizer, growing_cache=False,
                               dtype="fp32", batch_size=4)  # fmt: skip
    fed: list[int] = []  # rows of every prefill call (more than one token per row)
    forward = engine.model.forward

    def counting(*args, **kwargs):
        shape = kwargs["input_ids"].shape
        if shape[1] > 1:
            fed.append(shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", counting)
    sampling = Sampling(max_new_tokens=10, temperature=1.0, seed=11)
    ours = engine.generate_ids(ids, n=4, sampling=sampling, logprobs=True)  # batch_size 4: one prompt per batch
    assert sum(fed) == len(prompts)  # 3 prompts x 4 samples: 3 rows prefilled, not 12
    assert engine._batches([0, 1, 2, 3, 4, 5], [9] * 6, 4, group=2) == [[0, 1, 2, 3], [4, 5]]
    assert engine._batches([0, 1, 2, 3, 4, 5], [9] * 6, 4, group=3) == [[0, 1, 2], [3, 4, 5]]  # not [0..3], [4, 5]
    fed.clear()
    theirs = whole.generate_ids(ids, n=4, sampling=sampling, logprobs=True)
    assert sum(fed) == 4 * len(prompts)  # every row prefilled on its own
    assert len({tuple(r.token_ids) for r in sum(ours, [])}) > len(prompts)  # sampled: the k rows differ
    for a, b in zip(sum(ours, []), sum(theirs, [])):
        assert a.token_ids == b.token_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)


def test_stop_strings(engine):
    out = engine.generate(["The patient has"], n=4, sampling=Sampling(max_new_tokens=40, temperature=1.5, seed=1))
    text = out[0][0].text
    assert len(text) > 3
    stop = text[2]
    cut = engine.generate(
        ["The patient has"], n=4, sampling=Sampling(max_new_tokens=40, temperature=1.5, seed=1, stop=(stop,))
    )
    assert cut[0][0].text == text[: text.index(stop)] and cut[0][0].finish_reason == "stop"
    assert truncate_at_stop("abc</answer>tail", ["</answer>", "zz"]) == ("abc", True)
    assert truncate_at_stop("abc</answer>tail", ["</answer>", "zz"], include=True) == ("abc</answer>", True)
    assert truncate_at_stop("a</b></bc>", ["</bc>", "</b>"], include=True) == ("a</b>", True)
    keep = Sampling(max_new_tokens=40, temperature=1.5, seed=1, stop=(stop,), include_stop=True)
    kept = engine.generate(["The patient has"], n=4, sampling=keep)
    assert kept[0][0].text == text[: text.index(stop) + len(stop)] and kept[0][0].finish_reason == "stop"
    # GRPO rollouts (token ids): the completion ends with the token that completes the stop string
    ids = engine._encode(["The patient has"])
    rollout = engine.generate_ids(ids, n=4, sampling=Sampling(max_new_tokens=40, temperature=1.5, seed=1,
                                                              stop=(stop,), include_stop=True))[0][0]  # fmt: skip
    decoded = engine.tokenizer.decode(rollout.token_ids, skip_special_tokens=True)
    assert stop in decoded and stop not in engine.tokenizer.decode(rollout.token_ids[:-1], skip_special_tokens=True)


def test_loglikelihood_matches_a_full_forward(engine):
    pairs = [("The answer is", " B"), ("The answer is", "B"), ("Q: x\nA:", " yes it is"), ("The answer is", "C")]
    scores = engine.loglikelihood(pairs)
    tok = engine.tokenizer
    for (context, continuation), (score, greedy) in zip(pairs, scores):
        ctx = tok(context)["input_ids"]
        cont = tok(continuation, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = engine.model(torch.tensor([ctx + cont])).logits[0].float()
        logprobs = torch.log_softmax(logits, -1)
        expected = sum(float(logprobs[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
        assert score == pytest.approx(expected, abs=1e-4)
        assert greedy == all(int(logprobs[len(ctx) - 1 + i].argmax()) == t for i, t in enumerate(cont))


def _fed_tokens(engine):
    """A counter of the tokens ``engine``'s model is fed, and a function that removes it."""
    fed = [0]
    hook = engine.model.register_forward_pre_hook(
        lambda m, a, kw: fed.__setitem__(0, fed[0] + kw["input_ids"].numel()), with_kwargs=True
    )
    return fed, hook.remove


HEADER = "The following are multiple choice questions (with answers) about {}.\n\n"
SHOTS = "".join(f"Q{i}: what is {i}?\nA. one\nB. two\nAnswer: {'AB'[i % 2]}\n\n" for i in range(3))
QUESTIONS = ["Which nerve?", "A 45-year-old man has chest pain. Which artery is blocked?", "Why?", "x" * 40]


@pytest.mark.parametrize(
    ("contexts", "budget"),
    [
        ([HEADER.format("anatomy") + q + "\nAnswer:" for q in QUESTIONS], 4096),  # the header only
        ([HEADER.format("anatomy") + SHOTS + q + "\nAnswer:" for q in QUESTIONS], 4096),  # a few-shot block
        (
            [HEADER.format(s) + SHOTS + q + "\nAnswer:" for s in ("anatomy", "virology") for q in QUESTIONS]
            + ["Nothing shared\nAnswer:"],
            64,
        ),  # two prefixes, one prompt alone, one row per batch  # fmt: skip
    ],
    ids=["header", "fewshot", "two-subjects-small-batches"],
)
@pytest.mark.parametrize("in_place", [True, False], ids=["prefix-attention", "prefix-copied"])
def test_shared_prefixes_run_once_with_the_log_likelihoods_of_whole_prompts(engine, contexts, budget, in_place,
                                                                            monkeypatch):  # fmt: skip
    """Rows of differing lengths (left padding between the cached prefix and each row's tokens) score what each
    prompt scored whole does, single-token letters and multi-token continuations alike, at 1e-4 in fp32: on a CPU
    with the prefix read in place by :func:`medrlvr.engines.cache.prefix_attention` (two flash calls joined by
    their log-sum-exps), and as on a GPU, with the prefix copied into each row's cache."""
    from medrlvr.engines import cache

    calls = [0]
    attend = cache.prefix_attention
    monkeypatch.setattr(cache, "prefix_attention", lambda *a: calls.__setitem__(0, calls[0] + 1) or attend(*a))
    pairs = [(c, cont) for c in contexts for cont in (" A", " B", " C", " D", " two and more")]
    shared = TransformersEngine(None, model_obj=engine.model, tokenizer=engine.tokenizer, loglik_tokens=budget,
                                prefix_in_place=in_place)  # fmt: skip
    whole = TransformersEngine(None, model_obj=engine.model, tokenizer=engine.tokenizer, share_prefixes=False)
    fed, remove = _fed_tokens(engine)
    ours = shared.loglikelihood(pairs)
    assert (calls[0] > 0) == in_place  # the path named is the path taken
    shared_tokens, fed[0] = fed[0], 0
    reference = whole.loglikelihood(pairs)
    remove()
    assert shared_tokens < fed[0] - (len(contexts) - 3) * len(HEADER)  # each prefix ran once (or a few times)
    for (a, greedy_a), (b, greedy_b) in zip(ours, reference):
        assert a == pytest.approx(b, abs=1e-4) and greedy_a == greedy_b
    assert len({round(a, 3) for a, _ in ours}) > len(contexts)  # the scores differ: the comparison means something


def test_prefix_groups_find_the_header_and_the_shots():
    from medrlvr.engines.cache import prefix_groups

    header = list(range(100, 120))
    shots = list(range(200, 300))
    seqs = [header + [1, 2, 3], header + [1, 2, 4, 5], header + shots + [6], header + shots + [7, 8], [9] * 30]
    groups = dict((tuple(members), p) for p, members in prefix_groups(seqs, cost=16))
    assert groups == {(0, 1): 22, (2, 3): 120, (4,): 0}  # [1, 2] is shared too: 22 tokens, not only the header
    assert prefix_groups([header + [1], header + [2]], cost=100) == [(0, [0, 1])]  # 20 tokens saved: not worth it
    assert prefix_groups([[1] * 5 + [2], [1] * 5 + [3]], cost=0) == [(0, [0, 1])]  # under min_prefix
    assert prefix_groups([[5]]) == [(0, [0])]


def _bf16_model_with_close_letters(engine, context: str):
    """A bf16 copy of the tiny model whose head gives " C" a logit above " B" by less than bf16's step (at the end
    of ``context``) and " D" exactly the logit of " B"."""
    import copy

    model = copy.deepcopy(engine.model).to(torch.bfloat16)
    model.config.tie_word_embeddings = False
    tok = engine.tokenizer
    b, c, d = (tok(letter, add_special_tokens=False)["input_ids"][-1] for letter in (" B", " C", " D"))
    seen = {}
    hook = model.get_output_embeddings().register_forward_hook(lambda m, a, o: seen.setdefault("h", a[0][0, -1]))
    with torch.inference_mode():
        model(torch.tensor([tok(context)["input_ids"]]), logits_to_keep=1)
    hook.remove()
    h = seen["h"].float()
    head = torch.nn.Linear(h.shape[0], len(tok), bias=False).to(torch.bfloat16)
    with torch.no_grad():
        head.weight.copy_(model.get_output_embeddings().weight)
        row = 0.5 * torch.sign(h)  # logits near sum |h| / 2: large, where bf16's step is coarse
        head.weight[b] = row
        head.weight[d] = row
        j = int(h.abs().argmax())
        head.weight[c] = row
        head.weight[c, j] = row[j] + torch.sign(h[j]) * 2**-8  # one bf16 step of a weight: far below a logit's
    model.set_output_embeddings(head)
    return model, (b, c, d)


def test_letters_closer_than_a_bf16_step_are_told_apart_and_exact_ties_stay_ties(engine):
    context = "Question: which? A. x B. y C. z D. w\nAnswer:"
    model, (b, c, d) = _bf16_model_with_close_letters(engine, context)
    tok = engine.tokenizer
    with torch.inference_mode():
        bf16_logits = model(torch.tensor([tok(context)["input_ids"]]), logits_to_keep=1).logits[0, -1]
    assert bf16_logits[b] == bf16_logits[c] == bf16_logits[d]  # what the old scorer saw: a three-way tie
    scorer = TransformersEngine(None, model_obj=model, tokenizer=tok)
    (lb, _), (lc, _), (ld, _) = scorer.loglikelihood([(context, " B"), (context, " C"), (context, " D")])
    assert lc > lb and lb == ld
    assert model.get_output_embeddings().weight.dtype == torch.bfloat16  # the model itself is left as it was


def test_sampling_validation_and_unknown_engine():
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)
    with pytest.raises(ValueError, match="unknown engine"):
        get_engine("nope", "x")


# --- OpenAI-compatible engine against a real local server that misbehaves --------------------------------


class FlakyServer(BaseHTTPRequestHandler):
    failures_left = 2
    seen_auth: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen_auth.append(self.headers.get("Authorization"))
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"busy")
            return
        if body.get("echo"):  # vLLM-style echo: one entry per prompt token, aligned, first one null
            text = body["prompt"]
            pieces = [text[:3], text[3:-6], text[-6:]]
            offsets = [0, 3, len(text) - 6]
            token_logprobs = [None, -1.0, -0.5 if text.endswith(" Paris") else -4.0]
            top = [None, {"x": -1.0}, {" Paris": -0.5}]
            choices = [
                {
                    "text": text,
                    "logprobs": {
                        "tokens": pieces,
                        "text_offset": offsets,
                        "token_logprobs": token_logprobs,
                        "top_logprobs": top,
                    },
                }
            ]
        elif "messages" in body:
            choices = [
                {
                    "message": {"content": f"echo {body['messages'][-1]['content']} </answer> tail"},
                    "finish_reason": "stop",
                }
                for _ in range(body.get("n", 1))
            ]
        else:
            choices = [{"text": f"echo {body['prompt']}", "finish_reason": "length"} for _ in range(body.get("n", 1))]
        payload = json.dumps(
            {"choices": choices, "usage": {"completion_tokens": 4 * len(choices), "prompt_tokens": 3}}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


def test_openai_engine_retries_and_keeps_the_key_secret(monkeypatch, caplog):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("MEDRLVR_TEST_KEY", "sk-secret-value")
        eng = get_engine(
            "openai",
            "served-model",
            base_url=f"http://127.0.0.1:{server.server_port}/v1",
            api_key_env="MEDRLVR_TEST_KEY",
            concurrency=2,
            backoff=0.01,
        )
        caplog.set_level("DEBUG")
        out = eng.generate(
            [[{"role": "user", "content": "q1"}], "plain"],
            n=2,
            sampling=Sampling(max_new_tokens=8, stop=("</answer>",)),
        )
        assert [c.text for c in out[0]] == ["echo q1 ", "echo q1 "] and out[0][0].finish_reason == "stop"
        assert out[1][0].text == "echo plain" and out[1][0].finish_reason == "length" and out[1][0].tokens == 4
        assert "Bearer sk-secret-value" in FlakyServer.seen_auth
        assert "retrying" in caplog.text and "sk-secret-value" not in caplog.text
        (paris, g1), (london, g2) = eng.loglikelihood([("The capital is", " Paris"), ("The capital is", " London")])
        assert (paris, g1) == (-0.5, True) and (london, g2) == (-4.0, False)
        FlakyServer.failures_left = 100
        eng.retries = 1
        with pytest.raises(Exception) as info:
            eng.generate(["x"])
        assert "HTTP 503" in str(info.value) and "sk-secret" not in str(info.value)
    finally:
        server.shutdown()


# --- issue 14: a server's refusal is one line, without the key -----------------------------------------------


class EchoingAuthServer(BaseHTTPRequestHandler):
    """Refuses every request with 401 and echoes the request's headers back, as some proxies do."""

    seen_auth: ClassVar[list] = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen_auth.append(self.headers.get("Authorization"))
        self.send_response(401)
        self.end_headers()
        echoed = {"error": "bad key", "you sent": self.headers.get("Authorization"), "headers": dict(self.headers)}
        self.wfile.write(json.dumps(echoed, indent=2).encode())

    def log_message(self, *args):
        pass


def test_openai_refusals_are_one_line_without_the_key(monkeypatch, capsys):
    import socket

    from medrlvr.cli import main
    from medrlvr.engines.openai_api import ServerError

    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingAuthServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    try:
        with pytest.raises(ServerError) as info:
            get_engine("openai", "m", base_url=url).generate(["x"])
        message = str(info.value)
        assert "HTTP 401" in message and "\n" not in message and "sk-secret" not in message and "***" in message
        assert EchoingAuthServer.seen_auth[-1] == "Bearer sk-secret-value-123"
        with pytest.raises(ServerError, match="no API key was sent"):  # api_key_env=None: no header at all
            get_engine("openai", "m", base_url=url, api_key_env=None).generate(["x"])
        assert EchoingAuthServer.seen_auth[-1] is None
        capsys.readouterr()
        argv = ["eval", "--engine", "openai", "--base-url", url, "--model", "m", "--benchmarks", "demo", "--mode",
                "generate", "--limit", "1"]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "HTTP 401" in err and "sk-secret" not in err
    finally:
        server.shutdown()
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServerError, match=r"cannot reach the server .* after 1 attempts") as info:
        get_engine("openai", "m", base_url=f"http://127.0.0.1:{port}/v1", retries=0).generate(["x"])
    assert "\n" not in str(info.value) and "sk-secret" not in str(info.value)
