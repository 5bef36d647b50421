"""The decision: a detector's probability, the user's prior, and a verdict.

A detector outputs p(fake | x) learnt under its training share of fakes s. Bayes turns it
into a likelihood ratio, which does not depend on s:

    LR(x) = p(x|fake) / p(x|real) = [p / (1 - p)] / [s / (1 - s)]

and the paper's rule decides fake when LR(x) >= pi_real / pi_fake, pi_fake being the share
of fakes the user expects where the decision is made (`prior_fake`). With pi_fake = s this
is p >= 0.5. A face unlike every source the detector was trained on gets no verdict
("unsure"): its score is a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidValueError

UNSURE = "unsure"
DecisionInputError = InvalidValueError  # a probability or prior out of range


def check_open_unit(name: str, value: float) -> float:
    """value as a float strictly inside (0, 1), else a DecisionInputError naming it."""
    value = float(value)
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise DecisionInputError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return value


def likelihood_ratio(prob_fake, train_fake_share: float = 0.5):
    """p(x|fake) / p(x|real) from a posterior p(fake|x) learnt under `train_fake_share`.

    prob_fake = 1 gives inf, 0 gives 0. A float for a scalar input, else an ndarray."""
    share = check_open_unit("train_fake_share", train_fake_share)
    p = np.asarray(prob_fake, dtype=np.float64)
    if np.any(~((p >= 0.0) & (p <= 1.0))):
        raise DecisionInputError("prob_fake must lie in [0, 1] (and not be NaN)")
    with np.errstate(divide="ignore"):
        lr = (p / (1.0 - p)) / (share / (1.0 - share))
    return float(lr) if lr.ndim == 0 else lr


def decide(prob_fake, prior_fake: float = 0.5, train_fake_share: float = 0.5):
    """True (fake) where p(x|fake) / p(x|real) >= pi_real / pi_fake (pi_fake = prior_fake).

    A small prior_fake (fakes are rare) demands a much larger likelihood ratio.
    A bool for a scalar input, else a bool ndarray."""
    prior = check_open_unit("prior_fake", prior_fake)
    lr = likelihood_ratio(prob_fake, train_fake_share)
    out = np.asarray(lr) >= (1.0 - prior) / prior
    return bool(out) if out.ndim == 0 else out


def prior_threshold(prior_fake: float = 0.5, train_fake_share: float = 0.5) -> float:
    """The p(fake) at which `decide` turns to fake: decide(p) == (p >= threshold)."""
    prior = check_open_unit("prior_fake", prior_fake)
    share = check_open_unit("train_fake_share", train_fake_share)
    odds = (1.0 - prior) / prior * share / (1.0 - share)  # posterior odds at the boundary
    return odds / (1.0 + odds)


@dataclass
class Verdict:
    """One face's verdict. `label` is "fake", "real" or "unsure" (outside the detector's
    domain: `is_fake` still says which side its score falls, for the curious)."""

    prob_fake: float  # posterior under the detector's training share of fakes
    likelihood_ratio: float  # p(x|fake) / p(x|real)
    prior_fake: float
    is_fake: bool
    train_fake_share: float = 0.5
    outside: bool = False  # unlike every source the detector was trained on
    nearest_source: str | None = None  # the training source this face is most like
    domain_ratio: float | None = None  # smallest distance / limit over them; > 1 = outside
    judged_by: str | None = None  # the member of a detector set that judged it

    @property
    def label(self) -> str:
        if self.outside:
            return UNSURE
        return "fake" if self.is_fake else "real"

    @property
    def threshold(self) -> float:
        """The p(fake) at and above which this prior says fake."""
        return prior_threshold(self.prior_fake, self.train_fake_share)
