"""Three significant figures, as reason sentences and segment reasons show numbers."""

import numpy as np

from serving.number_text import round_sig3


def test_three_significant_figures_by_hand():
    values = np.array([12437.0, -0.34567, 999.6, 0.0012345, 7.0])
    assert np.allclose(round_sig3(values), [12400.0, -0.346, 1000.0, 0.00123, 7.0], rtol=1e-12, atol=0)


def test_zero_and_non_finite_values_pass_through():
    out = round_sig3(np.array([0.0, np.nan, np.inf, -np.inf]))
    assert out[0] == 0.0 and np.isnan(out[1]) and out[2] == np.inf and out[3] == -np.inf
