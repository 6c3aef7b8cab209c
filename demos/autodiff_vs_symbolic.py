"""Why use backprop (automatic differentiation) instead of doing the calculus?

Part 1 takes one function, f(x) = sin(x) * exp(-x^2 / 4) + x^3 / 10, and
gets its derivative three ways:

* by hand: product rule and chain rule, typed in as a formula;
* autograd: run f forward, call .backward(), read x.grad;
* finite differences: (f(x + h) - f(x - h)) / 2h.

What you will see: all three agree to many digits. The hand formula was
already three terms for a one-line function; autograd needed no calculus
at all.

Part 2 is where the difference shows: a loss of N_PARAMS parameters.
Finite differences need two extra evaluations *per parameter*; reverse-mode
autodiff (what .backward() does) gets all N_PARAMS partial derivatives from
one backward pass, at about the cost of one more forward pass. The demo
times both and checks that they agree.

(Reverse mode is ideal for "many inputs, one output", which is what a loss
is; for "one input, many outputs" forward mode would be the better choice.)
"""

import math
import os
import time

import torch

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
POINTS = [-2.0, -0.5, 0.0, 1.0, 2.5]
STEP = 1e-5                # finite-difference step (float64 makes this small step safe)
# parameters of the Part 2 loss
N_PARAMS = 200  # askta: param(label="Parameters of the loss", min=10, max=2000, step=10)
N_EXAMPLES = 64            # data points of the Part 2 loss
AUTOGRAD_REPEATS = 5

torch.manual_seed(SEED)
print(f"device: {DEVICE}")


def f(x):
    return torch.sin(x) * torch.exp(-x ** 2 / 4) + x ** 3 / 10


def f_prime_by_hand(x):
    """Product rule on sin(x) * exp(-x^2/4), chain rule on the exp, power rule on x^3/10."""
    return (math.cos(x) * math.exp(-x ** 2 / 4)
            - (x / 2) * math.sin(x) * math.exp(-x ** 2 / 4)
            + 3 * x ** 2 / 10)


def as_tensor(value, requires_grad=False):
    # float64, so the finite differences are not swamped by rounding.
    return torch.tensor(value, dtype=torch.float64, device=DEVICE, requires_grad=requires_grad)


# --- Part 1: three ways to the same derivative ------------------------------
print()
print("Part 1: f(x) = sin(x) * exp(-x^2/4) + x^3/10")
print(f"{'x':>5}  {'by hand':>12}  {'autograd':>12}  {'finite diff':>12}  {'hand - auto':>11}  {'fd - auto':>9}")
worst_hand, worst_numeric = 0.0, 0.0
for value in POINTS:
    x = as_tensor(value, requires_grad=True)
    f(x).backward()
    auto = x.grad.item()
    hand = f_prime_by_hand(value)
    with torch.no_grad():
        numeric = ((f(as_tensor(value + STEP)) - f(as_tensor(value - STEP))) / (2 * STEP)).item()
    worst_hand = max(worst_hand, abs(hand - auto))
    worst_numeric = max(worst_numeric, abs(numeric - auto))
    print(f"{value:>5.1f}  {hand:>12.8f}  {auto:>12.8f}  {numeric:>12.8f}"
          f"  {hand - auto:>11.1e}  {numeric - auto:>9.1e}")
print("(autograd is exact up to float rounding; finite differences carry a small error from the finite step)")

# --- Part 2: many parameters, one loss --------------------------------------
# A small model's loss: mean squared error of tanh(X @ w) against targets.
X = torch.randn(N_EXAMPLES, N_PARAMS, dtype=torch.float64).to(DEVICE) / math.sqrt(N_PARAMS)
targets = torch.randn(N_EXAMPLES, dtype=torch.float64).to(DEVICE)
w0 = torch.randn(N_PARAMS, dtype=torch.float64).to(DEVICE)


def loss_fn(w):
    return ((torch.tanh(X @ w) - targets) ** 2).mean()


def sync():
    """GPU work runs asynchronously; wait for it before reading the clock."""
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


autograd_seconds = float("inf")
for _ in range(AUTOGRAD_REPEATS):        # best of a few runs; the first also warms up
    sync()
    start = time.perf_counter()
    w = w0.clone().requires_grad_()
    loss_fn(w).backward()
    sync()
    autograd_seconds = min(autograd_seconds, time.perf_counter() - start)
grad_auto = w.grad

sync()
start = time.perf_counter()
grad_numeric = torch.empty_like(w0)
with torch.no_grad():
    for i in range(N_PARAMS):               # nudge one parameter at a time, both ways
        nudge = torch.zeros_like(w0)
        nudge[i] = STEP
        grad_numeric[i] = (loss_fn(w0 + nudge) - loss_fn(w0 - nudge)) / (2 * STEP)
sync()
numeric_seconds = time.perf_counter() - start

print()
print(f"Part 2: a loss of {N_PARAMS} parameters")
print(f"{'method':<20}{'forward passes':>16}{'backward passes':>17}{'time (ms)':>11}")
print(f"{'autograd':<20}{1:>16}{1:>17}{autograd_seconds * 1000:>11.2f}")
print(f"{'finite differences':<20}{2 * N_PARAMS:>16}{0:>17}{numeric_seconds * 1000:>11.2f}")
print(f"largest difference between the two gradients: {(grad_auto - grad_numeric).abs().max().item():.1e}")

print()
print(f"Conclusion: autograd matches the hand-derived formula (largest gap {worst_hand:.0e}) without any calculus, "
      f"and gets all {N_PARAMS} partial derivatives about {numeric_seconds / autograd_seconds:.0f}x faster "
      "than nudging each parameter.")
