"""Net value and discounted CLV."""

import numpy as np
import pytest

from models.valuation import clv, monthly_discount_factor, net_value


def test_net_value_is_margin_minus_cost_and_can_be_negative():
    np.testing.assert_allclose(net_value([100.0, 10.0], [30.0, 25.0]), [70.0, -15.0])


def test_clv_without_discounting_equals_net_value():
    np.testing.assert_allclose(clv(np.array([120.0, -12.0]), 365, 0.0), [120.0, -12.0])


def test_one_month_horizon_is_discounted_one_month():
    assert monthly_discount_factor(30, 0.10) == pytest.approx(1.10 ** (-1 / 12))


def test_a_year_of_even_cash_is_discounted_between_one_and_twelve_months():
    factor = monthly_discount_factor(365, 0.10)
    assert 1.10 ** -1 < factor < 1.10 ** (-1 / 12)
    assert clv(np.array([1000.0]), 365, 0.10)[0] == pytest.approx(1000.0 * factor)


def test_clv_rejects_a_non_positive_horizon():
    with pytest.raises(ValueError, match="horizon_days"):
        clv(np.array([1.0]), 0, 0.1)
