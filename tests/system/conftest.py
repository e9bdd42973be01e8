"""The system tier runs on tiny random models too, so torch runs on one thread here as in the
unit tier."""

from one_thread import _one_thread  # noqa: F401  (autouse: every system test runs on one thread)
