"""`@record`: the runtime's dataclasses, without the cost of importing `dataclasses`.

Every `berth-runtime` command is a fresh interpreter, and importing `dataclasses`
(with `inspect`, `ast`, `dis`, `re` and `enum` behind it) and generating its methods
for the runtime's records took about 30 ms of a 100 ms `run`. A record here gets the
same behaviour the runtime uses (an `__init__` taking the fields in order, defaults
and `field(default_factory=...)`, `__repr__`, `__eq__`, `frozen=True`, `replace` and
`asdict`) from a few shared functions instead; `dataclasses`' own functions take
records too. Type checkers see the real `dataclasses` (the `TYPE_CHECKING` branch),
so field checking is unchanged.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import asdict, field, replace
    from dataclasses import dataclass as record
else:
    _MISSING = object()

    class _Field:
        __slots__ = ("default", "factory")

        def __init__(self, default: object, factory: object) -> None:
            self.default = default
            self.factory = factory

    def field(*, default=_MISSING, default_factory=_MISSING):
        return _Field(default, default_factory)

    class FrozenInstanceError(AttributeError):
        pass

    def _init(self, *args, **kwargs):
        cls = type(self)
        names = cls.__record_fields__
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments but {len(args)} were given")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {key!r}")
            values[key] = value
        setter = object.__setattr__
        for name in names:
            if name in values:
                setter(self, name, values[name])
                continue
            default = cls.__record_defaults__.get(name, _MISSING)
            if default is _MISSING:
                raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
            setter(self, name, default.factory() if isinstance(default, _Field) else default)

    def _values(self):
        return tuple(getattr(self, name) for name in self.__record_fields__)

    def _repr(self):
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_fields__)
        return f"{type(self).__qualname__}({inner})"

    def _eq(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _values(self) == _values(other)

    def _hash(self):
        return hash(_values(self))

    def _frozen_setattr(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def _frozen_delattr(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    class _DataclassFields:
        """`__dataclass_fields__`, made on first use, so that `dataclasses`' own functions
        (fields, replace, asdict, is_dataclass) take records too, in code that has paid
        for importing it."""

        def __get__(self, obj, cls):
            import dataclasses

            made = {}
            for name in cls.__record_fields__:
                default = cls.__record_defaults__.get(name, _MISSING)
                if isinstance(default, _Field):
                    f = dataclasses.field(default_factory=default.factory)
                elif default is _MISSING:
                    f = dataclasses.field()
                else:
                    f = dataclasses.field(default=default)
                f.name = name
                f.type = cls.__annotations__.get(name, object)
                f._field_type = dataclasses._FIELD
                made[name] = f
            return made

    def record(cls=None, /, *, frozen=False):
        def wrap(cls):
            if "__post_init__" in cls.__dict__ or any(hasattr(base, "__record_fields__") for base in cls.__mro__[1:]):
                raise TypeError(f"{cls.__name__}: @record has no __post_init__ and no inheritance of fields")
            names = []
            defaults = {}
            for name, annotation in cls.__dict__.get("__annotations__", {}).items():
                if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                    continue
                names.append(name)
                value = cls.__dict__.get(name, _MISSING)
                if isinstance(value, _Field):
                    delattr(cls, name)
                    if value.factory is not _MISSING:
                        defaults[name] = value
                    elif value.default is not _MISSING:
                        defaults[name] = value.default
                        setattr(cls, name, value.default)
                elif value is not _MISSING:
                    defaults[name] = value
            cls.__record_fields__ = tuple(names)
            cls.__dataclass_fields__ = _DataclassFields()
            cls.__record_defaults__ = defaults
            cls.__match_args__ = tuple(names)
            cls.__init__ = _init
            cls.__repr__ = _repr
            cls.__eq__ = _eq
            if frozen:
                cls.__setattr__ = _frozen_setattr
                cls.__delattr__ = _frozen_delattr
                cls.__hash__ = _hash
            else:
                cls.__hash__ = None
            return cls

        return wrap if cls is None else wrap(cls)

    def replace(obj, /, **changes):
        for key in changes:
            if key not in obj.__record_fields__:
                raise TypeError(f"{type(obj).__name__} has no field {key!r}")
        values = {name: getattr(obj, name) for name in obj.__record_fields__}
        values.update(changes)
        return type(obj)(**values)

    def asdict(obj):
        if hasattr(type(obj), "__record_fields__"):
            return {name: asdict(getattr(obj, name)) for name in obj.__record_fields__}
        if isinstance(obj, (list, tuple)):
            return type(obj)(asdict(v) for v in obj)
        if isinstance(obj, dict):
            return {asdict(k): asdict(v) for k, v in obj.items()}
        return obj


__all__ = ["asdict", "field", "record", "replace"]
