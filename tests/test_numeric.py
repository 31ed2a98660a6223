from runtime.verifiers.numeric import numeric_equal, parse_number


def test_exact_decimal_and_fraction_equality():
    assert numeric_equal("9.9", "9.90")
    assert numeric_equal("0.5", "1/2")
    assert numeric_equal(" -570 ", "-570")
    assert not numeric_equal("9.11", "9.9")
    assert numeric_equal("3.14", "3.1416", tolerance=0.01)


def test_rejects_anything_but_one_number():
    for bad in ["", "12 or 13", "1,2", "12abc", "=12", "--3", "1/0", "nan"]:
        assert parse_number(bad) is None, bad
        assert not numeric_equal(bad, "12")
