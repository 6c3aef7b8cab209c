"""Why not just make the network deeper?

Every extra layer costs something. This demo stacks blocks of
Linear(WIDTH, WIDTH) + ReLU and measures, for growing depth:

* the number of parameters,
* the time of one forward + backward pass on a batch,
* the activation memory autograd keeps for the backward pass (measured by
  recording every tensor it saves),
* the size of the gradient that reaches the first layer, for a plain stack
  and for residual blocks x + ReLU(Linear(LayerNorm(x))), the skip-plus-
  normalisation pattern modern deep networks use.

What you will see: parameters, time and memory all grow with depth, each
block adding the same amount. And in the plain stack the first layer's
gradient shrinks towards zero as depth grows, which is why deep plain
networks used to be hard to train; with residual connections it stays in a
healthy range. The figure plots that gradient.
"""

import os
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
WIDTH = 128  # askta: param(label="Width", min=16, max=512, step=16)
BATCH_SIZE = 64  # askta: param(label="Batch size", min=8, max=256, step=8)
DEPTHS = [1, 2, 4, 8, 16, 32]
REPEATS = 5            # timed forward + backward passes per depth (after one warm-up)
CPU_THREADS = 1        # threads for the CPU timings (see the note below)

torch.manual_seed(SEED)
print(f"device: {DEVICE}")
# Time on one CPU thread: these operations are too small to gain from more,
# and on a busy machine threads waiting for each other would swamp the timings.
torch.set_num_threads(CPU_THREADS)


class Block(nn.Module):
    """Plain: ReLU(Linear(x)).  Residual: x + ReLU(Linear(LayerNorm(x)))."""

    def __init__(self, width, residual):
        super().__init__()
        self.residual = residual
        # The norm keeps each branch's input at a fixed scale, so adding many
        # branches onto the skip path does not blow the activations up.
        self.norm = nn.LayerNorm(width) if residual else nn.Identity()
        self.linear = nn.Linear(width, width)

    def forward(self, x):
        out = torch.relu(self.linear(self.norm(x)))
        # The skip path hands the gradient straight back to earlier layers.
        return x + out if self.residual else out


def make_net(depth, residual):
    """`depth` blocks, then one output per example (PyTorch's default init)."""
    blocks = [Block(WIDTH, residual) for _ in range(depth)]
    return nn.Sequential(*blocks, nn.Linear(WIDTH, 1)).to(DEVICE)


def sync():
    """GPU work runs asynchronously; wait for it before reading the clock."""
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def train_step(net, x, y):
    net.zero_grad()
    loss = ((net(x) - y) ** 2).mean()
    loss.backward()


def step_time_ms(net, x, y):
    """Best of REPEATS timed steps: the minimum is the least disturbed by other programs."""
    train_step(net, x, y)                      # warm-up, not timed
    times = []
    for _ in range(REPEATS):
        sync()
        start = time.perf_counter()
        train_step(net, x, y)
        sync()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def saved_activation_bytes(net, x):
    """Bytes of the tensors autograd stores for backward, not counting the weights.

    saved_tensors_hooks lets us see every tensor autograd keeps; the same
    tensor can be saved by two operations, so each memory block counts once.
    """
    weight_addresses = {p.data_ptr() for p in net.parameters()}
    saved = {}

    def pack(tensor):
        if tensor.data_ptr() not in weight_addresses:
            saved[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        net(x).sum()
    return sum(saved.values())


def first_layer_grad_norm(net, x, y):
    train_step(net, x, y)
    return net[0].linear.weight.grad.norm().item()


x = torch.randn(BATCH_SIZE, WIDTH).to(DEVICE)
y = torch.randn(BATCH_SIZE, 1).to(DEVICE)

print()
print(f"width {WIDTH}, batch {BATCH_SIZE}; each plain block is Linear({WIDTH}, {WIDTH}) + ReLU")
print(f"{'depth':>5}  {'parameters':>10}  {'fwd+bwd ms':>10}  {'saved for bwd':>13}"
      f"  {'first-layer gradient norm':^27}")
print(f"{'':>5}  {'':>10}  {'':>10}  {'(KiB)':>13}  {'plain':>12}  {'residual':>12}")
costs = []                                     # (parameters, milliseconds, KiB) per depth
plain_grads, residual_grads = [], []
for depth in DEPTHS:
    plain = make_net(depth, residual=False)
    n_params = sum(p.numel() for p in plain.parameters())
    ms = step_time_ms(plain, x, y)
    kib = saved_activation_bytes(plain, x) / 1024
    costs.append((n_params, ms, kib))
    plain_grads.append(first_layer_grad_norm(plain, x, y))
    residual_grads.append(first_layer_grad_norm(make_net(depth, residual=True), x, y))
    print(f"{depth:>5}  {n_params:>10,}  {ms:>10.2f}  {kib:>13,.0f}"
          f"  {plain_grads[-1]:>12.2e}  {residual_grads[-1]:>12.2e}")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(DEPTHS, plain_grads, "o-", label="plain stack")
ax.plot(DEPTHS, residual_grads, "s-", label="residual: x + ReLU(Linear(LayerNorm(x)))")
ax.set_xscale("log", base=2)
ax.set_xticks(DEPTHS, [str(depth) for depth in DEPTHS])
ax.set_yscale("log")
ax.set_xlabel("depth (number of Linear + ReLU blocks)")
ax.set_ylabel("gradient norm at the first layer")
ax.set_title("How much learning signal reaches the first layer")
ax.legend()
fig.tight_layout()
plt.show()

print()
growth = [last / first for first, last in zip(costs[0], costs[-1])]
print(f"Conclusion: from {DEPTHS[0]} to {DEPTHS[-1]} blocks, parameters grew {growth[0]:.0f}x, time {growth[1]:.0f}x "
      f"and memory {growth[2]:.0f}x; the plain stack's first-layer gradient fell to {plain_grads[-1]:.0e}, while "
      f"with residual connections it stayed between {min(residual_grads):.1f} and {max(residual_grads):.1f}.")
