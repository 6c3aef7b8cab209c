"""One meaning of "gradient": how much would the loss change if I nudged this?

This runs the example from the Week 5 Q&A page:

    def f(param, x): return x * param
    x = tensor(1.0)
    param = tensor(3.0, requires_grad=True)
    loss = abs(f(param, x) - 2.0)
    loss.backward()

What you will see: `param.grad` is 1.0. The loss is |3 * 1 - 2| = 1, and
nudging param up by a small amount h raises the loss by about h, so the slope
is sign(3 - 2) * x = 1. A finite-difference check (nudge param a little
each way and measure) agrees. A small table repeats the check at other values
of param: below 2 the slope is -1, above 2 it is +1. The figure shows the
V-shaped loss with the tangent line at param = 3.

(Pandas' `df.style.background_gradient` in the chapter is a colour gradient
in a table and has nothing to do with this.)
"""

import os

import matplotlib.pyplot as plt
import torch

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0
X_VALUE = 1.0  # askta: param(label="Input x", min=-3.0, max=3.0, step=0.1)
PARAM_VALUE = 3.0  # askta: param(label="Parameter value", min=-5.0, max=5.0, step=0.1)
TARGET = 2.0  # askta: param(label="Target", min=-5.0, max=5.0, step=0.1)
STEP = 1e-4                         # finite-difference nudge
OTHER_PARAMS = [0.5, 1.5, 2.0, 2.5, 3.0, 4.0]

torch.manual_seed(SEED)
print(f"device: {DEVICE}")


def f(param, x):
    return x * param


# --- The page's example -----------------------------------------------------
x = torch.tensor(X_VALUE, device=DEVICE)
param = torch.tensor(PARAM_VALUE, device=DEVICE, requires_grad=True)
loss = abs(f(param, x) - TARGET)
loss.backward()

print()
print(f"x = {X_VALUE}, param = {PARAM_VALUE}, loss = |x * param - {TARGET}| = {loss.item():.4f}")
print(f"param.grad = {param.grad.item():.4f}   (d loss / d param at this param and this x)")
print(f"x.grad     = {x.grad}   (x was not marked requires_grad, so no gradient is kept for it)")


def loss_at(p):
    """The same loss, in float64 so the finite difference is not swamped by rounding."""
    p = torch.tensor(p, dtype=torch.float64, device=DEVICE)
    xx = torch.tensor(X_VALUE, dtype=torch.float64, device=DEVICE)
    return abs(f(p, xx) - TARGET).item()


def finite_difference(p):
    """Central difference: nudge param up and down by STEP and measure the change."""
    return (loss_at(p + STEP) - loss_at(p - STEP)) / (2 * STEP)


numeric = finite_difference(PARAM_VALUE)
agree = abs(numeric - param.grad.item()) < 1e-4
print(f"finite difference (loss(p+h) - loss(p-h)) / 2h with h = {STEP:g}: {numeric:.4f}")
print(f"autograd and finite difference agree: {agree}")

# --- Same question at other parameter values -------------------------------
print()
print(f"{'param':>6}  {'loss':>7}  {'param.grad':>10}  {'finite diff':>11}")
for p_value in OTHER_PARAMS:
    p = torch.tensor(p_value, device=DEVICE, requires_grad=True)
    value = abs(f(p, x) - TARGET)
    value.backward()
    print(f"{p_value:>6.1f}  {value.item():>7.3f}  {p.grad.item():>10.4f}  {finite_difference(p_value):>11.4f}")
print("(at param = 2 the V has a corner and no true slope; PyTorch reports 0 there)")

# --- Figure: the loss as a function of param, with the tangent at 3 --------
grid = torch.linspace(0.0, 4.0, 201)
losses = abs(f(grid, X_VALUE) - TARGET)
tangent = loss.item() + param.grad.item() * (grid - PARAM_VALUE)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(grid, losses, lw=3, alpha=0.6, label="loss = |x * param - 2|")
# The tangent is drawn past the corner so you can see where it leaves the V.
near = grid > 1.0
ax.plot(grid[near], tangent[near], "--", color="tab:red",
        label=f"tangent at param = 3, slope = param.grad = {param.grad.item():.1f}")
ax.plot([PARAM_VALUE], [loss.item()], "o", color="black", label="where we evaluated")
ax.set_xlabel("param")
ax.set_ylabel("loss")
ax.set_title("The gradient is the slope of the loss at the current param")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

print()
print(f"Conclusion: param.grad == {param.grad.item():.1f}: raising param by a little raises the loss by the same amount.")
