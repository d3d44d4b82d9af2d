import pytest
from hypothesis import given, strategies as st

from xl_addin.codes import normalize_code
from xl_addin.exceptions import InvalidCodeError


@pytest.mark.parametrize("value", [700, 700.0, "700", "00700", "0700.HK", "700 HK", " 00700 ", "700.hk",
                                   "700 HK Equity", "HK.00700", "700.0"])
def test_every_way_of_typing_tencent(value):
    assert normalize_code(value) == "00700"


@pytest.mark.parametrize("value", [1.5, True, False, "", "   ", "ABC", 123456, -700, 0, None, "7OO", "700.5",
                                   float("nan"), float("inf"), "12345678", [700]])
def test_rejected_with_an_error_that_names_the_input(value):
    with pytest.raises(InvalidCodeError) as err:
        normalize_code(value)
    assert repr(value) in str(err.value)
    assert "Hong Kong stock code" in str(err.value)


@given(st.integers(min_value=1, max_value=99999))
def test_all_spellings_of_a_valid_number_agree(n):
    expected = f"{n:05d}"
    spellings = [n, float(n), str(n), f"{n:05d}", f"{n:04d}.HK", f"{n} HK", f" {n:05d} ", f"{n}.0"]
    assert {normalize_code(s) for s in spellings} == {expected}


@given(st.integers().filter(lambda n: not 1 <= n <= 99999))
def test_out_of_range_integers_are_rejected(n):
    with pytest.raises(InvalidCodeError):
        normalize_code(n)


@given(st.floats().filter(lambda x: not (x == x and x.is_integer() and 1 <= x <= 99999)))
def test_non_integral_or_out_of_range_floats_are_rejected(x):
    with pytest.raises(InvalidCodeError):
        normalize_code(x)


@given(st.text())
def test_any_text_gives_a_code_or_a_clear_error_never_another_exception(text):
    try:
        code = normalize_code(text)
    except InvalidCodeError as exc:
        assert repr(text) in str(exc)
    else:
        assert len(code) == 5 and code.isdigit() and code != "00000"
