"""Master data for the engine: the config's items and BOMs, overlaid by item.put / bom.put."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lineside.agent.config import (
    BomConfig,
    ItemConfig,
    LinesideConfig,
    WorkCenterConfig,
)
from lineside.agent.config_checks import bom_cycles, check_references
from lineside.agent.domain.model import Bom, Component, Item, MasterData, WorkCenter
from lineside.agent.yamlsource import format_path


def item_from(code: str, cfg: ItemConfig) -> Item:
    return Item(
        code=code,
        uom=cfg.uom,
        decimals=cfg.decimals,
        cost=cfg.cost,
        conversion_cost=cfg.conversion_cost,
        phantom=cfg.phantom,
        gtin=cfg.gtin,
        removal=cfg.removal,
        min_shelf_life_days=cfg.min_shelf_life_days,
    )


def bom_from(item: str, cfg: BomConfig) -> Bom:
    return Bom(
        item=item,
        per=cfg.per,
        components=tuple(
            Component(c.item, c.qty, c.scrap_pct, c.stage, c.flush) for c in cfg.components
        ),
    )


def work_center_from(code: str, cfg: WorkCenterConfig) -> WorkCenter:
    return WorkCenter(
        code=code,
        location=cfg.location,
        item=cfg.item,
        on_shortage=cfg.on_shortage,
        stages=tuple(cfg.stages),
    )


def build(config: LinesideConfig, overlays: Mapping[str, Any] | None = None) -> MasterData:
    """The config's master data with the ledger's overlays (validated again) on top."""
    items = {code: item_from(code, cfg) for code, cfg in config.items.items()}
    boms = {code: bom_from(code, cfg) for code, cfg in config.boms.items()}
    for code, data in (overlays or {}).get("items", {}).items():
        items[code] = item_from(code, ItemConfig.model_validate(data))
    for code, data in (overlays or {}).get("boms", {}).items():
        boms[code] = bom_from(code, BomConfig.model_validate(data))
    wcs = {code: work_center_from(code, cfg) for code, cfg in config.work_centers.items()}
    locations = frozenset(wc.location for wc in wcs.values()) | frozenset(config.locations)
    return MasterData(items=items, boms=boms, work_centers=wcs, locations=locations)


def put_problems(
    config: LinesideConfig,
    overlays: Mapping[str, Any],
    *,
    item: tuple[str, ItemConfig] | None = None,
    bom: tuple[str, BomConfig] | None = None,
) -> list[str]:
    """What `lineside check` would find in the master data once item or bom is put, and
    did not find before: item.put and bom.put follow the config file's rules."""
    current = _with_overlays(config, overlays)
    items, boms = dict(current.items), dict(current.boms)
    if item is not None:
        items[item[0]] = item[1]
    if bom is not None:
        boms[bom[0]] = bom[1]
    trial = current.model_copy(update={"items": items, "boms": boms})
    known = {(path, message) for path, message in check_references(current)[0]}
    return [
        f"{format_path(path)}: {message}"
        for path, message in check_references(trial)[0]
        if (path, message) not in known
    ]


def _with_overlays(config: LinesideConfig, overlays: Mapping[str, Any]) -> LinesideConfig:
    items = dict(config.items)
    boms = dict(config.boms)
    for code, data in overlays.get("items", {}).items():
        items[code] = ItemConfig.model_validate(data)
    for code, data in overlays.get("boms", {}).items():
        boms[code] = BomConfig.model_validate(data)
    return config.model_copy(update={"items": items, "boms": boms})


def phantom_cycle(master: MasterData, start: str) -> list[str] | None:
    """A cycle reachable from start through phantom items, or None."""
    phantom = {code for code, item in master.items.items() if item.phantom}
    return next(bom_cycles(master.boms, phantom.__contains__, start), None)
