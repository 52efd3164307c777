"""The in-house Vision Transformer, built from the parts of Dosovitskiy et al. 2021 (arXiv:2010.11929).

An image is cut into patches by a Conv2d whose kernel and stride are the patch size; each patch becomes
a token of `embed_dim` numbers. A learnable [CLS] token is put in front, a positional embedding is added,
and `depth` pre-LayerNorm transformer blocks (attention, then a GELU MLP, each with a residual) mix the
tokens. The classification head reads the final [CLS] state.

The variants made for small data sets change one part each and live in their own modules: the tokenizer
(`spt`, `conv_tokenizer`), the attention (`lsa`), the read-out (`pooling`) and DeiT's distillation token
(here, with its loss in `vitcli/distillation.py`).

Attention has two paths giving the same result: PyTorch's fused `scaled_dot_product_attention` when the
weights are not needed (fast, memory-light), and the explicit softmax(Q K^T / sqrt(d)) V when the caller
asks for the weights, e.g. to draw them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitcli.models.conv_tokenizer import ConvTokenizer
from vitcli.models.lsa import Locality
from vitcli.models.pooling import SequencePooling
from vitcli.models.spt import ShiftedPatchTokenizer
from vitcli.settings.choices import POOLS, POS_EMBEDS, TOKENIZERS


class PatchEmbedding(nn.Module):
    """(batch, channels, H, W) -> (batch, tokens, embed_dim), one token per non-overlapping patch."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        # kernel = stride = patch size: the same linear map applied to each flattened patch.
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)  # (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, D), patches in row-major order


class MLP(nn.Module):
    """The transformer's feed-forward part: Linear, GELU, Linear (one hidden layer)."""

    def __init__(self, embed_dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, embed_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def attend(
    q: Tensor, k: Tensor, v: Tensor, need_weights: bool, mask: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """softmax(q k^T / sqrt(d)) v over the last two dims; q, k, v are (..., tokens, head_dim). `mask`
    (tokens, tokens) is True where a query may attend (LSA's masked diagonal); None: everywhere.

    Returns the output and, when `need_weights`, the attention weights (..., tokens, tokens).
    """
    if not need_weights:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), None
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


class SelfAttention(nn.Module):
    """Single-head self-attention: every token attends to every token with one set of weights,
    softmax(Q K^T / sqrt(D)) V; with `lsa`, softmax(mask(Q K^T * exp(t))) V (models/lsa.py)."""

    def __init__(self, embed_dim: int, dropout: float = 0.0, lsa: bool = False):
        super().__init__()
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.locality = Locality(embed_dim) if lsa else None  # LSA's temperature and mask

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (B, N, D)
        mask = None
        if self.locality is not None:
            q, mask = self.locality.scale_queries(q), Locality.mask(x.shape[1], x.device)
        out, weights = attend(q, k, v, need_weights, mask)
        if weights is not None:
            weights = weights.unsqueeze(1)  # (B, 1, N, N): one head, same shape as the multi-head case
        return self.drop(self.proj(out)), weights


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention: the embedding is split equally into `heads` heads of
    `embed_dim // heads` numbers; each head attends on its own, softmax(Q_h K_h^T / sqrt(head_dim)) V_h,
    and an output projection mixes the heads back together. With `lsa`, each head's scores are
    Q_h K_h^T * exp(t) with one learned temperature for the layer, and the diagonal is masked
    (models/lsa.py)."""

    def __init__(self, embed_dim: int, heads: int, dropout: float = 0.0, lsa: bool = False):
        super().__init__()
        if embed_dim % heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.locality = Locality(embed_dim // heads) if lsa else None  # LSA's temperature and mask

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        B, N, D = x.shape
        # (B, N, 3*D) -> (3, B, heads, N, head_dim)
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, mask = qkv[0], None
        if self.locality is not None:
            q, mask = self.locality.scale_queries(q), Locality.mask(N, x.device)
        out, weights = attend(q, qkv[1], qkv[2], need_weights, mask)
        out = out.transpose(1, 2).reshape(B, N, D)  # heads side by side again
        return self.drop(self.proj(out)), weights


def drop_path_module(rate: float) -> nn.Module:
    """Stochastic depth (Huang et al. 2016) for one residual branch: in training, the whole branch of an
    image is dropped with probability `rate` and kept ones are scaled by 1 / (1 - rate); identity in eval.
    timm's DropPath, imported only when used (timm is slow to import and the default trains without)."""
    if rate <= 0:
        return nn.Identity()
    # timm is heavy; only --drop-path needs it here
    from timm.layers import DropPath

    return DropPath(rate)


class TransformerBlock(nn.Module):
    """Pre-LN block: x + attention(LN(x)), then x + MLP(LN(x)); with `drop_path`, each branch is dropped
    per image in training (stochastic depth)."""

    def __init__(
        self,
        embed_dim: int,
        heads: int,
        mlp_dim: int,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        lsa: bool = False,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dim)
        if heads == 1:
            self.attn: nn.Module = SelfAttention(embed_dim, dropout, lsa)
        else:
            self.attn = MultiHeadSelfAttention(embed_dim, heads, dropout, lsa)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.mlp = MLP(embed_dim, mlp_dim, dropout)
        self.drop_path = drop_path_module(drop_path)  # no weights: checkpoints are the same with or without

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        attn_out, weights = self.attn(self.norm1(x), need_weights)
        x = x + self.drop_path(attn_out)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, weights


def sinusoidal_embedding(num_positions: int, dim: int) -> Tensor:
    """PE(k, 2i) = sin(k / 10000^(2i/d)), PE(k, 2i+1) = cos(k / 10000^(2i/d)) (Vaswani et al. 2017)."""
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)
    angle = position / (10000.0 ** (two_i / dim))  # (positions, ceil(d/2))
    pe = torch.zeros(num_positions, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : dim // 2])  # an odd dim has one sine column more than cosines
    return pe.float()


def tokenizer_module(
    tokenizer: str,
    in_channels: int,
    embed_dim: int,
    patch_size: int,
    conv_layers: int,
    image_size: tuple[int, int],
) -> tuple[nn.Module, tuple[int, int]]:
    """The module that turns an image into tokens, and its (rows, cols) grid of tokens:
    patch (non-overlapping patches, above), spt (shifted patches, models/spt.py) or conv (CCT's
    convolutional stem, models/conv_tokenizer.py, which ignores the patch size)."""
    height, width = image_size
    if tokenizer == "conv":
        stem = ConvTokenizer(in_channels, embed_dim, conv_layers, image_size)
        return stem, stem.grid_size
    if height % patch_size or width % patch_size:
        raise ValueError(f"image {height}x{width} is not divisible by patch size {patch_size}")
    grid = (height // patch_size, width // patch_size)
    if tokenizer == "spt":
        return ShiftedPatchTokenizer(in_channels, embed_dim, patch_size), grid
    if tokenizer == "patch":
        return PatchEmbedding(in_channels, embed_dim, patch_size), grid
    raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, not {tokenizer!r}")


class ViT(nn.Module):
    """Vision Transformer for (batch, channels, height, width) images; with the patch tokenizers, height
    and width must each be divisible by `patch_size` (rectangular images are fine).

    The variants made for small data sets, each in its own module: `tokenizer` "spt" (shifted patches)
    or "conv" (a convolutional stem with `conv_layers` stages), `lsa` (locality self-attention), `pool`
    "gap" or "seq" instead of the [CLS] token, and `distilled`: DeiT's distillation token (Touvron et al.
    2021, arXiv:2012.12877), a second prefix token with its own head, trained against a teacher
    (vitcli/distillation.py). In training a distilled ViT returns both heads' logits; in evaluation,
    their mean.
    """

    def __init__(
        self,
        *,
        image_size: tuple[int, int],
        in_channels: int,
        num_classes: int,
        embed_dim: int = 32,
        patch_size: int = 7,
        depth: int = 2,
        heads: int = 2,
        mlp_dim: int | None = None,
        pos_embed: str = "learned",
        dropout: float = 0.0,
        drop_path: float = 0.0,
        tokenizer: str = "patch",
        conv_layers: int = 2,
        lsa: bool = False,
        pool: str = "cls",
        distilled: bool = False,
    ):
        super().__init__()
        if pos_embed not in POS_EMBEDS:
            raise ValueError(f"pos_embed must be one of {', '.join(POS_EMBEDS)}, not {pos_embed!r}")
        if pool not in POOLS or (distilled and pool != "cls"):
            raise ValueError(f"pool must be one of {', '.join(POOLS)} (cls when distilled), not {pool!r}")
        self.patch_embed, self.grid_size = tokenizer_module(
            tokenizer, in_channels, embed_dim, patch_size, conv_layers, image_size
        )
        self.pool, self.distilled = pool, distilled
        # The tokens before the patches, as timm names them: [CLS] (pool cls), then the distillation token.
        self.num_prefix_tokens = (pool == "cls") + distilled
        self.num_tokens = self.grid_size[0] * self.grid_size[1] + self.num_prefix_tokens

        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if pool == "cls" else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, embed_dim))
        elif pos_embed == "sinusoidal":
            # Fixed and derivable from the shape, so not saved in checkpoints (persistent=False).
            table = sinusoidal_embedding(self.num_tokens, embed_dim).unsqueeze(0)
            self.register_buffer("pos_embed", table, persistent=False)
        else:
            self.pos_embed = None
        self.pos_drop = nn.Dropout(dropout)
        # Stochastic depth rises linearly from 0 at the first block to `drop_path` at the last (as in
        # DeiT and timm): early blocks, which every later one builds on, are dropped least.
        rates = [drop_path * i / (depth - 1) for i in range(depth)] if depth > 1 else [drop_path]
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, heads, mlp_dim or 4 * embed_dim, dropout, rate, lsa) for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.seq_pool = SequencePooling(embed_dim) if pool == "seq" else None
        self.head = nn.Linear(embed_dim, num_classes)
        self.head_dist = nn.Linear(embed_dim, num_classes) if distilled else None
        self._init_weights()

    def _init_weights(self) -> None:
        # The original ViT's: Xavier-uniform linear layers with zero biases, and small truncated normals
        # for [CLS] and learned positions. (timm's std-0.02 normals for linear layers, tuned for width
        # 768, left the width-32 teaching model learning slowly; see docs/architecture.md.)
        for token in (self.pos_embed, self.cls_token, self.dist_token):
            if isinstance(token, nn.Parameter):
                nn.init.trunc_normal_(token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _pooled(self, x: Tensor) -> Tensor:
        """(B, N, D) final states -> (B, D), what the head reads (models/pooling.py)."""
        if self.pool == "cls":
            return x[:, 0]
        patches = x[:, self.num_prefix_tokens :]
        return patches.mean(dim=1) if self.pool == "gap" else self.seq_pool(patches)

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Logits (batch, classes); with `return_attention`, also one (batch, heads, tokens, tokens)
        tensor of attention weights per block, the prefix tokens ([CLS], then the distillation token)
        first and then the patches row by row. A distilled ViT in training mode returns the (class,
        distillation) pair of logits instead of one."""
        x = self.patch_embed(x)
        prefix = [t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.dist_token) if t is not None]
        x = torch.cat([*prefix, x], dim=1) if prefix else x
        x = self.pos_drop(x if self.pos_embed is None else x + self.pos_embed)
        attentions = []
        for block in self.blocks:
            x, weights = block(x, need_weights=return_attention)
            attentions.append(weights)
        x = self.norm(x)
        logits = self.head(self._pooled(x))
        if self.distilled:
            dist_logits = self.head_dist(x[:, 1])
            # DeiT: both heads in training (the criterion scores each); at inference their mean
            logits = (logits, dist_logits) if self.training else (logits + dist_logits) / 2
        return (logits, attentions) if return_attention else logits
