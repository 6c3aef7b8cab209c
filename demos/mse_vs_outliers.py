"""Why use MSE when it is so sensitive to outliers?

Part 1: if you must predict one constant for every example, the constant
with the lowest mean squared error (MSE) is the mean of the targets, and the
constant with the lowest mean absolute error (MAE) is the median. The demo
finds both by brute force over a grid and prints them next to the mean and
the median.

Part 2: so "MSE or MAE?" is partly "mean or median?". The demo draws many
small samples and compares how much the sample mean and the sample median
wander from the true centre:

* with clean, bell-shaped noise the mean wanders less (the median throws
  away most of the values), so MSE makes better use of the data;
* with a few wild outliers mixed in, the median wanders less.

The figure shows the two spreads as histograms, one panel per kind of data.
"""

import os

import matplotlib.pyplot as plt
import torch

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
# Part 1: a handful of prices with one outlier (in thousands).
PRICES = [2.0, 3.0, 3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 30.0]
GRID_STEP = 0.01           # resolution of the brute-force search
# Part 2: many small samples from two kinds of data.
N_RESAMPLES = 4000
# odd, so the median is a single middle value
SAMPLE_SIZE = 25  # askta: param(label="Points per sample (odd)", min=5, max=101, step=2)
# share of points drawn from the wide distribution
OUTLIER_FRACTION = 0.1  # askta: param(label="Share of outliers", min=0.0, max=0.5, step=0.01)
# the wide distribution is 10x wider than the clean one
OUTLIER_STD = 10.0  # askta: param(label="Outlier size (std)", min=1.0, max=50.0, step=1.0)

torch.manual_seed(SEED)
print(f"device: {DEVICE}")

# --- Part 1: which constant minimises each loss? ---------------------------
targets = torch.tensor(PRICES, device=DEVICE)
candidates = torch.arange(0.0, 35.0, GRID_STEP, device=DEVICE)
# One row per candidate constant c, one column per target: the errors c - y.
errors = candidates[:, None] - targets[None, :]
mse = (errors ** 2).mean(dim=1)
mae = errors.abs().mean(dim=1)
best_mse = candidates[mse.argmin()].item()
best_mae = candidates[mae.argmin()].item()

print()
print(f"targets: {PRICES}")
print(f"{'loss':<6}{'best constant':>14}   {'compare with':<12}")
print(f"{'MSE':<6}{best_mse:>14.2f}   mean   = {targets.mean().item():.2f}")
print(f"{'MAE':<6}{best_mae:>14.2f}   median = {targets.median().item():.2f}")
print("(one outlier drags the MSE answer up to the mean; the MAE answer stays at the median)")

# --- Part 2: how much do the mean and the median wander? -------------------
# Samples are drawn on the CPU and moved, so every device sees the same numbers.
clean = torch.randn(N_RESAMPLES, SAMPLE_SIZE)
is_outlier = torch.rand(N_RESAMPLES, SAMPLE_SIZE) < OUTLIER_FRACTION
with_outliers = torch.where(is_outlier, OUTLIER_STD * torch.randn(N_RESAMPLES, SAMPLE_SIZE), clean)
datasets = {"clean (normal)": clean.to(DEVICE), "10% wide outliers": with_outliers.to(DEVICE)}

print()
print(f"{N_RESAMPLES} samples of {SAMPLE_SIZE} points each; the true centre is 0.")
print(f"{'data':<20}{'spread of mean':>16}{'spread of median':>18}{'winner':>9}")
estimates = {}
for name, data in datasets.items():
    means = data.mean(dim=1)
    medians = data.median(dim=1).values
    estimates[name] = (means.cpu(), medians.cpu())
    # "Spread" = standard deviation of the estimate across the samples.
    mean_sd, median_sd = means.std().item(), medians.std().item()
    winner = "mean" if mean_sd < median_sd else "median"
    print(f"{name:<20}{mean_sd:>16.3f}{median_sd:>18.3f}{winner:>9}")

fig, axes = plt.subplots(1, 2, figsize=(8, 3.5), sharex=True, sharey=True)
bins = torch.linspace(-2, 2, 61)
for ax, (name, (means, medians)) in zip(axes, estimates.items()):
    ax.hist(means, bins=bins, alpha=0.5, label="sample mean (MSE)")
    ax.hist(medians, bins=bins, alpha=0.5, label="sample median (MAE)")
    ax.set_title(name)
    ax.set_xlabel("estimate of the centre")
axes[0].set_ylabel("number of samples")
axes[0].legend(fontsize=8)
fig.suptitle("Which estimate wanders less from the true centre (0)?")
fig.tight_layout()
plt.show()

print()
print("Conclusion: MSE picks the mean, which is the steadier estimate when the noise is well-behaved;")
print("with heavy outliers the median (MAE, or a compromise such as the Huber loss) is steadier.")
