"""What if every row has a different number of elements?

Sentences have different lengths, but a tensor must be a rectangle. The
usual answer has two parts: pad every row to the same length, and carry a
mask that says which entries are real.

What you will see:

1. four rows of lengths 3, 5, 1 and 2 padded into one 4 x 5 tensor with
   `torch.nn.utils.rnn.pad_sequence`, and the True/False mask;
2. a plain `.mean(dim=1)` over the padded tensor is wrong (it averages the
   padding zeros in); the masked mean matches the true per-row means;
3. the same trick for a softmax over positions (as in attention): padded
   positions get -inf before the softmax, so they receive zero weight.
"""

import os

import torch
from torch.nn.utils.rnn import pad_sequence

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0
PADDING_VALUE = 0.0
# One row per "sentence": a score per word, different numbers of words.
ROWS = [
    [4.0, 2.0, 9.0],
    [1.0, 1.0, 1.0, 1.0, 6.0],
    [7.0],
    [3.0, 5.0],
]

torch.manual_seed(SEED)
print(f"device: {DEVICE}")

rows = [torch.tensor(row, device=DEVICE) for row in ROWS]
lengths = torch.tensor([len(row) for row in ROWS], device=DEVICE)

# --- 1. Pad and build the mask ----------------------------------------------
padded = pad_sequence(rows, batch_first=True, padding_value=PADDING_VALUE)
# Position j of row i is real when j < length of row i (broadcast: 1 x L against N x 1).
positions = torch.arange(padded.shape[1], device=DEVICE)
mask = positions[None, :] < lengths[:, None]

print()
print(f"1. padded to shape {tuple(padded.shape)} (padding value {PADDING_VALUE}), with its mask:")
for i in range(len(ROWS)):
    values = " ".join(f"{v:4.0f}" for v in padded[i].tolist())
    flags = " ".join(f"{'T' if m else '.':>4}" for m in mask[i].tolist())
    print(f"   row {i}: [{values} ]   mask [{flags} ]")

# --- 2. Mean per row ---------------------------------------------------------
true_means = torch.tensor([sum(row) / len(row) for row in ROWS])
naive_means = padded.mean(dim=1)
# Zero out the padding (it is already zero here, but need not be), then divide
# by the number of real entries instead of the padded width.
masked_means = (padded * mask).sum(dim=1) / mask.sum(dim=1)

print()
print("2. mean of each row")
print(f"   {'row':>3}  {'length':>6}  {'true mean':>9}  {'padded .mean()':>14}  {'masked mean':>11}")
for i in range(len(ROWS)):
    print(f"   {i:>3}  {lengths[i].item():>6}  {true_means[i].item():>9.3f}"
          f"  {naive_means[i].item():>14.3f}  {masked_means[i].item():>11.3f}")
print(f"   masked mean equals the true mean: {torch.allclose(masked_means.cpu(), true_means)}")

# --- 3. Softmax over positions ----------------------------------------------
naive_weights = torch.softmax(padded, dim=1)
masked_weights = torch.softmax(padded.masked_fill(~mask, float("-inf")), dim=1)

print()
print("3. softmax over each row's positions (row 3 has 2 real entries)")
print(f"   plain softmax:  {' '.join(f'{v:.3f}' for v in naive_weights[3].tolist())}"
      "   <- padding takes some of the weight")
print(f"   masked softmax: {' '.join(f'{v:.3f}' for v in masked_weights[3].tolist())}"
      "   <- padding gets exactly 0")
print(f"   weight left on padding, all rows: plain {naive_weights[~mask].sum().item():.3f}, "
      f"masked {masked_weights[~mask].sum().item():.3f}")

print()
print("Conclusion: pad to a rectangle, keep a mask, and let the mask decide what counts; "
      "then padding changes nothing.")
