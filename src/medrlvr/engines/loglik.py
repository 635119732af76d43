"""Log-likelihood scoring for medrlvr's transformers engine (:class:`medrlvr.engines.hf.TransformersEngine`): the
option positions scored from fp32 logits (:func:`fp32_head`: the trunk keeps its dtype, and bf16's 1/16-nat steps
no longer tie options), a prefix that contexts share (a benchmark's header, its few-shot block, a question's stem
under circular evaluation) run once into a KV cache their rows start from (:func:`medrlvr.engines.cache.prefix_groups`;
many groups' prefixes in one pass), and batches sized by tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from . import Prompt
from .cache import DECODE_ATTENTION, attend_to_prefix, growing_cache, prefix_groups, supports_growing_cache

# Tokens of one log-likelihood forward pass (fed, padding included). On a 2-core AVX512 CPU (2026-12-06, SmolLM2-135M,
# 300 MMLU medical questions in fp32) 1024 scored 0-shot 1.2-1.4x and 5-shot 1.15-1.25x faster than 4096 (512-1024
# alike, 8192 slower): activations that fit the caches. GPUs keep 4096 (not measured here).
LOGLIK_TOKENS = {"cpu": 1024}
LOGLIK_TOKENS_ELSEWHERE = 4096


class LoglikScoring:
    """The engine's ``loglikelihood`` and its helpers; the engine provides ``model``, ``tokenizer``, ``device``,
    ``render``, ``_encode``, ``_left_pad``, ``_cache_arg``, ``loglik_tokens``, ``batch_size``, ``share_prefixes``
    and ``prefix_in_place``."""

    def loglikelihood(self, pairs: Sequence[tuple[Prompt, str]]) -> list[tuple[float, bool]]:
        """Sum of log-probabilities of each continuation's tokens, and whether each was the argmax.

        Context and continuation are tokenized separately and joined (as lm-evaluation-harness does), so the
        continuation's tokens are the same whatever the context ends with. Only the continuation's positions get
        logits (a full 49k-vocabulary logit tensor for 64 rows of 500 tokens would be 6 GB), from an fp32 head
        (:func:`fp32_head`). Pairs that share a context and whose continuation is one token (" A", " B", ... for
        multiple choice) share one forward pass. Contexts that share a prefix (a benchmark's header and few-shot
        block) run it once: it goes into a KV cache that every row of their batches starts from
        (:func:`medrlvr.engines.cache.prefix_groups`); the prefixes of many groups (a question's stem, which its
        rotations under circular evaluation share) run together in one left-padded pass
        (:meth:`_prefix_bundles`); on a CPU the rows attend to that cache in place
        (:func:`medrlvr.engines.cache.prefix_attention`), elsewhere it is copied into each row's cache. Batches hold
        rows of similar length up to ``loglik_tokens``
        tokens: a CPU runs a forward pass of a few thousand tokens near its GEMM speed, and more only grows the
        activations."""
        encoded = []
        for context, continuation in pairs:
            ctx = tuple(self._encode([self.render(context)])[0])
            cont = tuple(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])
            if not cont:
                raise ValueError(f"empty continuation {continuation!r}")
            encoded.append((ctx, cont))
        # One sequence per distinct (context, multi-token continuation) or per context for single tokens.
        sequences: dict[tuple, list[int]] = {}
        for k, (ctx, cont) in enumerate(encoded):
            key = (ctx, None) if len(cont) == 1 else (ctx, cont)
            sequences.setdefault(key, []).append(k)
        keys = list(sequences)
        # tokens fed: the context, plus all but the last continuation token; kept: the positions predicting it
        fed = [list(ctx) + list(cont[:-1]) if cont else list(ctx) for ctx, cont in keys]
        if self.share_prefixes and supports_growing_cache(self.model):
            # a prefix ends before the context's last token: the positions scored are never in the cache
            groups = prefix_groups([ctx[:-1] for ctx, _ in keys])
        else:
            groups = [(0, list(range(len(keys))))]
        results: dict[int, tuple[float, bool]] = {}
        # Groups whose prefixes run together in one forward pass (left-padded), their rows then in batches over
        # those caches: a question asked under several orders of its options is a group of its own, and a call per
        # group would cost a forward pass per question (on a busy CPU each call's overhead is what costs)
        for bundle in self._prefix_bundles(groups):
            width = max(shared for shared, _ in bundle)
            head = prefix_mask = None
            if width:
                head, prefix_mask = self._run_prefixes([fed[members[0]][:shared] for shared, members in bundle])
            rows = [(g, m) for g, (_, members) in enumerate(bundle) for m in members]
            rows.sort(key=lambda gm: -(len(fed[gm[1]]) - bundle[gm[0]][0]))  # little padding within a batch
            for batch in self._loglik_batches([len(fed[m]) - bundle[g][0] for g, m in rows], width):
                chosen = [rows[i] for i in batch]
                keep = max(len(keys[m][1] or (0,)) for _, m in chosen)
                seqs = [fed[m][bundle[g][0] :] for g, m in chosen]
                where = [(g, bundle[g][0]) for g, _ in chosen]
                logprobs = self._last_logprobs(seqs, keep, head, width, where, prefix_mask)
                for row, (_, m) in enumerate(chosen):
                    for k in sequences[keys[m]]:
                        target = encoded[k][1]
                        lp = logprobs[row, keep - len(target) :]
                        total = float(sum(lp[i, t] for i, t in enumerate(target)))
                        greedy = all(int(lp[i].argmax()) == t for i, t in enumerate(target))
                        results[k] = (total, greedy)
        return [results[k] for k in range(len(pairs))]

    def _prefix_bundles(self, groups: list[tuple[int, list[int]]]) -> list[list[tuple[int, list[int]]]]:
        """The prefix groups in bundles whose prefixes run in one forward pass: a group without a prefix alone;
        the others by prefix length, a bundle holding at most ``loglik_tokens`` padded prefix tokens and
        ``batch_size`` prefixes, none under half the bundle's longest."""
        bundles = [[(0, members)] for shared, members in groups if not shared]
        bundle: list[tuple[int, list[int]]] = []
        for shared, members in sorted(((s, m) for s, m in groups if s), key=lambda g: -g[0]):
            longest = bundle[0][0] if bundle else 0
            if bundle and ((len(bundle) + 1) * longest <= self.loglik_tokens and len(bundle) < self.batch_size
                           and 2 * shared >= longest):  # fmt: skip
                bundle.append((shared, members))
            else:
                if bundle:
                    bundles.append(bundle)
                bundle = [(shared, members)]
        return bundles + ([bundle] if bundle else [])

    def _loglik_batches(self, widths: list[int], shared: int) -> list[list[int]]:
        """Rows (longest first) in batches of at most ``loglik_tokens`` padded tokens fed, ``batch_size`` rows and
        ``batch_tokens`` prefix and row positions (what each row attends to: on a GPU the shared prefix is copied
        into each row's cache), and a new batch when a row is under half the batch's width."""
        batches: list[list[int]] = []
        width = 0
        for i, w in enumerate(widths):
            rows = len(batches[-1]) + 1 if batches else 0
            if batches and (
                rows <= self.batch_size
                and rows * width <= self.loglik_tokens
                and rows * (shared + width) <= self.batch_tokens
                and 2 * w >= width
            ):
                batches[-1].append(i)
            else:
                batches.append([i])
                width = w
        return batches

    def _run_prefixes(self, prefixes: list[list[int]]):
        """A growing cache holding ``prefixes`` (one row each, left-padded to the longest) and their attention mask,
        for :meth:`_last_logprobs` to start its rows from."""
        import torch

        ids, mask, positions = self._left_pad(prefixes)
        head = growing_cache(self.model, ids.shape[1])
        with torch.inference_mode():
            self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                       **{self._cache_arg: head})  # fmt: skip
        return head, mask

    def _last_logprobs(self, seqs: list[list[int]], keep: int, head=None, shared: int = 0, where=None,
                       prefix_mask=None):  # fmt: skip
        """Log-softmax over the vocabulary at the last ``keep`` positions of each (left-padded) sequence; with
        ``head``, a cache of ``shared`` (padded) prefix positions each sequence continues: sequence i continues
        the prefix row ``where[i][0]`` of real length ``where[i][1]`` (the layout of :meth:`_prefill`: the prefix
        in the first columns, then each row's tokens left-padded)."""
        import torch

        ids, mask, positions = self._left_pad(seqs)
        cache = {"use_cache": False}
        attend = contextlib.nullcontext()
        if head is not None:
            index = torch.tensor([g for g, _ in where], device=self.device)
            positions = positions + torch.tensor([n for _, n in where], device=self.device)[:, None]
            in_place = (self.prefix_in_place and self.device == "cpu"
                        and getattr(self.model.config, "_attn_implementation", None) == DECODE_ATTENTION)  # fmt: skip
            if in_place:
                attend = attend_to_prefix(head, index, prefix_mask)  # the prefix read in place, not copied per row
            else:
                grown = growing_cache(self.model, shared + ids.shape[1])
                for grow, cached in zip(grown.layers, head.layers):
                    grow.reserve(cached.keys, cached.values, len(seqs), shared)
                    grow.write(cached.keys.index_select(0, index), cached.values.index_select(0, index), 0)
                mask = torch.cat([prefix_mask.index_select(0, index).to(mask.dtype), mask], dim=1)
                cache = {"use_cache": True, self._cache_arg: grown}
        with torch.inference_mode(), fp32_head(self.model), attend:
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep,
                                **cache).logits  # fmt: skip
        return torch.log_softmax(logits[:, -keep:].float(), dim=-1)


@contextlib.contextmanager
def fp32_head(model):
    """Within the block, ``model``'s output head computes its logits in fp32 (the trunk keeps its own dtype).

    bf16 logits of a 135M-0.5B model sit around 10-30 nats, where bf16's step is 1/16 to 1/8: option letters that
    differ by less tie, and a tie went to whichever letter came first (6 of 200 MMLU questions for
    Qwen2.5-Coder-0.5B, 17 more within one step). The head is one matmul at the few positions that are scored, so
    recomputing it from the same hidden state with an fp32 copy of its weights costs little. The copy is made per
    block, never kept: an engine around a model that is being trained must not read stale weights."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is None or weight.dtype == torch.float32:
        yield
        return
    weight32 = weight.float()
    bias = getattr(head, "bias", None)
    bias32 = bias.float() if bias is not None else None

    def in_fp32(module, args, output):  # replaces the low-precision logits the head just computed
        return torch.nn.functional.linear(args[0].float(), weight32, bias32)

    handle = head.register_forward_hook(in_fp32)
    try:
        yield
    finally:
        handle.remove()
