"""The config's cross-references, which no single field can check: items, BOM cycles,
device points, stages, GTINs; each driver's own checks among its devices."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from lineside.agent.domain.scrap import reason_of, reason_problem
from lineside.agent.inputs import BadInput, check_code
from lineside.agent.sparkplug.checks import sparkplug_problems
from lineside.agent.yamlsource import KeyPath, format_path
from lineside.drivers import registry

if TYPE_CHECKING:
    from lineside.agent.config import ItemConfig, LinesideConfig

ENTRY_SECTIONS = ("items", "boms", "work_centers", "meters", "devices")


def check_references(
    config: LinesideConfig, invalid: Mapping[str, set[str]] | None = None
) -> tuple[list[tuple[KeyPath, str]], list[str]]:
    """Cross-references no single field can check: items, cycles, device points, stages.

    invalid names, per section, the entries that failed their own validation: references
    to them are not reported again.
    """
    invalid = (
        {section: set(invalid.get(section, ())) for section in ENTRY_SECTIONS}
        if invalid
        else {section: set() for section in ENTRY_SECTIONS}
    )
    problems: list[tuple[KeyPath, str]] = []
    warnings: list[str] = []
    items = _Known(config.items, invalid["items"])
    for code in config.items:
        try:
            check_code(code, "item code")
        except BadInput as exc:
            problems.append((("items", code), str(exc).removeprefix("item code: ")))
    for parent, bom in config.boms.items():
        if parent not in items:
            problems.append((("boms", parent), f"BOM for unknown item {parent!r}"))
        for index, comp in enumerate(bom.components):
            where: KeyPath = ("boms", parent, "components", index, "item")
            if comp.item not in items:
                problems.append((where, f"unknown item {comp.item!r}"))
            elif comp.item == parent:
                problems.append((where, f"{parent!r} cannot consume itself"))
            elif _is_phantom(config, comp.item) and comp.item not in config.boms:
                problems.append((where, f"phantom item {comp.item!r} has no BOM to explode"))
    for start, cycle in _phantom_cycles(config):
        if len(cycle) > 2 or cycle[0] != cycle[-1] or _is_phantom(config, start):
            problems.append((("boms", start), f"phantom cycle: {' -> '.join(cycle)}"))
    if not invalid["work_centers"]:  # an invalid work center's stages are unknown
        problems += _stage_problems(config)
    problems += _gtin_problems(config)
    problems += _device_problems(config)
    problems += _signed_counter_problems(config)
    problems += sparkplug_problems(config, items)
    bad_devices = invalid["devices"]
    points = {
        f"{dev}.{point}": dev for dev, cfg in config.devices.items() for point in cfg.point_names()
    }
    used: dict[str, KeyPath] = {}

    def point_ref(ref: str | None, where: KeyPath) -> None:
        if ref is None:
            return
        if ref not in points and ref.split(".")[0] in bad_devices:
            return
        if ref not in points:
            problems.append((where, f"no device point {ref!r} (write it as device.point)"))
        elif ref in used:
            problems.append((where, f"point {ref!r} is already used by {format_path(used[ref])}"))
        else:
            used[ref] = where

    for name, wc in config.work_centers.items():
        base: KeyPath = ("work_centers", name)
        if wc.item is not None and wc.item not in items:
            problems.append(((*base, "item"), f"unknown item {wc.item!r}"))
        elif wc.item is not None and wc.item not in config.boms:
            warnings.append(f"work_centers.{name}.item: {wc.item} has no BOM; completions are held")
        for tail, role, ref in wc.counters.roles():
            point_ref(ref, (*base, "counters", *tail))
            reason = reason_of(role)
            problem = None if reason is None else reason_problem(reason, config.scrap_reasons)
            if problem is not None:
                problems.append(((*base, "counters", *tail), problem))
        for stage, ref in wc.stages.items():
            point_ref(ref, (*base, "stages", stage))
    for name, meter in config.meters.items():
        base = ("meters", name)
        point_ref(meter.point, (*base, "point"))
        if meter.item not in items:
            problems.append(((*base, "item"), f"unknown item {meter.item!r}"))
        if meter.work_center not in set(config.work_centers) | invalid["work_centers"]:
            problems.append(((*base, "work_center"), f"unknown work center {meter.work_center!r}"))
    for name, dev in config.devices.items():
        wc_ref = getattr(dev, "work_center", None)
        if wc_ref is not None and wc_ref not in set(config.work_centers) | invalid["work_centers"]:
            problems.append((("devices", name, "work_center"), f"unknown work center {wc_ref!r}"))
    return problems, warnings


def _stage_problems(config: LinesideConfig) -> list[tuple[KeyPath, str]]:
    """A BOM line's stage must be a stage some work center counts, or it is never flushed."""
    stages = {stage for wc in config.work_centers.values() for stage in wc.stages}
    out: list[tuple[KeyPath, str]] = []
    for parent, bom in config.boms.items():
        for index, comp in enumerate(bom.components):
            if comp.stage is not None and comp.stage not in stages:
                known = ", ".join(sorted(stages)) or "none: add stages: to a work center"
                out.append(
                    (
                        ("boms", parent, "components", index, "stage"),
                        f"no work center counts stage {comp.stage!r} (known: {known});"
                        " this component would never be flushed",
                    )
                )
    return out


def _gtin_problems(config: LinesideConfig) -> list[tuple[KeyPath, str]]:
    owner: dict[str, str] = {}
    out: list[tuple[KeyPath, str]] = []
    for code, item in config.items.items():
        if item.gtin is None:
            continue
        if item.gtin in owner:
            out.append(
                (
                    ("items", code, "gtin"),
                    f"GTIN {item.gtin} is also item {owner[item.gtin]}'s: a scan must mean"
                    " one item",
                )
            )
        owner.setdefault(item.gtin, code)
    return out


def _signed_counter_problems(config: LinesideConfig) -> list[tuple[KeyPath, str]]:
    """A counter or a meter's total only counts up (and wraps): a point its device says
    cannot count (a signed Modbus type) is refused rather than guessed at."""
    refs: list[tuple[KeyPath, str]] = []
    for name, wc in config.work_centers.items():
        for tail, _, ref in wc.counters.roles():
            refs.append((("work_centers", name, "counters", *tail), ref))
        refs += [(("work_centers", name, "stages", s), ref) for s, ref in wc.stages.items()]
    refs += [(("meters", name, "point"), m.point) for name, m in config.meters.items()]
    out: list[tuple[KeyPath, str]] = []
    for where, ref in refs:
        device, _, point = ref.partition(".")
        cfg = config.devices.get(device)
        problem = None if cfg is None else cfg.counter_problem(point)
        if problem is not None:
            out.append((where, f"point {ref} {problem}"))
    return out


def _device_problems(config: LinesideConfig) -> list[tuple[KeyPath, str]]:
    return [
        (("devices", p.device, p.key), p.message) for p in registry.device_problems(config.devices)
    ]


def _is_phantom(config: LinesideConfig, code: str) -> bool:
    item = config.items.get(code)
    return item is not None and item.phantom


class _Known(dict[str, "ItemConfig"]):
    """Valid items, where names of invalid entries also count as known (never phantom)."""

    def __init__(self, items: dict[str, ItemConfig], invalid: set[str]) -> None:
        super().__init__(items)
        self._invalid = invalid

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or key in self._invalid


def _phantom_cycles(config: LinesideConfig) -> list[tuple[str, list[str]]]:
    """Cycles through BOMs (phantom or not), each once: exploding them would never end."""
    found: list[tuple[str, list[str]]] = []
    reported: set[frozenset[str]] = set()
    for parent in config.boms:
        for path in bom_cycles(config.boms, lambda code: _is_phantom(config, code), parent):
            cycle = path[path.index(path[-1]) :]
            if frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                found.append((cycle[0], cycle))
    return found


class _HasComponents(Protocol):
    @property
    def components(self) -> Sequence[_HasItem]: ...


class _HasItem(Protocol):
    @property
    def item(self) -> str: ...


def bom_cycles(
    boms: Mapping[str, _HasComponents], is_phantom: Callable[[str], bool], start: str
) -> Iterator[list[str]]:
    """Every path from start back into itself through BOMs, going on through phantom
    components only (a real component is stock, not exploded): start, ..., the item met
    again. The config reports them all; a BOM change is refused on the first."""

    def visit(item: str, path: list[str]) -> Iterator[list[str]]:
        bom = boms.get(item)
        if bom is None:
            return
        for comp in bom.components:
            if comp.item in path:
                yield [*path, comp.item]
            elif is_phantom(comp.item):
                yield from visit(comp.item, [*path, comp.item])

    return visit(start, [start])
