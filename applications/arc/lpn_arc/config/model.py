"""The model architecture's hyper-parameters (:class:`ModelConfig`) and its presets."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["ACTIVATIONS", "DECODER_MASKS", "DTYPES", "POSITIONS", "ModelConfig"]

ACTIVATIONS = ("silu", "relu", "gelu")
"""MLP activations (``lpn_arc.model.layers`` maps each name to its function)."""
DTYPES = ("float32", "bfloat16")
"""Activation dtypes (names any JAX function takes as a dtype)."""
NORMALISATIONS = ("mean", "sum")
"""How the cell term of the log-likelihood sums over the output cells."""
POSITIONS = ("learned", "rope")
"""Position encodings: learned row/column tables, or 2-D rotary embeddings."""
DECODER_MASKS = ("official", "input-only")
"""Decoder attention masks (see :attr:`ModelConfig.decoder_mask`)."""


_POSITIVE = ("max_rows", "max_cols", "latent_dim", "num_heads", "head_dim")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the LPN encoder and decoder.

    Attributes:
        max_rows: padded grid height R.
        max_cols: padded grid width C.
        latent_dim: latent dimension d.
        encoder_layers: number of encoder blocks (0 allowed).
        decoder_layers: number of decoder blocks (0 allowed).
        num_heads: attention heads (of the encoder, and of the decoder unless
            ``decoder_num_heads`` is set).
        head_dim: dimension per head; the model width is ``E = num_heads * head_dim``.
        mlp_factor: MLP hidden width as a multiple of E.
        decoder_num_heads: the decoder's heads when it is narrower or wider than the
            encoder (paper Table 15: encoder 8 x 8, decoder 8 x 4); 0 = ``num_heads``.
        decoder_head_dim: the decoder's dimension per head; 0 = ``head_dim``.
        decoder_mlp_factor: the decoder's MLP factor; 0 = ``mlp_factor``.
        decoder_mask: ``"official"``: the decoder's input tokens attend to the latent token
            too (facts 2.4); ``"input-only"``: they attend to input tokens only, so their
            keys and values do not depend on z and are computed once per pair
            (:meth:`lpn_arc.model.LPNModel.precompute`, :mod:`lpn_arc.model.input_cache`)
            and reused by every search step and candidate latent.
        dropout: dropout rate on embeddings, attention weights, attention outputs and MLP
            outputs, in training only: the encoder and the scoring of held-out pairs (the
            search inside the loss, test-time search and generation run without it).
        activation: MLP activation, ``"silu"`` (official), ``"relu"`` or ``"gelu"``.
        dtype: activation dtype, ``"float32"`` or ``"bfloat16"`` (parameters, softmax,
            logits and latents stay float32).
        cell_normalisation: ``"mean"`` (official: mean over valid output cells of the cell
            log-probs) or ``"sum"`` (plain sequence log-likelihood).
        positions: ``"learned"`` (official: learned row and column tables added to the cell
            tokens) or ``"rope"`` (2-D rotary embeddings of queries and keys, no position
            tables; needs ``head_dim % 4 == 0``; see :func:`lpn_arc.model.apply_rope`).
        rope_max_freq: the RoPE base (``max_wavelength`` of text RoPE, 10000 there; paper
            Table 16: "RoPE, max freq 10"): rotation pair ``i`` of the ``q = head_dim / 4``
            pairs per axis turns ``rope_max_freq ** (-i / q)`` radians per cell, so the
            slowest pair's wavelength is ``2 pi rope_max_freq ** ((q - 1) / q)`` cells (47
            for ``head_dim=32``, 10). Unused with learned positions.
    """

    max_rows: int
    max_cols: int
    latent_dim: int
    encoder_layers: int
    decoder_layers: int
    num_heads: int
    head_dim: int
    mlp_factor: float
    decoder_num_heads: int = 0
    decoder_head_dim: int = 0
    decoder_mlp_factor: float = 0.0
    decoder_mask: str = "official"
    dropout: float = 0.0
    activation: str = "silu"
    dtype: str = "float32"
    cell_normalisation: str = "mean"
    positions: str = "learned"
    rope_max_freq: float = 10.0

    def __post_init__(self) -> None:
        self._check_sizes()
        if self.has_own_decoder_width:
            self.decoder_config()  # validates the decoder's width (RoPE needs head_dim % 4)
        if not self.mlp_factor > 0 or self.mlp_dim < 1:
            raise ValueError(f"ModelConfig.mlp_factor must be > 0, got {self.mlp_factor!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        self._check_choices()
        if self.positions == "rope" and self.head_dim % 4:
            raise ValueError(
                "ModelConfig.head_dim must be divisible by 4 with positions='rope' (half of "
                f"each head rotates with the row, half with the column), got {self.head_dim}"
            )
        freq = self.rope_max_freq
        if (
            isinstance(freq, bool)
            or not isinstance(freq, int | float)
            or not 1.0 <= freq < math.inf
        ):
            raise ValueError(f"ModelConfig.rope_max_freq must be a number >= 1, got {freq!r}")

    def _check_sizes(self) -> None:
        """Raises ValueError for a size field that is not an int in its range."""
        rules = {name: (1, "a positive int") for name in _POSITIVE}
        rules.update({name: (0, "an int >= 0") for name in ("encoder_layers", "decoder_layers")})
        own = "an int >= 0 (0: the encoder's)"
        rules.update({name: (0, own) for name in ("decoder_num_heads", "decoder_head_dim")})
        for name, (low, what) in rules.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"ModelConfig.{name} must be {what}, got {value!r}")
        if not self.decoder_mlp_factor >= 0:
            raise ValueError(
                "ModelConfig.decoder_mlp_factor must be >= 0 (0: the encoder's), got "
                f"{self.decoder_mlp_factor!r}"
            )

    def _check_choices(self) -> None:
        """Raises ValueError for a named choice (activation, dtype, ...) that does not exist."""
        choices = {
            "activation": sorted(ACTIVATIONS),
            "dtype": sorted(DTYPES),
            "cell_normalisation": NORMALISATIONS,
            "decoder_mask": DECODER_MASKS,
            "positions": POSITIONS,
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"ModelConfig.{name} must be one of {allowed}, got {value!r}")

    @property
    def has_own_decoder_width(self) -> bool:
        """True when a ``decoder_*`` width field differs from the encoder's."""
        return bool(self.decoder_num_heads or self.decoder_head_dim or self.decoder_mlp_factor)

    def decoder_config(self) -> ModelConfig:
        """The configuration the decoder is built from: the encoder's, with the
        ``decoder_*`` width fields applied (``self`` when none is set)."""
        if not self.has_own_decoder_width:
            return self
        return dataclasses.replace(
            self,
            num_heads=self.decoder_num_heads or self.num_heads,
            head_dim=self.decoder_head_dim or self.head_dim,
            mlp_factor=self.decoder_mlp_factor or self.mlp_factor,
            decoder_num_heads=0,
            decoder_head_dim=0,
            decoder_mlp_factor=0.0,
        )

    @property
    def embed_dim(self) -> int:
        """Model width ``E = num_heads * head_dim``."""
        return self.num_heads * self.head_dim

    @property
    def mlp_dim(self) -> int:
        """MLP hidden width ``int(mlp_factor * E)``."""
        return int(self.mlp_factor * self.embed_dim)

    @property
    def compute_dtype(self) -> str:
        """The activation dtype's name (``"float32"`` or ``"bfloat16"``), as JAX takes it."""
        return self.dtype

    @classmethod
    def pattern(cls, **overrides: Any) -> ModelConfig:
        """Paper Table 13 (Pattern): 2+2 layers, 6 heads x 16, MLP 1, d 32, 10x10 grids."""
        base = dict(max_rows=10, max_cols=10, latent_dim=32, encoder_layers=2, decoder_layers=2,
                    num_heads=6, head_dim=16, mlp_factor=1.0)  # fmt: skip
        return cls(**{**base, **overrides})

    @classmethod
    def arc_repo(cls, **overrides: Any) -> ModelConfig:
        """Official repo ``arc_train.yaml``: 4+4 layers, 8 heads x 32, MLP 4, d 128, 30x30."""
        base = dict(max_rows=30, max_cols=30, latent_dim=128, encoder_layers=4, decoder_layers=4,
                    num_heads=8, head_dim=32, mlp_factor=4.0, dtype="bfloat16")  # fmt: skip
        return cls(**{**base, **overrides})

    @classmethod
    def arc_paper(cls, **overrides: Any) -> ModelConfig:
        """Paper Table 16 (learned positions, no RoPE): enc 8 / dec 6 layers, 8 x 64, d 256."""
        base = dict(max_rows=30, max_cols=30, latent_dim=256, encoder_layers=8, decoder_layers=6,
                    num_heads=8, head_dim=64, mlp_factor=4.0, dtype="bfloat16")  # fmt: skip
        return cls(**{**base, **overrides})
