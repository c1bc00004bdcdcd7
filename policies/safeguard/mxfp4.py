"""The MXFP4 on-disk layout of gpt-oss checkpoints, for writing small test checkpoints.

Expert weights are stored as `*_blocks` (uint8 `[E, rows, cols/32, 16]`: 4-bit E2M1 codes packed
two per byte, low nibble first) and `*_scales` (uint8 `[E, rows, cols/32]`: a power-of-two scale
per 32 values, biased by 127). The engine never quantises anything itself; the test fixtures and
`bench/gpu_check.py` use this to write tiny checkpoints in the real layout and check that they load.
"""

from __future__ import annotations

FP4_VALUES = (
    0.0,
    0.5,
    1.0,
    1.5,
    2.0,
    3.0,
    4.0,
    6.0,
    -0.0,
    -0.5,
    -1.0,
    -1.5,
    -2.0,
    -3.0,
    -4.0,
    -6.0,
)


def mxfp4_quantise(weight: object) -> tuple[object, object]:
    """Quantise [E, rows, cols] to MXFP4: per 32-value block a shared power-of-two scale (uint8,
    biased by 127) and 4-bit E2M1 codes packed two per byte (low nibble first)."""
    import torch

    w = weight.float()  # type: ignore[attr-defined]
    experts, rows, cols = w.shape
    groups = w.reshape(experts, rows, cols // 32, 32)
    amax = groups.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    exponent = torch.floor(torch.log2(amax / 6.0)).clamp(-127, 127)
    scaled = groups / torch.exp2(exponent)
    table = torch.tensor(FP4_VALUES)
    codes = (scaled.unsqueeze(-1) - table).abs().argmin(dim=-1).to(torch.uint8)
    packed = codes[..., 0::2] | (codes[..., 1::2] << 4)
    scales = (exponent.squeeze(-1) + 127).to(torch.uint8)
    return packed.contiguous(), scales.contiguous()


def mxfp4_dequantise(blocks: object, scales: object) -> object:
    """The inverse of `mxfp4_quantise` ([E, rows, cols/32, 16] + [E, rows, cols/32] -> [E, rows, cols])."""
    import torch

    table = torch.tensor(FP4_VALUES)
    low = table[(blocks & 0x0F).long()]  # type: ignore[operator]
    high = table[(blocks >> 4).long()]  # type: ignore[operator]
    values = torch.stack([low, high], dim=-1).reshape(*blocks.shape[:-1], 32)  # type: ignore[attr-defined]
    values = values * torch.exp2(scales.float() - 127).unsqueeze(-1)  # type: ignore[attr-defined]
    return values.reshape(values.shape[0], values.shape[1], -1)
