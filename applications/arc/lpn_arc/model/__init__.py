"""The LPN encoder and decoder transformers (Flax NNX), mirroring the official architecture.

Both networks are stacks of pre-LayerNorm transformer blocks (LayerNorm without scale or
bias, eps 1e-6; multi-head attention with bias-free E->E projections and a float32 softmax;
a bias-free MLP ``E -> mlp_factor * E -> E``). Positions are either learned row and column
tables added to the tokens (``positions="learned"``, the official model) or 2-D rotary
embeddings of the queries and keys in every attention layer (``positions="rope"``, see
:func:`apply_rope`).

* :mod:`~lpn_arc.model.layers`: normalisation, dropout, projections, grid positions;
* :mod:`~lpn_arc.model.rope`: 2-D rotary position embeddings;
* :mod:`~lpn_arc.model.attention`: attention with its key/value cache, and the block;
* :mod:`~lpn_arc.model.encoder`: q(z | x, y) of one pair;
* :mod:`~lpn_arc.model.decoder`: p(y | x, z), teacher-forced;
* :mod:`~lpn_arc.model.generation`: greedy decoding with a key/value cache;
* :mod:`~lpn_arc.model.input_cache`: the input-only mask's per-pair cache;
* :mod:`~lpn_arc.model.lpn`: :class:`LPNModel`, the two together;
* :mod:`~lpn_arc.model.adapters`: the model as pure functions of a parameter pytree, the
  form :mod:`latentsearch` takes, bundled by :func:`model_functions` (encode,
  log-likelihood, precompute, generate: one :class:`ModelFunctions` per graph).

:class:`ModelConfig` is defined in :mod:`lpn_arc.config` (the configuration of a run holds
it) and re-exported here. This package reads :mod:`lpn_arc.config` and :mod:`lpn_arc.data`
(the pair format) and nothing of training or evaluation.
"""

from lpn_arc.config import ModelConfig
from lpn_arc.model.adapters import (
    ModelFunctions,
    count_params,
    encode_fn,
    generate_fn,
    log_likelihood_exact_fn,
    log_likelihood_fn,
    model_functions,
    precompute_fn,
    split_model,
)
from lpn_arc.model.attention import Attention, Block, KVCache
from lpn_arc.model.decoder import Decoder
from lpn_arc.model.encoder import Encoder
from lpn_arc.model.generation import greedy_generate
from lpn_arc.model.input_cache import cached_logits, input_cache
from lpn_arc.model.lpn import LPNModel
from lpn_arc.model.rope import Rope, apply_rope, rope_tables

__all__ = [
    "Attention",
    "Block",
    "Decoder",
    "Encoder",
    "KVCache",
    "LPNModel",
    "ModelConfig",
    "ModelFunctions",
    "Rope",
    "apply_rope",
    "cached_logits",
    "count_params",
    "encode_fn",
    "generate_fn",
    "greedy_generate",
    "input_cache",
    "log_likelihood_exact_fn",
    "log_likelihood_fn",
    "model_functions",
    "precompute_fn",
    "rope_tables",
    "split_model",
]
