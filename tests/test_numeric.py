from fractions import Fraction

import pytest

from runtime.verifiers.numeric import extract_number, numeric_equal, parse_number


def test_exact_decimal_and_fraction_equality():
    assert numeric_equal("9.9", "9.90")
    assert numeric_equal("0.5", "1/2")
    assert numeric_equal(" -570 ", "-570")
    assert not numeric_equal("9.11", "9.9")
    assert numeric_equal("3.14", "3.1416", tolerance=0.01)


def test_rejects_anything_but_one_number():
    for bad in ["", "12 or 13", "1,2", "12abc", "=12", "--3", "1/0", "nan",
                "5,198", "The answer is 12.", "x = 12"]:
        assert parse_number(bad) is None, bad
        assert not numeric_equal(bad, "12")


@pytest.mark.parametrize("text,value", [
    ("46", "46"),
    ("The answer is 5198.", "5198"),
    ("5,198", "5198"),
    ("1,234,567.5", "2469135/2"),
    ("The total is -1,234 dollars!", "-1234"),
    ("$46$", "46"),
    ("\\boxed{46}", "46"),
    ("$\\boxed{5{,}198}$.", "5198"),
    ("\\(\\frac{1}{2}\\)", "1/2"),
    ("x = 5", "5"),
    ("So 12 + 34 = 46.", "46"),
    ("4821 + 377 = 5198", "5198"),
    ("12 + 34 = 40 + 6 = 46", "46"),
    ("\\sqrt{16} = 4", "4"),
    ("46. The answer is 46.", "46"),
    ("First, 12 + 34 = 46, so the answer is 46.", "46"),
    ("46 = 46.0", "46"),
    ("0.5", "1/2"),
])
def test_extracts_the_final_number_from_prose(text, value):
    assert extract_number(text) == (Fraction(value), [])


@pytest.mark.parametrize("text,flags", [
    ("", ["empty"]),
    ("   ", ["empty"]),
    ("5,19", []),                      # not thousands-grouped, so no number at all
    ("12,3456", []),
    ("1234,567", []),
    ("forty-six", []),
    ("It is \\sqrt{16}", []),          # a number inside other LaTeX is not an answer
    ("5198th", []),
    ("1/0", []),
    ("3 or 4", ["hedge", "several_answers"]),
    ("either 3 or 4", ["hedge", "several_answers"]),
    ("maybe 5", ["hedge"]),
    ("It is about 5000.", ["hedge"]),
    ("x > 5", ["hedge"]),
    ("x \\approx 5", ["hedge"]),
    ("The answer is not 5.", ["hedge"]),
    ("It is 5 and also 6", ["several_answers"]),
    ("45 46", ["several_answers"]),
    ("45 = 46", ["several_answers"]),
    ("4821+377", ["several_answers"]),  # restating the question is not an answer
    ("\\boxed{3} \\boxed{4}", ["several_answers"]),
    ("12 + 34 = 46 apples", ["several_answers"]),  # the right side is not one number
])
def test_rejects_what_is_not_one_final_number(text, flags):
    assert extract_number(text) == (None, flags)
