"""Does the gradient go to zero when training is done?

A small linear-regression model is trained with minibatch SGD. Every epoch
the demo prints the loss on the whole training set and two gradient sizes:

* the norm of the minibatch gradients SGD actually stepped with, and
* the norm of the full-batch gradient at the end of the epoch.

What you will see: the loss drops for a few epochs and then flattens out,
but the minibatch gradient norm does not go to zero. It keeps jittering at
a steady level, because every minibatch disagrees a little with the others.
SGD keeps being pushed around, so the parameters end up dancing around the
low-loss region instead of settling on one point (which is also why even the
full-batch gradient stays small but not zero). The figure shows the curves
on a log scale.
"""

import os

import matplotlib.pyplot as plt
import torch
from torch import nn

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
N_SAMPLES = 1024      # training examples
N_FEATURES = 10
# label noise; the best possible MSE is about NOISE_STD**2
NOISE_STD = 0.5  # askta: param(label="Label noise (std)", min=0.0, max=2.0, step=0.1)
BATCH_SIZE = 32  # askta: param(label="Batch size", min=8, max=1024, step=8)
LEARNING_RATE = 0.05  # askta: param(label="Learning rate", min=0.001, max=0.2, step=0.001)
EPOCHS = 15  # askta: param(label="Epochs", min=1, max=40)

torch.manual_seed(SEED)
print(f"device: {DEVICE}")

# Synthetic data: y = X @ w_true + noise. It is made on the CPU and then
# moved, so every device sees exactly the same numbers.
X = torch.randn(N_SAMPLES, N_FEATURES)
w_true = torch.randn(N_FEATURES, 1)
y = X @ w_true + NOISE_STD * torch.randn(N_SAMPLES, 1)
X, y = X.to(DEVICE), y.to(DEVICE)

model = nn.Linear(N_FEATURES, 1).to(DEVICE)
loss_fn = nn.MSELoss()


def sgd_step():
    """One plain SGD step, written out as in chapter 4 (torch.optim.SGD does the same)."""
    with torch.no_grad():
        for p in model.parameters():
            p -= LEARNING_RATE * p.grad


def gradient_norm():
    """Length of all parameter gradients together, seen as one long vector."""
    return torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())).item()


def full_batch_check():
    """Loss and gradient norm on the whole training set; takes no step."""
    model.zero_grad()       # backward() adds to .grad, so clear the old gradient first
    loss = loss_fn(model(X), y)
    loss.backward()
    return loss.item(), gradient_norm()


step_norms = []                  # one entry per SGD step
epoch_losses, epoch_full_norms = [], []

loss, full_norm = full_batch_check()
epoch_losses.append(loss)
epoch_full_norms.append(full_norm)

print()
print(f"{'epoch':>5}  {'loss':>8}  {'minibatch gradient norm':^28}  {'full-batch':>10}")
print(f"{'':>5}  {'':>8}  {'mean':>8}  {'min':>8}  {'max':>8}  {'grad norm':>10}")
print(f"{0:>5}  {loss:>8.4f}  {'':>8}  {'':>8}  {'':>8}  {full_norm:>10.4f}")

for epoch in range(1, EPOCHS + 1):
    # A fresh shuffle every epoch, as a DataLoader with shuffle=True would do.
    order = torch.randperm(N_SAMPLES).to(DEVICE)
    norms_this_epoch = []
    for start in range(0, N_SAMPLES, BATCH_SIZE):
        batch = order[start:start + BATCH_SIZE]
        model.zero_grad()
        loss_fn(model(X[batch]), y[batch]).backward()
        norms_this_epoch.append(gradient_norm())   # the gradient SGD really uses
        sgd_step()
    step_norms.extend(norms_this_epoch)

    loss, full_norm = full_batch_check()
    epoch_losses.append(loss)
    epoch_full_norms.append(full_norm)
    mean_norm = sum(norms_this_epoch) / len(norms_this_epoch)
    print(f"{epoch:>5}  {loss:>8.4f}  {mean_norm:>8.4f}  {min(norms_this_epoch):>8.4f}"
          f"  {max(norms_this_epoch):>8.4f}  {full_norm:>10.4f}")

steps_per_epoch = N_SAMPLES // BATCH_SIZE
epoch_steps = [e * steps_per_epoch for e in range(EPOCHS + 1)]

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(range(1, len(step_norms) + 1), step_norms, lw=0.6, color="tab:orange",
        label="minibatch gradient norm (every step)")
ax.plot(epoch_steps, epoch_full_norms, "o-", ms=3, color="tab:green",
        label="full-batch gradient norm (per epoch)")
ax.plot(epoch_steps, epoch_losses, "s-", ms=3, color="tab:blue", label="training loss (per epoch)")
ax.axhline(NOISE_STD ** 2, ls="--", lw=0.8, color="gray", label="noise floor of the loss")
ax.set_yscale("log")
ax.set_xlabel("SGD step")
ax.set_ylabel("value (log scale)")
ax.set_title("Loss flattens; the minibatch gradient does not vanish")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

late = step_norms[-steps_per_epoch * 5:]          # the last five epochs
print()
print(f"Conclusion: the loss settled at {epoch_losses[-1]:.3f} (noise floor {NOISE_STD ** 2:.3f}), but over the "
      f"last 5 epochs the minibatch gradient norm was still {min(late):.2f} to {max(late):.2f}: it does not go to "
      "zero, and SGD keeps the parameters jittering around the minimum.")
