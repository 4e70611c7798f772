"""Resource quantities the way kube-apiserver stores them for built-in kinds.

The real server decodes every quantity field (container resources, PVC requests, emptyDir
sizeLimit, pod overhead) into apimachinery's resource.Quantity and writes it back in canonical
form: "1000m" is stored as "1", "1024Mi" as "1Gi", the number 1 as the string "1". Values are
rounded up (away from zero) to a multiple of 1e-9 and capped at +-(2**63 - 1). Custom resources
are stored as sent.

Written apart from the operator's C++ parser (operator/k8s/quantity.cc), from the grammar in
apimachinery's quantity.go, so the operator's tests check one against the other.
"""

import re
from fractions import Fraction

_NUMBER = re.compile(r"([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))(.*)\Z", re.S)
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)\Z")
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_MAX_NANOS = (2**63 - 1) * 10**9
NANO = 10**9


class QuantityError(ValueError):
    pass


def parse(text):
    """(nanos, format) for a quantity text: nanos is the value in units of 1e-9 (an int)."""
    m = _NUMBER.match(text)
    if not m:
        raise QuantityError(f'invalid quantity "{text}"')
    sign, whole, frac, only_frac, suffix = m.groups()
    whole = whole or ""
    frac = frac if frac is not None else (only_frac or "")
    exp10, exp2, fmt = 0, 0, "DecimalSI"
    if suffix in _DECIMAL:
        exp10 = _DECIMAL[suffix]
    elif suffix in _BINARY:
        exp2, fmt = _BINARY[suffix], "BinarySI"
    else:
        e = _EXPONENT.match(suffix)
        if not e or not -2**31 <= int(e.group(1)) < 2**31:
            raise QuantityError(f'invalid quantity "{text}": unknown suffix "{suffix}"')
        exp10, fmt = int(e.group(1)), "DecimalExponent"
    mantissa = int(whole + frac or "0")
    scale = exp10 - len(frac)
    if mantissa == 0:
        nanos = 0
    elif scale > 40:
        nanos = _MAX_NANOS
    elif scale < -(len(str(mantissa)) + 40):
        nanos = 1  # far below a nano: rounded up to one
    else:
        value = Fraction(mantissa) * Fraction(10) ** scale * 2**exp2 * NANO
        nanos = min(-((-value.numerator) // value.denominator), _MAX_NANOS)  # ceiling, then cap
    return (-nanos if sign == "-" else nanos), fmt


def canonical(text):
    """The text kube-apiserver stores for quantity `text`; raises QuantityError."""
    nanos, fmt = parse(str(text))
    if nanos == 0:
        return "0"
    sign, nanos = ("-" if nanos < 0 else ""), abs(nanos)
    if fmt == "BinarySI" and nanos % NANO == 0 and nanos >= 1024 * NANO:
        units, power = nanos // NANO, 0
        while units % 1024 == 0 and power < 6:
            units, power = units // 1024, power + 1
        return sign + str(units) + ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power]
    exponent = -9
    while nanos % 10 == 0:
        nanos, exponent = nanos // 10, exponent + 1
    while exponent % 3:
        nanos, exponent = nanos * 10, exponent - 1
    if fmt == "DecimalExponent":
        return sign + str(nanos) + (f"e{exponent}" if exponent else "")
    suffix = {v: k for k, v in _DECIMAL.items()}[exponent]
    return sign + str(nanos) + suffix


def canonicalize_fields(obj, path=""):
    """Rewrites the quantity fields of a built-in object in place; QuantityError names the field."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            canonicalize_fields(item, f"{path}[{i}]")
        return
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        here = f"{path}.{key}" if path else key
        maps = []
        if key == "resources" and isinstance(value, dict):
            maps = [(f"{here}.{k}", value[k]) for k in ("limits", "requests") if isinstance(value.get(k), dict)]
        elif key == "overhead" and isinstance(value, dict):
            maps = [(here, value)]
        elif key == "sizeLimit" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            obj[key] = _canonical_at(here, value)
        for map_path, quantities in maps:
            for name, q in quantities.items():
                quantities[name] = _canonical_at(f"{map_path}.{name}", q)
        canonicalize_fields(value, here)


def _canonical_at(path, value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QuantityError(f"{path}: quantities must be strings or numbers")
    try:
        return canonical(value if isinstance(value, str) else repr(value))
    except QuantityError as e:
        raise QuantityError(f"{path}: {e}: quantities must match the regular expression "
                            r"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'") from None
