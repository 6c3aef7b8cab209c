"""How hard is it to code up a convolution?

A convolution is a matrix multiplication that slides over the image. This
demo writes it three ways and checks them against PyTorch's `F.conv2d`:

1. loops: for every output position, cut out the patch under the kernel and
   multiply it by the flattened kernels (correct, but slow);
2. unfold + matmul: `F.unfold` cuts out *all* patches at once as the columns
   of one matrix ("im2col"), and a single matmul does the rest;
3. `F.conv2d`, the library version.

What you will see: the shapes at each step, all three outputs equal
(torch.allclose), and a timing table: the loop is far slower, unfold +
matmul is within a small factor of conv2d. Writing a working convolution is
easy; writing a fast one is the library's job.
"""

import os
import time

import torch
import torch.nn.functional as F

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
BATCH_SIZE = 8
IN_CHANNELS = 3
OUT_CHANNELS = 16  # askta: param(label="Output channels", min=1, max=64)
IMAGE_SIZE = 32
KERNEL_SIZE = 3
PADDING = 1              # keeps the output IMAGE_SIZE x IMAGE_SIZE
REPEATS = 10             # timed runs per method (the best one is reported)
LOOP_REPEATS = 1         # the loop version is slow, so fewer runs
ATOL = 1e-4              # float32 sums in a different order round differently
CPU_THREADS = 1          # threads for the CPU timings (see the note below)

torch.manual_seed(SEED)
print(f"device: {DEVICE}")
# Time on one CPU thread: these operations are too small to gain from more,
# and on a busy machine threads waiting for each other would swamp the timings.
torch.set_num_threads(CPU_THREADS)
if DEVICE.startswith("cuda"):
    # Recent NVIDIA GPUs may run float32 convolutions in TF32 (faster, but only
    # about 3 significant digits). Ask for full float32 so that all three
    # versions below compute the same thing.
    torch.backends.cudnn.conv.fp32_precision = "ieee"

images = torch.randn(BATCH_SIZE, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE).to(DEVICE)
kernels = torch.randn(OUT_CHANNELS, IN_CHANNELS, KERNEL_SIZE, KERNEL_SIZE).to(DEVICE)
bias = torch.randn(OUT_CHANNELS).to(DEVICE)
OUT_SIZE = IMAGE_SIZE + 2 * PADDING - KERNEL_SIZE + 1


def conv_loops(x):
    """Slide the kernel by hand: one small matmul per output position."""
    padded = F.pad(x, [PADDING] * 4)
    flat_kernels = kernels.reshape(OUT_CHANNELS, -1)            # (out, in * k * k)
    out = torch.empty(x.shape[0], OUT_CHANNELS, OUT_SIZE, OUT_SIZE, device=x.device)
    for i in range(OUT_SIZE):
        for j in range(OUT_SIZE):
            patch = padded[:, :, i:i + KERNEL_SIZE, j:j + KERNEL_SIZE].reshape(x.shape[0], -1)
            out[:, :, i, j] = patch @ flat_kernels.T + bias
    return out


def conv_unfold(x):
    """All patches at once as columns (im2col), then one matmul."""
    columns = F.unfold(x, KERNEL_SIZE, padding=PADDING)          # (batch, in * k * k, positions)
    out = kernels.reshape(OUT_CHANNELS, -1) @ columns             # (batch, out, positions)
    return out.reshape(x.shape[0], OUT_CHANNELS, OUT_SIZE, OUT_SIZE) + bias[:, None, None]


def conv_library(x):
    return F.conv2d(x, kernels, bias, padding=PADDING)


# --- The shapes along the way ------------------------------------------------
columns = F.unfold(images, KERNEL_SIZE, padding=PADDING)
print()
print("unfold + matmul, step by step")
steps = [
    ("images", tuple(images.shape), "(batch, channels, height, width)"),
    ("F.unfold -> patch columns", tuple(columns.shape),
     f"(batch, {IN_CHANNELS}*{KERNEL_SIZE}*{KERNEL_SIZE} values per patch, {OUT_SIZE}*{OUT_SIZE} patches)"),
    ("kernels, flattened", (OUT_CHANNELS, IN_CHANNELS * KERNEL_SIZE ** 2), "(out channels, values per patch)"),
    ("matmul, reshape, + bias", tuple(conv_unfold(images).shape), "(batch, out channels, height, width)"),
]
for step, shape, meaning in steps:
    print(f"  {step:<27}{str(shape):<17}{meaning}")

# --- Same answer? ---------------------------------------------------------------
reference = conv_library(images)
print()
for name, fn in [("loops", conv_loops), ("unfold + matmul", conv_unfold)]:
    out = fn(images)
    print(f"{name:<16} equals F.conv2d: {torch.allclose(out, reference, atol=ATOL)}"
          f"   (largest difference {(out - reference).abs().max().item():.1e})")


# --- How fast? ------------------------------------------------------------------
def sync():
    """GPU work runs asynchronously; wait for it before reading the clock."""
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def best_time_ms(fn, repeats):
    """Best of `repeats` runs after a warm-up: the least disturbed by other programs."""
    fn(images)
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn(images)
        sync()
        best = min(best, time.perf_counter() - start)
    return best * 1000


with torch.no_grad():
    times = {
        "F.conv2d": best_time_ms(conv_library, REPEATS),
        "unfold + matmul": best_time_ms(conv_unfold, REPEATS),
        "loops": best_time_ms(conv_loops, LOOP_REPEATS),
    }
print()
print(f"batch of {BATCH_SIZE} images {IN_CHANNELS}x{IMAGE_SIZE}x{IMAGE_SIZE}, "
      f"{OUT_CHANNELS} kernels {KERNEL_SIZE}x{KERNEL_SIZE}")
print(f"{'method':<16}{'time (ms)':>11}{'vs conv2d':>11}")
for name, ms in times.items():
    print(f"{name:<16}{ms:>11.3f}{ms / times['F.conv2d']:>10.1f}x")

print()
print(f"Conclusion: a convolution is unfold + one matmul (same output as F.conv2d, "
      f"{times['unfold + matmul'] / times['F.conv2d']:.1f}x its time here); "
      f"the naive loop is {times['loops'] / times['F.conv2d']:.0f}x slower.")
