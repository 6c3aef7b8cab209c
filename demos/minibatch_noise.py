"""Might mini-batches mislead us?

A line y = w * x + b is fitted to noisy data. At one fixed point early in
training (w = b = 0) the demo computes the full-batch gradient, then draws
many random minibatches of several sizes and computes each minibatch's
gradient.

What you will see:

* every minibatch gradient is a noisy estimate of the full-batch gradient;
  on average it is right, but single ones can point well off;
* the spread shrinks like 1 / sqrt(batch size): 4x the batch, half the noise
  (the column "spread x sqrt(B)" stays roughly constant);
* the figure shows the minibatch gradients as clouds around the full-batch
  gradient for three batch sizes.

That noise is not all bad: it is a kind of regularisation, and a little of
it often helps a model generalise.
"""

import os

import matplotlib.pyplot as plt
import torch

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
N_SAMPLES = 1024
TRUE_W, TRUE_B = 2.0, 1.0
NOISE_STD = 1.0  # askta: param(label="Noise (std)", min=0.0, max=5.0, step=0.1)
BATCH_SIZES = [1, 4, 16, 64, 256]
# minibatches drawn per batch size
N_MINIBATCHES = 100  # askta: param(label="Minibatches per size", min=10, max=500, step=10)
PLOTTED_BATCH_SIZES = [4, 16, 64]

torch.manual_seed(SEED)
print(f"device: {DEVICE}")

# Data made on the CPU and then moved, so every device sees the same numbers.
x = torch.randn(N_SAMPLES)
y = TRUE_W * x + TRUE_B + NOISE_STD * torch.randn(N_SAMPLES)
x, y = x.to(DEVICE), y.to(DEVICE)

# The parameters stay fixed at this point; we only look at gradients here.
w = torch.zeros((), device=DEVICE, requires_grad=True)
b = torch.zeros((), device=DEVICE, requires_grad=True)


def gradient(index):
    """Gradient (dL/dw, dL/db) of the MSE on the examples picked by `index`."""
    loss = ((w * x[index] + b - y[index]) ** 2).mean()
    grad_w, grad_b = torch.autograd.grad(loss, [w, b])
    return torch.stack([grad_w, grad_b])


full = gradient(torch.arange(N_SAMPLES, device=DEVICE))
print(f"full-batch gradient at w = b = 0: dL/dw = {full[0].item():+.3f}, dL/db = {full[1].item():+.3f}")

print()
print(f"{N_MINIBATCHES} random minibatches per size (drawn without replacement within a batch)")
print(f"{'batch size B':>12}  {'spread':>8}  {'spread x sqrt(B)':>16}  {'mean angle off':>18}  {'pointing the wrong way':>22}")
clouds = {}
for batch_size in BATCH_SIZES:
    grads = torch.stack([gradient(torch.randperm(N_SAMPLES)[:batch_size].to(DEVICE))
                         for _ in range(N_MINIBATCHES)])
    clouds[batch_size] = grads.cpu()
    # Spread: root-mean-square distance from the full-batch gradient, relative to its length.
    spread = ((grads - full) ** 2).sum(dim=1).mean().sqrt() / full.norm()
    cosine = torch.nn.functional.cosine_similarity(grads, full.expand_as(grads), dim=1)
    angle = torch.rad2deg(torch.acos(cosine.clamp(-1, 1))).mean()
    wrong_way = (cosine < 0).float().mean()    # a small step along it would *raise* the full loss
    print(f"{batch_size:>12}  {spread.item():>8.3f}  {spread.item() * batch_size ** 0.5:>16.2f}"
          f"  {angle.item():>14.1f} deg  {wrong_way.item():>22.1%}")

fig, ax = plt.subplots(figsize=(6, 4))
for batch_size in PLOTTED_BATCH_SIZES:
    g = clouds[batch_size]
    ax.scatter(g[:, 0], g[:, 1], s=8, alpha=0.5, label=f"minibatch gradients, B = {batch_size}")
ax.scatter([full[0].item()], [full[1].item()], marker="*", s=250, color="black", label="full-batch gradient")
ax.set_xlabel("dL/dw")
ax.set_ylabel("dL/db")
ax.set_title("Minibatch gradients scatter around the full-batch one")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

print()
print("Conclusion: minibatch gradients are right on average but noisy; the noise shrinks like 1/sqrt(B), "
      "so bigger batches mislead less, at more cost per step.")
