"""Fitting a line has a closed form, so why train it with SGD?

Part 1 fits the same noisy line two ways:

* closed form: `torch.linalg.lstsq` solves the least-squares problem in one
  call (the projection of y onto the columns [x, 1]);
* SGD: start at zero and take gradient steps on the MSE, as in chapter 4.

What you will see: both land on the same slope and intercept, the closed
form in one call, SGD step by step (the table shows it after 5, 20 and 100
steps). For one linear layer the closed form wins; but stack two layers with
a nonlinearity between and no closed form exists, which is why we learn to
train with gradients.

Part 2 shows a cheap middle way, a strong baseline: a *random*, frozen
linear layer + ReLU as a feature extractor, and a closed-form least-squares
fit on top. It fits a curve that a straight line cannot. The demo first
checks each random feature takes both signs on the data, so none of them is
dead (always 0 after ReLU) or plain linear (never cut by the ReLU).

Figure 1: the data with the fitted lines. Figure 2: the curve, the straight
line fit and the random-ReLU-features fit.
"""

import os
import time

import matplotlib.pyplot as plt
import torch

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
N_SAMPLES = 200  # askta: param(label="Data points", min=20, max=1000, step=10)
TRUE_SLOPE, TRUE_INTERCEPT = 2.5, -1.0
NOISE_STD = 0.5  # askta: param(label="Noise (std)", min=0.0, max=3.0, step=0.1)
SGD_STEPS = 100
REPORT_AT = [5, 20, SGD_STEPS]   # print the SGD line after this many steps
LEARNING_RATE = 0.1  # askta: param(label="Learning rate", min=0.001, max=0.5, step=0.001)
N_RANDOM_FEATURES = 30           # width of the random layer in Part 2
X_RANGE = 3.0                    # inputs are drawn from [-X_RANGE, X_RANGE]

torch.manual_seed(SEED)
print(f"device: {DEVICE}")


def sync():
    """GPU work runs asynchronously; wait for it before reading the clock."""
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def with_ones(x):
    """Design matrix [x, 1]: the column of ones lets least squares fit an intercept."""
    return torch.stack([x, torch.ones_like(x)], dim=1)


# Data made on the CPU and then moved, so every device sees the same numbers.
x = (torch.rand(N_SAMPLES) * 2 - 1) * X_RANGE
y = TRUE_SLOPE * x + TRUE_INTERCEPT + NOISE_STD * torch.randn(N_SAMPLES)
x, y = x.to(DEVICE), y.to(DEVICE)

# --- Part 1a: closed form -----------------------------------------------------
torch.linalg.lstsq(with_ones(x), y[:, None])      # warm-up: the first call loads the solver
sync()
start = time.perf_counter()
slope_ls, intercept_ls = torch.linalg.lstsq(with_ones(x), y[:, None]).solution.squeeze(1).tolist()
lstsq_ms = (time.perf_counter() - start) * 1000

# --- Part 1b: SGD (full batch), written out as in chapter 4 -----------------
params = torch.zeros(2, device=DEVICE, requires_grad=True)        # slope, intercept
snapshots = {}                   # steps -> (slope, intercept, milliseconds so far)
sync()
start = time.perf_counter()
for step in range(1, SGD_STEPS + 1):
    loss = ((params[0] * x + params[1] - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        params -= LEARNING_RATE * params.grad
        params.grad = None
    if step in REPORT_AT:
        sync()
        snapshots[step] = (*params.tolist(), (time.perf_counter() - start) * 1000)
slope_sgd, intercept_sgd, _ = snapshots[SGD_STEPS]


def mse(slope, intercept):
    return ((slope * x + intercept - y) ** 2).mean().item()


print()
print(f"Part 1: {N_SAMPLES} points around y = {TRUE_SLOPE} x + ({TRUE_INTERCEPT}), noise std {NOISE_STD}")
print(f"{'method':<22}{'slope':>8}{'intercept':>11}{'MSE':>8}{'time (ms)':>11}")
print(f"{'torch.linalg.lstsq':<22}{slope_ls:>8.4f}{intercept_ls:>11.4f}{mse(slope_ls, intercept_ls):>8.4f}{lstsq_ms:>11.2f}")
for steps, (slope, intercept, ms) in snapshots.items():
    print(f"{f'SGD, {steps} steps':<22}{slope:>8.4f}{intercept:>11.4f}{mse(slope, intercept):>8.4f}{ms:>11.2f}")

fig, ax = plt.subplots(figsize=(6, 4))
xs, ys = x.cpu(), y.cpu()
line_x = torch.tensor([-X_RANGE, X_RANGE])
ax.scatter(xs, ys, s=8, alpha=0.5, label="data")
ax.plot(line_x, slope_ls * line_x + intercept_ls, lw=3, alpha=0.6, label="closed form (lstsq)")
early_slope, early_intercept, _ = snapshots[REPORT_AT[0]]
ax.plot(line_x, early_slope * line_x + early_intercept, ":", color="tab:red", label=f"SGD after {REPORT_AT[0]} steps")
ax.plot(line_x, slope_sgd * line_x + intercept_sgd, "--", color="black", label=f"SGD after {SGD_STEPS} steps")
ax.set_xlabel("x")
ax.set_ylabel("y")
ax.set_title("Same line, two ways")
ax.legend()
fig.tight_layout()
plt.show()

# --- Part 2: random ReLU features + least squares ----------------------------
curve_x = (torch.rand(N_SAMPLES) * 2 - 1) * X_RANGE
curve_y = torch.sin(2 * curve_x) + 0.3 * curve_x + 0.1 * torch.randn(N_SAMPLES)
test_x = torch.linspace(-X_RANGE, X_RANGE, 200)
test_y = torch.sin(2 * test_x) + 0.3 * test_x                      # noise-free truth
curve_x, curve_y, test_x, test_y = (t.to(DEVICE) for t in (curve_x, curve_y, test_x, test_y))

# A frozen random layer. Random weights ~ N(0, 1); each bias is chosen so that
# the unit's ReLU "kink" (where w * x + b = 0) falls at a random point inside
# the data range, otherwise many units would be dead or never bend.
random_weight = torch.randn(1, N_RANDOM_FEATURES)
kinks = (torch.rand(N_RANDOM_FEATURES) * 2 - 1) * X_RANGE
random_bias = (-random_weight[0] * kinks).to(DEVICE)
random_weight = random_weight.to(DEVICE)


def random_relu_features(inputs):
    return torch.relu(inputs[:, None] @ random_weight + random_bias)


# The check the course page recommends: before the ReLU, each feature should
# be positive for some inputs and negative for others.
pre_activation = curve_x[:, None] @ random_weight + random_bias
mixed = ((pre_activation > 0).any(dim=0) & (pre_activation < 0).any(dim=0)).sum().item()

features = torch.cat([random_relu_features(curve_x), torch.ones(N_SAMPLES, 1, device=DEVICE)], dim=1)
coefficients = torch.linalg.lstsq(features, curve_y[:, None]).solution
test_features = torch.cat([random_relu_features(test_x), torch.ones(len(test_x), 1, device=DEVICE)], dim=1)
relu_fit = (test_features @ coefficients).squeeze(1)

line_coefficients = torch.linalg.lstsq(with_ones(curve_x), curve_y[:, None]).solution
line_fit = (with_ones(test_x) @ line_coefficients).squeeze(1)

line_error = ((line_fit - test_y) ** 2).mean().item()
relu_error = ((relu_fit - test_y) ** 2).mean().item()
print()
print(f"Part 2: fitting y = sin(2x) + 0.3x from {N_SAMPLES} noisy points")
print(f"random features with both signs on the data: {mixed} of {N_RANDOM_FEATURES}")
print(f"{'model':<40}{'test MSE':>10}")
print(f"{'straight line (lstsq)':<40}{line_error:>10.4f}")
print(f"{f'{N_RANDOM_FEATURES} random ReLU features + lstsq':<40}{relu_error:>10.4f}")

fig, ax = plt.subplots(figsize=(6, 4))
ax.scatter(curve_x.cpu(), curve_y.cpu(), s=8, alpha=0.4, label="training data")
ax.plot(test_x.cpu(), line_fit.cpu(), label="straight line (lstsq)")
ax.plot(test_x.cpu(), relu_fit.cpu(), label="random ReLU features + lstsq")
ax.set_xlabel("x")
ax.set_ylabel("y")
ax.set_title("A random layer + ReLU, then a closed-form fit")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

print()
print("Conclusion: for one linear layer the closed form gives the answer in one call (SGD needs many steps "
      "to match it); deeper models have no closed form, though random ReLU features + lstsq is a strong baseline.")
