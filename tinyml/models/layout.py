"""The MobileNetV1 layout as plain numbers (no torch import: the CLI and sweep planning read these fast)."""

BN_EPS = 1e-3  # Keras' default, the MLPerf reference's; the Keras mirror copies it
FIRST_CHANNELS = 32  # block 0: conv 3x3 stride 2 -> 32 channels at alpha 1
# (stride, output channels at alpha=1) of the 13 depthwise-separable blocks 1..13
DS_BLOCKS: tuple[tuple[int, int], ...] = (
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024),
)  # fmt: skip
NUM_BLOCKS = 1 + len(DS_BLOCKS)  # 14: index 0 = first conv, 1..13 = DS blocks
