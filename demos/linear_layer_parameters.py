"""What are the parameters of a linear layer?

`nn.Linear(in_features, out_features)` holds two tensors:

* `weight`, shaped (out_features, in_features): one row per output, one
  column per input (PyTorch stores it this way round and computes
  `x @ weight.T + bias`);
* `bias`, one number per output.

The demo prints their shapes, checks the formula against the layer, and then
sweeps one input while holding the others fixed. What you will see: every
output moves on a straight line whose slope is exactly the weight joining
that input to that output, and whose intercept is that output's bias plus the
other inputs times their weights. The figure draws those lines.
"""

import os

import matplotlib.pyplot as plt
import torch
from torch import nn

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
IN_FEATURES = 4
OUT_FEATURES = 3
# which input we vary (0-based)
INPUT_TO_SWEEP = 3  # askta: param(label="Input to vary (0-based)", min=0, max=3)
SWEEP_VALUES = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]

torch.manual_seed(SEED)
print(f"device: {DEVICE}")

layer = nn.Linear(IN_FEATURES, OUT_FEATURES).to(DEVICE)
W, b = layer.weight.detach(), layer.bias.detach()

print()
print(f"nn.Linear({IN_FEATURES}, {OUT_FEATURES})")
print(f"  weight shape: {tuple(W.shape)}  = (out_features, in_features)")
print(f"  bias shape:   {tuple(b.shape)}    = (out_features,)")
n_params = sum(p.numel() for p in layer.parameters())
print(f"  parameters:   {IN_FEATURES} x {OUT_FEATURES} + {OUT_FEATURES} = {n_params}")

# The layer is nothing more than this formula.
x = torch.randn(5, IN_FEATURES).to(DEVICE)
print(f"  layer(x) == x @ weight.T + bias: {torch.allclose(layer(x), x @ W.T + b, atol=1e-6)}")

# --- Sweep one input, keep the others fixed --------------------------------
base = torch.randn(IN_FEATURES).to(DEVICE)       # the fixed values of the other inputs
sweep = torch.tensor(SWEEP_VALUES, device=DEVICE)
inputs = base.repeat(len(SWEEP_VALUES), 1)        # one row per sweep value
inputs[:, INPUT_TO_SWEEP] = sweep
with torch.no_grad():
    outputs = layer(inputs)                       # shape (len(SWEEP_VALUES), OUT_FEATURES)

# Slope and intercept measured from the outputs, by a least-squares line fit.
design = torch.stack([sweep, torch.ones_like(sweep)], dim=1)
fit = torch.linalg.lstsq(design, outputs).solution          # rows: slope, intercept
residual = (design @ fit - outputs).abs().max().item()

others = [k for k in range(IN_FEATURES) if k != INPUT_TO_SWEEP]
predicted_intercept = b + W[:, others] @ base[others]

j = INPUT_TO_SWEEP
print()
print(f"Sweeping input {j} from {SWEEP_VALUES[0]} to {SWEEP_VALUES[-1]}, other inputs fixed at "
      + ", ".join(f"x{k}={base[k].item():+.2f}" for k in others))
print(f"{'output':>6}  {'measured slope':>14}  {'weight[i, ' + str(j) + ']':>12}"
      f"  {'measured intercept':>18}  {'bias + other w*x':>17}")
for i in range(OUT_FEATURES):
    print(f"{i:>6}  {fit[0, i].item():>14.4f}  {W[i, j].item():>12.4f}"
          f"  {fit[1, i].item():>18.4f}  {predicted_intercept[i].item():>17.4f}")
print(f"largest distance of any output from its fitted line: {residual:.1e} (a straight line)")

sweep_cpu, outputs_cpu = sweep.cpu(), outputs.cpu()
fig, ax = plt.subplots(figsize=(6, 4))
for i in range(OUT_FEATURES):
    ax.plot(sweep_cpu, outputs_cpu[:, i], "o-", label=f"output {i}: slope = weight[{i}, {j}] = {W[i, j].item():+.3f}")
ax.axvline(0, color="gray", lw=0.5)
ax.set_xlabel(f"input {j} (the other inputs held fixed)")
ax.set_ylabel("layer output")
ax.set_title("Each output is a line in each input")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

print()
print(f"Conclusion: a linear layer's parameters are its {OUT_FEATURES}x{IN_FEATURES} weight matrix (one slope per "
      f"input-output pair) and {OUT_FEATURES} biases.")
