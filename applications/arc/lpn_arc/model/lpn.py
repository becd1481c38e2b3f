"""The LPN model: the encoder and decoder of one pair, as one Flax NNX module.

Every method works on ONE pair (no pair or batch axis); callers ``jax.vmap``. The
functional adapters of :mod:`lpn_arc.model.adapters` expose it as pure functions of an
explicit parameter pytree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from latentsearch import DiagGaussian
from lpn_arc.config import ModelConfig
from lpn_arc.data import NUM_COLOURS, Pair
from lpn_arc.model.decoder import Decoder
from lpn_arc.model.encoder import Encoder
from lpn_arc.model.generation import greedy_generate
from lpn_arc.model.input_cache import cached_logits, input_cache
from lpn_arc.model.layers import valid_cells

__all__ = ["LPNModel", "check_pair", "check_shape"]


class LPNModel(nnx.Module):
    """The LPN encoder and decoder.

    Example:
        >>> from flax import nnx
        >>> from lpn_arc.model import split_model
        >>> cfg = ModelConfig(5, 5, 4, 1, 1, num_heads=2, head_dim=8, mlp_factor=1.0)
        >>> model = LPNModel(cfg, rngs=nnx.Rngs(0))
        >>> graphdef, params = split_model(model)
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
        """Builds the encoder and decoder.

        Args:
            config: the model configuration.
            rngs: parameter initialisation RNGs (``nnx.Rngs(seed)``).
        """
        if not isinstance(config, ModelConfig):
            raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = Encoder(config, rngs=rngs)
        self.decoder = Decoder(config.decoder_config(), rngs=rngs)

    def encode(self, pair: Pair, *, dropout_key: jax.Array | None = None) -> DiagGaussian:
        """Posterior q(z | x, y) of ONE pair (no leading axis).

        Args:
            pair: one pair in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            ``DiagGaussian`` with float32 ``mean`` and ``log_var`` of shape ``(d,)``.

        Raises:
            ValueError: if the pair's arrays do not have single-pair shapes.
        """
        check_pair(self.config, pair)
        return self.encoder(pair, dropout_key=dropout_key)

    def decode_logits(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Teacher-forced decoder logits ``{"rows": (R,), "cols": (C,), "cells": (R, C,
        10)}`` (float32) of ``pair`` at latent ``z`` (see
        :meth:`lpn_arc.model.decoder.Decoder.logits`); raises ValueError on wrong shapes."""
        check_pair(self.config, pair)
        check_shape("z", z, (self.config.latent_dim,))
        if pair.cache is not None:  # from precompute: the input side is done already
            return cached_logits(self.decoder, z, pair, dropout_key=dropout_key)
        return self.decoder.logits(z, pair, dropout_key=dropout_key)

    def precompute(self, pair: Pair) -> Pair:
        """The pair with what its log-likelihood needs that does not depend on z.

        With ``decoder_mask="input-only"`` the decoder's input tokens never see the latent,
        so their keys and values in every layer are computed here once
        (``pair.cache``, see :mod:`lpn_arc.model.input_cache`) and every later
        :meth:`log_likelihood` of the pair, at any z, runs the latent and output tokens
        only. With the official mask there is nothing to precompute: the pair is returned
        as is. Pass it as ``precompute`` to ``latentsearch.lpn_loss``.

        Args:
            pair: one pair in the pair format.

        Returns:
            The pair, with its ``cache`` for the input-only mask (a prepared pair).
        """
        check_pair(self.config, pair)
        if self.config.decoder_mask == "official":
            return pair
        return pair._replace(cache=input_cache(self.decoder, pair))

    def log_likelihood_terms(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """The three terms of the decoder log-likelihood of one pair's output.

        Args:
            z: latent ``(d,)``.
            pair: one pair in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            ``{"rows": log p(rows), "cols": log p(cols | rows), "cells": cell term}`` float32
            scalars; the cell term is the mean (``cell_normalisation="mean"``) or the sum
            (``"sum"``) over valid output cells of ``log p(cell | previous cells)``; and
            ``"exact"``: whether greedy decoding reproduces the output exactly (the most
            likely rows, columns and every valid cell are the target's, read off the same
            teacher-forced logits: greedy decoding feeds back its own choices, which are
            then the target's).

        Raises:
            ValueError: on wrong shapes.
        """
        cfg = self.config
        logits = self.decode_logits(z, pair, dropout_key=dropout_key)
        out_shape = jnp.asarray(pair.output_shapes, jnp.int32)
        rows_lp = jax.nn.log_softmax(logits["rows"])[
            jnp.clip(out_shape[0] - 1, 0, cfg.max_rows - 1)
        ]
        cols_lp = jax.nn.log_softmax(logits["cols"])[
            jnp.clip(out_shape[1] - 1, 0, cfg.max_cols - 1)
        ]
        cell_lp = jnp.take_along_axis(
            jax.nn.log_softmax(logits["cells"]),
            jnp.clip(jnp.asarray(pair.outputs, jnp.int32), 0, NUM_COLOURS - 1)[..., None],
            axis=-1,
        )[..., 0]
        valid = valid_cells(out_shape, *jnp.shape(pair.outputs))
        cells = jnp.sum(jnp.where(valid, cell_lp, 0.0))
        if cfg.cell_normalisation == "mean":
            cells = cells / jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
        targets = jnp.asarray(pair.outputs, jnp.int32)
        exact = (
            (jnp.argmax(logits["rows"]) + 1 == out_shape[0])
            & (jnp.argmax(logits["cols"]) + 1 == out_shape[1])
            & jnp.all(~valid | (jnp.argmax(logits["cells"], axis=-1) == targets))
        )
        return {"rows": rows_lp, "cols": cols_lp, "cells": cells, "exact": exact}

    def log_likelihood(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """Teacher-forced ``log p(rows) + log p(cols) + cell term`` of one pair's output.

        Args:
            z: latent ``(d,)``.
            pair: one pair in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            A float32 scalar (<= 0).

        Raises:
            ValueError: on wrong shapes.
        """
        terms = self.log_likelihood_terms(z, pair, dropout_key=dropout_key)
        return terms["rows"] + terms["cols"] + terms["cells"]

    def check_generate_args(self, z: jax.Array, inputs: jax.Array, input_shape: jax.Array) -> None:
        """Raises ValueError unless the arguments of :meth:`generate` are one pair's."""
        cfg = self.config
        check_shape("z", z, (cfg.latent_dim,))
        if (
            jnp.ndim(inputs) != 2
            or not 1 <= jnp.shape(inputs)[0] <= cfg.max_rows
            or not 1 <= jnp.shape(inputs)[1] <= cfg.max_cols
        ):
            raise ValueError(
                f"inputs must be a grid of at most ({cfg.max_rows}, {cfg.max_cols}) padded "
                f"cells; got shape {jnp.shape(inputs)}"
            )
        check_shape("input_shape", input_shape, (2,))

    def generate(
        self,
        z: jax.Array,
        inputs: jax.Array,
        input_shape: jax.Array,
        *,
        stop_early: bool = True,
    ) -> tuple[jax.Array, jax.Array]:
        """Greedy output ``(grid, shape)`` for one padded input given ``z``, with a key/value
        cache (jit-able): :func:`lpn_arc.model.generation.greedy_generate` (the input's
        padded size, the model's or a smaller bucket, is the output's; ``stop_early`` stops
        after the predicted cells).

        Raises:
            ValueError: on wrong shapes.
        """
        self.check_generate_args(z, inputs, input_shape)
        return greedy_generate(self.decoder, z, inputs, input_shape, stop_early=stop_early)


def check_shape(name: str, value: jax.Array, expected: tuple[int, ...]) -> None:
    """Raises ValueError naming ``name`` unless ``value`` has the single-pair shape ``expected``."""
    if tuple(jnp.shape(value)) != expected:
        raise ValueError(
            f"{name} must have shape {expected} (one pair; vmap over batches), "
            f"got {tuple(jnp.shape(value))}"
        )


def check_pair(cfg: ModelConfig, pair: Pair) -> None:
    """Raises ValueError unless ``pair`` is one pair in the pair format that fits ``cfg``."""
    if not isinstance(pair, Pair):
        raise ValueError(f"pair must be a lpn_arc.data.Pair, got {type(pair).__name__}")
    for name in ("inputs", "outputs"):  # any padded size up to the model's (a size bucket)
        grid = tuple(jnp.shape(getattr(pair, name)))
        if len(grid) != 2 or not (1 <= grid[0] <= cfg.max_rows and 1 <= grid[1] <= cfg.max_cols):
            raise ValueError(
                f"pair.{name} must be a 2-D grid of at most {cfg.max_rows}x{cfg.max_cols} "
                f"(one pair; vmap over batches), got shape {grid}"
            )
    check_shape("pair.input_shapes", pair.input_shapes, (2,))
    check_shape("pair.output_shapes", pair.output_shapes, (2,))
