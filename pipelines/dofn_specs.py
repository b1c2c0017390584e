"""Beam's question "does this DoFn use state or timers?", answered once per DoFn class.

Beam asks `apache_beam.transforms.userstate.get_dofn_specs(dofn)` every time it builds, validates,
translates or runs a ParDo: on the driver several times for every ParDo of the graph, on every
worker for every ParDo of every stage it sets up. Each call wraps every method `dir(dofn)` lists
and reads its signature (`inspect.signature`). The answer depends only on
the default arguments of the DoFn's methods (`DoFn.StateParam(...)`, `DoFn.TimerParam(...)`), which
belong to its class; so `remember_dofn_specs()` keeps it per class and per the methods an instance
shadows (`beam.Map(f)`'s DoFn sets its own `process`). A DoFn whose instance holds a bound method
(whose defaults Beam reads) is asked every time, as before. Callers get their own copies of the sets.
"""

from __future__ import annotations

import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

from apache_beam.transforms import userstate

Specs = tuple[set[Any], set[Any]]

_BEAM_GET_DOFN_SPECS: Callable[[Any], Specs] = userstate.get_dofn_specs
_BY_CLASS: weakref.WeakKeyDictionary[type, dict[frozenset[str], Specs]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()  # a worker sets up stages on several threads


def class_key(dofn: Any) -> frozenset[str] | None:
    """What, besides its class, decides `dofn`'s answer: the names of its class's methods its
    instance shadows with something that is not a bound method (Beam then skips them, as
    `beam.Map(f)`'s DoFn does its `process`); None when the instance decides it (it holds a bound
    method, whose defaults Beam reads) or the class computes attributes on demand."""
    own = getattr(dofn, "__dict__", None)
    cls = type(dofn)
    if own is None or hasattr(cls, "__getattr__"):
        return None
    if any(isinstance(value, types.MethodType) for value in own.values()):
        return None
    return frozenset(name for name in own if callable(getattr(cls, name, None)))


def get_dofn_specs(dofn: Any) -> Specs:
    """`userstate.get_dofn_specs`, computed once per class (and shadowed methods) where they decide it."""
    key = class_key(dofn)
    if key is None:
        return _BEAM_GET_DOFN_SPECS(dofn)
    cls = type(dofn)
    with _LOCK:
        found = _BY_CLASS.get(cls, {}).get(key)
    if found is None:
        found = _BEAM_GET_DOFN_SPECS(dofn)
        with _LOCK:
            _BY_CLASS.setdefault(cls, {})[key] = found
    states, timers = found
    return set(states), set(timers)


def remember_dofn_specs() -> None:
    """Answer Beam's question through `get_dofn_specs` in this process (Beam's own modules look it
    up on `userstate` at every call). Idempotent; forked workers inherit it."""
    userstate.get_dofn_specs = get_dofn_specs
