"""The runtime type checker the tests run actadd under (``--jaxtyping-packages`` in
pyproject.toml): beartype, with the PEP 484 numeric tower (an ``int`` is a valid ``float``,
as every static checker reads the annotation)."""

from beartype import BeartypeConf, beartype

checker = beartype(conf=BeartypeConf(is_pep484_tower=True))
