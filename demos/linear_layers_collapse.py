"""Why do we need ReLUs (or other nonlinearities) between linear layers?

Two linear layers in a row, with weight matrices A and B, compute
B(Ax + b1) + b2. Because matrix multiplication is *associative*,
B(Ax) = (BA)x, so the pair is exactly one linear layer with weight B @ A and
bias B @ b1 + b2: the extra layer adds nothing.

What you will see:

1. two stacked nn.Linear layers and one nn.Linear with weight B @ A give the
   same outputs (torch.allclose is True);
2. put a ReLU between them and no single linear layer can match (the outputs
   differ);
3. associativity holds, (B @ A) @ x == B @ (A @ x), but matrix multiplication
   is *not* commutative: for square P, Q, P @ Q != Q @ P in general;
4. a figure with one input and one output: the stack without ReLU is a
   straight line, the stack with ReLU is a bent (piecewise-linear) curve.
"""

import os

import matplotlib.pyplot as plt
import torch
from torch import nn

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
IN_FEATURES, HIDDEN, OUT_FEATURES = 3, 8, 2
BATCH_SIZE = 10
SQUARE_SIZE = 3             # for the commutativity check
# hidden units of the 1-input, 1-output net in the figure
PLOT_HIDDEN = 16  # askta: param(label="Hidden units in the plotted nets", min=1, max=64)
# float32 rounds differently when the products are grouped differently, so
# "equal" means equal up to this tolerance.
ATOL = 1e-5

torch.manual_seed(SEED)
print(f"device: {DEVICE}")

first = nn.Linear(IN_FEATURES, HIDDEN).to(DEVICE)      # weight A, bias b1
second = nn.Linear(HIDDEN, OUT_FEATURES).to(DEVICE)    # weight B, bias b2
A, b1 = first.weight.detach(), first.bias.detach()
B, b2 = second.weight.detach(), second.bias.detach()
x = torch.randn(BATCH_SIZE, IN_FEATURES).to(DEVICE)

# --- 1. Without a nonlinearity: the stack collapses -------------------------
collapsed = nn.Linear(IN_FEATURES, OUT_FEATURES).to(DEVICE)
with torch.no_grad():
    collapsed.weight.copy_(B @ A)
    collapsed.bias.copy_(B @ b1 + b2)
    stacked = second(first(x))
    single = collapsed(x)
print()
print(f"1. Linear({IN_FEATURES}->{HIDDEN}) then Linear({HIDDEN}->{OUT_FEATURES}), no activation")
print(f"   single layer has weight B @ A of shape {tuple(collapsed.weight.shape)} and bias B @ b1 + b2")
print(f"   stacked == single layer: {torch.allclose(stacked, single, atol=ATOL)}"
      f"   (largest difference {(stacked - single).abs().max().item():.1e})")

# --- 2. With a ReLU between: no collapse ------------------------------------
with torch.no_grad():
    with_relu = second(torch.relu(first(x)))
print()
print("2. the same two layers with a ReLU between them")
print(f"   with ReLU == single layer: {torch.allclose(with_relu, single, atol=ATOL)}"
      f"   (largest difference {(with_relu - single).abs().max().item():.2f})")
print("   (and no other single linear layer can match either: the figure shows the output is not a line)")

# --- 3. Associative yes, commutative no -------------------------------------
P = torch.randn(SQUARE_SIZE, SQUARE_SIZE).to(DEVICE)
Q = torch.randn(SQUARE_SIZE, SQUARE_SIZE).to(DEVICE)
v = x[0]
print()
print("3. properties of matrix multiplication")
print(f"   associative, (B @ A) @ v == B @ (A @ v): {torch.allclose((B @ A) @ v, B @ (A @ v), atol=ATOL)}")
print(f"   commutative, P @ Q == Q @ P:            {torch.allclose(P @ Q, Q @ P, atol=ATOL)}"
      f"   (largest difference {(P @ Q - Q @ P).abs().max().item():.2f})")

# --- 4. Figure: one input, one output ---------------------------------------
narrow_first = nn.Linear(1, PLOT_HIDDEN).to(DEVICE)
narrow_second = nn.Linear(PLOT_HIDDEN, 1).to(DEVICE)
grid = torch.linspace(-3, 3, 301).to(DEVICE)[:, None]
with torch.no_grad():
    straight = narrow_second(narrow_first(grid))
    bent = narrow_second(torch.relu(narrow_first(grid)))
grid, straight, bent = grid.cpu().squeeze(1), straight.cpu().squeeze(1), bent.cpu().squeeze(1)

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(grid, straight, label="Linear -> Linear (no ReLU): a straight line")
ax.plot(grid, bent, label="Linear -> ReLU -> Linear: bends where units switch on/off")
ax.set_xlabel("input")
ax.set_ylabel("output")
ax.set_title(f"Two layers, {PLOT_HIDDEN} hidden units, same weights")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

print()
print("Conclusion: without a nonlinearity, stacked linear layers are one linear layer (weight B @ A, by "
      "associativity); the ReLU is what lets extra layers add something.")
