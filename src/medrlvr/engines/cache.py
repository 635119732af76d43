"""The decode cache of medrlvr's transformers engine: a DynamicCache whose layers preallocate their buffers and fill
them in place (:class:`GrowingLayer`, which alone touches its buffers: ``reserve``, ``write``, ``update``), the
shared-prefix rule the engine's prefill and the GRPO loss both use, and the decode attention that reads the
buffers without copying them. Log-likelihood scoring groups its prompts by the prefixes they share
(:func:`prefix_groups`) and runs each prefix once.

Why a growing cache. Decoding is many small steps, and transformers' default cache grows by ``torch.cat`` every
step, re-copying the whole cache: with batch 64 that copy was two thirds of a decode step on a CPU (SmolLM2-135M).
``GrowingLayer`` preallocates and writes in place."""

from __future__ import annotations

import contextlib
import contextvars
import functools

# --- the KV cache -------------------------------------------------------------------------------------------

MIN_SHARED_PREFIX = 16  # tokens every prompt of a batch starts with before that prefix runs once for all of them


def shared_prefix(seqs, keep: int = 1) -> int:
    """How many leading tokens of ``seqs`` to run once for all of them (the engine's prefill, the GRPO loss): the
    prefix they all share, leaving each at least ``keep`` tokens of its own; 0 when it is shorter than
    :data:`MIN_SHARED_PREFIX` or when the sequences are all one (nothing to share across)."""
    first, shortest = seqs[0], min(map(len, seqs)) - keep
    if all(seq == first for seq in seqs):
        return 0
    n = 0
    while n < shortest and all(seq[n] == first[n] for seq in seqs):
        n += 1
    return n if n >= MIN_SHARED_PREFIX else 0


PREFIX_GROUP_COST = 64  # tokens' worth of compute one more prefix group costs: a forward call, a smaller batch
PREFIX_MAX_DEPTH = 64  # nested prefix levels looked into (real prompts have two: a benchmark's header, its shots)


def prefix_groups(seqs, min_prefix: int = 8, cost: int = PREFIX_GROUP_COST) -> list[tuple[int, list[int]]]:
    """The sequences ``seqs`` (token lists) in groups that each run a shared prefix once: ``(prefix length,
    indices)``, the indices in sorted order; one group of prefix length 0 holds every sequence that shares nothing
    worth running once (log-likelihood scoring: an MMLU subject's header, its few-shot block).

    Sorted, sequences that share a prefix are neighbours. A run of them sharing ``p`` tokens saves ``(n - 1) * p``
    tokens by running the prefix once, less ``cost``; where it splits into runs that share longer prefixes (all of
    MMLU shares "The following are ... about", a subject also its name and its shots), the split is taken when it
    saves more. Prefixes shorter than ``min_prefix`` are not worth a group of their own.

    >>> prefix_groups([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 11], [9]], cost=0)
    [(9, [0, 1]), (0, [2])]"""
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i]))
    lcp = [_common(seqs[a], seqs[b]) for a, b in zip(order, order[1:])]

    def best(lo: int, hi: int, depth: int) -> tuple[list[tuple[int, int, int]], int]:
        """The groups of ``order[lo:hi]`` (prefix, lo, hi) and the tokens they save."""
        if hi - lo < 2:
            return [(0, lo, hi)], 0
        p = min(lcp[lo : hi - 1])
        here = (hi - lo - 1) * p - cost if p >= min_prefix else 0
        whole = ([(p, lo, hi)], here) if here > 0 else ([(0, lo, hi)], 0)
        cuts = [lo] + [j + 1 for j in range(lo, hi - 1) if lcp[j] == p] + [hi]
        if depth >= PREFIX_MAX_DEPTH or len(cuts) - 1 == hi - lo:  # nothing longer is shared below
            return whole
        parts, saved = [], 0
        for a, b in zip(cuts, cuts[1:]):
            groups, s = best(a, b, depth + 1)
            parts += groups
            saved += s
        return (parts, saved) if saved > whole[1] else whole

    groups, _ = best(0, len(order), 0)
    out = [(p, [order[j] for j in range(lo, hi)]) for p, lo, hi in groups if p]
    rest = [order[j] for p, lo, hi in groups if not p for j in range(lo, hi)]
    return out + ([(0, rest)] if rest else [])


def _common(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def cache_argument(model) -> str:
    """The keyword a model's forward takes its KV cache by: ``cache`` (transformers 5.x renamed it and deprecates
    ``past_key_values``, to be removed in 5.40) or ``past_key_values`` on older versions."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model forwards **kwargs
    try:
        parameters = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in parameters else "past_key_values"


def supports_growing_cache(model) -> bool:
    """True for models whose layers all attend fully (sliding-window layers keep transformers' own cache)."""
    from transformers import DynamicCache

    layer_types = getattr(model.config, "layer_types", None) or []
    sliding = any(t != "full_attention" for t in layer_types) or getattr(model.config, "sliding_window", None)
    return not sliding and hasattr(DynamicCache(), "layers")


def growing_cache(model, capacity: int = 0):
    """A DynamicCache whose layers preallocate and fill in place instead of concatenating every step; ``capacity``
    is the length to allocate at once (prompt + new tokens, when known: decode attention reads the whole buffer).
    None for a model that :func:`supports_growing_cache` refuses."""
    from transformers import DynamicCache

    if not supports_growing_cache(model):
        return None
    layer = _growing_layer_class()
    cache = DynamicCache()
    cache.layers = [layer(capacity) for _ in range(model.config.num_hidden_layers)]
    return cache


@functools.cache
def _growing_layer_class():
    """``GrowingLayer``, built on first use (transformers is imported only when a model runs)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def __init__(self, capacity: int = 0):
            super().__init__()
            self.capacity = capacity
            self._k = self._v = None
            self._n = 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self._k = self._v = None
                self._n = 0
            need = self._n + key_states.shape[-2]
            if self._k is None or need > self._k.shape[-2]:
                if self._k is None and need <= self.capacity:
                    size = self.capacity
                else:
                    size = max(need + 256, 2 * (0 if self._k is None else self._k.shape[-2]))
                # zeros, not empty: decode attention reads the unfilled tail (masked, but 0 * NaN is NaN)
                k = key_states.new_zeros(*key_states.shape[:-2], size, key_states.shape[-1])
                v = value_states.new_zeros(*value_states.shape[:-2], size, value_states.shape[-1])
                if self._n:
                    k[..., : self._n, :] = self._k[..., : self._n, :]
                    v[..., : self._n, :] = self._v[..., : self._n, :]
                self._k, self._v = k, v
            self._k[..., self._n : need, :] = key_states
            self._v[..., self._n : need, :] = value_states
            self._n = need
            self.keys, self.values = self._k[..., :need, :], self._v[..., :need, :]
            return self.keys, self.values

        def reserve(self, key_like, value_like, rows: int, filled: int):
            """Allocate the buffers for ``rows`` rows whose first ``filled`` positions the caller writes in place
            (the prefill lays its micro-batches' caches straight into them: no second full-size copy)."""
            self.lazy_initialization(key_like, value_like)
            size = max(self.capacity, filled + 1)
            self._k = key_like.new_zeros(rows, key_like.shape[1], size, key_like.shape[-1])
            self._v = value_like.new_zeros(rows, value_like.shape[1], size, value_like.shape[-1])
            self._n = filled
            self.keys, self.values = self._k[..., :filled, :], self._v[..., :filled, :]

        def write(self, keys, values, start: int, rows=None):
            """Write ``keys``/``values`` into positions ``start:start + len`` of the buffers (of ``rows``, an index
            tensor, or every row): how a shared prefix or a prefilled micro-batch is laid into a reserved cache."""
            end = start + keys.shape[-2]
            where = (slice(None) if rows is None else rows, slice(None), slice(start, end))
            self._k[where] = keys
            self._v[where] = values

        def batch_select_indices(self, indices):  # drop finished rows, keeping the spare capacity
            if self.is_initialized and self._k is not None:
                self._k, self._v = self._k[indices], self._v[indices]
                self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]

    return GrowingLayer


# --- decode attention ---------------------------------------------------------------------------------------


DECODE_ATTENTION = "medrlvr_decode"  # the attn_implementation name of decode_attention (and of prefix attention)


def decode_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention for one new token per row without copying the cache.

    transformers' SDPA path repeats grouped key/value heads whenever a mask is given (and batches with left
    padding always have one): for SmolLM2 (9 query heads over 3 key/value heads) that copies the whole cache
    three times per layer per step. Here the query heads are grouped onto their key/value head instead.
    Longer queries (prefill) go to SDPA as usual."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix = _PREFIX.get()
    if prefix is not None and not dropout:
        return prefix_attention(module, query, key, value, attention_mask, scaling, prefix)
    if query.shape[2] != 1 or dropout:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[-2]
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    # The growing cache hands over views of the filled part of a preallocated buffer. Those views are not
    # contiguous, and CPU matmuls copy them whole every step; the whole buffer is contiguous, so attend over
    # it and mask the unfilled tail instead (a little more arithmetic, no copy).
    capacity = _buffer_length(key)
    if capacity > length and _buffer_length(value) == capacity:
        key = key.as_strided((batch, kv_heads, capacity, dim), key.stride())
        value = value.as_strided((batch, kv_heads, capacity, dim), value.stride())
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # batch, kv_heads, group, capacity
    if attention_mask is not None:
        mask = attention_mask[:, :, -1:, :length]  # batch, 1, 1, length
        if mask.dtype == torch.bool:
            scores[..., :length] = scores[..., :length].masked_fill(~mask, float("-inf"))
        else:
            scores[..., :length] += mask.float()
    if scores.shape[-1] > length:
        scores[..., length:] = float("-inf")
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # batch, kv_heads, group, dim
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


# --- shared-prefix attention -------------------------------------------------------------------------------

_PREFIX: contextvars.ContextVar = contextvars.ContextVar("medrlvr_prefix", default=None)


@contextlib.contextmanager
def attend_to_prefix(head, rows, prefix_mask):
    """Within the block, a CPU forward pass of a model loaded with :func:`register_decode_attention` attends, besides
    its own tokens, to the cached prefix ``head`` (a cache of G left-padded prefixes; ``prefix_mask`` (G, P) marks
    their real positions) without copying it: row i of the batch continues prefix ``rows[i]`` (an index tensor).
    The rows' position ids must start after their prefix's real length (the caller's: the cache is not in the
    model's view), and the pass runs without a cache of its own (``use_cache=False``)."""
    lengths = prefix_mask.sum(-1).tolist()
    groups = [(g, (rows == g).nonzero().flatten(), int(lengths[g])) for g in rows.unique().tolist()]
    token = _PREFIX.set({"head": head, "groups": groups, "mask": None})
    try:
        yield
    finally:
        _PREFIX.reset(token)


def prefix_attention(module, query, key, value, attention_mask, scaling, prefix):
    """Attention of each row's W tokens over its shared prefix's cached positions and its own causal tokens, as two
    flash-attention calls joined by their log-sum-exps (CPU only: torch's CPU flash kernel returns them).

    Why not the layout decoding uses (the prefix copied into every row's cache, then SDPA): for a 5-shot MMLU
    prompt the prefix is ~600 tokens against a row's ~100, so every batch copied the prefix's keys and values into
    every row, and SDPA repeated the grouped key/value heads over all of it (3x for SmolLM2) whenever a padding mask
    is given (always, with left padding): the copies were 12% of 5-shot scoring's time (torch profiler, 2-core
    AVX512 CPU). Here the query heads are grouped onto their key/value head (as in :func:`decode_attention`), the
    rows of one prefix meet its keys in one call with no mask and no copy of the prefix, and each row's own tokens
    in a second, masked call; softmax over the union is the two outputs weighted by ``exp(lse_i - lse)``. (Scores
    materialised instead, matmul-softmax-matmul, were slower than SDPA: the exponentials over rows x W x (P + W)
    fp32 scores are memory-bound.)"""
    import torch

    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    layer = prefix["head"].layers[module.layer_idx]
    batch, heads, width, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(batch, kv_heads, group * width, dim)  # query head h reads key/value head h // group
    mask = prefix["mask"]
    if mask is None:  # the same for every layer of the pass (the context lasts one pass): built once
        if attention_mask is None:  # no padding: causal only
            allowed = torch.ones(width, width, dtype=torch.bool, device=query.device).tril_().expand(batch, 1, -1, -1)
        else:
            allowed = attention_mask[..., -width:]
        if allowed.dtype == torch.bool:
            mask = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device)
            mask.masked_fill_(~allowed, -torch.inf)
        else:
            mask = allowed.to(query.dtype)
        mask = mask[:, :, None].expand(batch, 1, group, width, width).reshape(batch, 1, group * width, width)
        prefix["mask"] = mask
    own, own_lse = flash(q, key, value, 0.0, False, attn_mask=mask, scale=scale)
    past = torch.empty_like(own)
    past_lse = torch.empty_like(own_lse)
    for g, mine, length in prefix["groups"]:
        n = len(mine)
        qg = q.index_select(0, mine).transpose(0, 1).reshape(1, kv_heads, n * group * width, dim)
        keys, values = (t[g : g + 1, :, t.shape[2] - length :] for t in (layer.keys, layer.values))  # real ones
        out, lse = flash(qg, keys, values, 0.0, False, scale=scale)
        past.index_copy_(0, mine, out.view(kv_heads, n, group * width, dim).transpose(0, 1))
        past_lse.index_copy_(0, mine, lse.view(kv_heads, n, group * width).transpose(0, 1))
    top = torch.maximum(own_lse, past_lse)
    w_own, w_past = (own_lse - top).exp_(), (past_lse - top).exp_()
    total = w_own + w_past
    out = (own.float() * (w_own / total)[..., None]).add_(past.float() * (w_past / total)[..., None])
    return out.to(value.dtype).view(batch, heads, width, dim).transpose(1, 2).contiguous(), None


def _buffer_length(view) -> int:
    """The length of the preallocated buffer behind a growing-cache view (its own length if it is contiguous)."""
    batch, heads, length, dim = view.shape
    stride = view.stride()
    if stride[3] != 1 or stride[2] != dim or stride[1] % dim or stride[0] != heads * stride[1]:
        return length
    capacity = stride[1] // dim
    storage = view.untyped_storage().nbytes() // view.element_size() - view.storage_offset()
    return capacity if capacity >= length and storage >= batch * heads * capacity * dim else length


def register_decode_attention() -> str:
    """Register :func:`decode_attention` with transformers; returns the ``attn_implementation`` name to pass."""
    from transformers import AttentionInterface

    AttentionInterface.register(DECODE_ATTENTION, decode_attention)
    try:
        from transformers import AttentionMaskInterface
        from transformers.masking_utils import sdpa_mask

        AttentionMaskInterface.register(DECODE_ATTENTION, sdpa_mask)
    except ImportError:
        pass
    return DECODE_ATTENTION
