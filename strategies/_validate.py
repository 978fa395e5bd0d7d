"""Argument checks shared by the strategies: errors say `param=value` and what to do."""


def check_bounds(**bounds):
    """Each bound must be an int >= 0; pairs named min_X / max_X must be ordered."""
    for name, value in bounds.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name}={value!r} must be a non-negative int")
    for name, value in bounds.items():
        if name.startswith("min_"):
            top = "max_" + name[4:]
            if top in bounds and value > bounds[top]:
                raise ValueError(f"{name}={value} is larger than {top}={bounds[top]}")
