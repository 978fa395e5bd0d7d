"""gradfuzz: property-based verification of automatic differentiation.

The machinery behind the property tests, in layers that import downward only:
`findings`, `guard`, `graph`, `oracle`, `strict`, `checks`, `registry` and
`targets` sit on the engine; the `strategies` package sits on them; the
`properties` tests on the strategies; `plugin`, `report`, `replay` and `cli` on
top. Importing this package imports none of them.
"""

__version__ = "0.2.0"
