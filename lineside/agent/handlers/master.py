"""Master data put over MQTT (item.put, bom.put): checked like the config file, then kept."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ValidationError

from lineside.agent import master as masterdata
from lineside.agent.commands import PutBom, PutItem, Rejected
from lineside.agent.config import BomConfig, ItemConfig
from lineside.agent.domain.model import MasterData
from lineside.agent.handlers.context import Context, checked
from lineside.agent.handlers.held import retry_held
from lineside.agent.inputs import check_code, decimal_text
from lineside.agent.ledger.work import Work
from lineside.validation import describe


def put_item(ctx: Context, uow: Work, cmd: PutItem) -> None:
    checked(check_code, cmd.item, "item")
    try:
        cfg = ItemConfig.model_validate(cmd.data)
    except ValidationError as exc:
        raise Rejected(_pydantic_message(exc)) from None
    _check_stock_allows(ctx, uow, cmd.item, cfg)
    _check_master(ctx, uow, item=(cmd.item, cfg))
    uow.put_master("master_items", cmd.item, cfg.model_dump(mode="json"), cmd.ts)
    ctx.refresh_from(uow)
    retry_held(ctx, uow, cmd.ts)


def put_bom(ctx: Context, uow: Work, cmd: PutBom) -> None:
    ctx.item(cmd.item)
    try:
        cfg = BomConfig.model_validate(cmd.data)
    except ValidationError as exc:
        raise Rejected(_pydantic_message(exc)) from None
    for comp in cfg.components:
        ctx.item(comp.item)
        if comp.item == cmd.item:
            raise Rejected(f"{cmd.item} cannot consume itself")
    _check_master(ctx, uow, bom=(cmd.item, cfg))
    bom = masterdata.bom_from(cmd.item, cfg)
    master = ctx.master
    trial = MasterData(master.items, {**master.boms, cmd.item: bom}, master.work_centers)
    cycle = masterdata.phantom_cycle(trial, cmd.item)
    if cycle:
        raise Rejected(f"phantom cycle: {' -> '.join(cycle)}")
    uow.put_master("master_boms", cmd.item, cfg.model_dump(mode="json"), cmd.ts)
    ctx.refresh_from(uow)
    retry_held(ctx, uow, cmd.ts)


def _check_master(
    ctx: Context,
    uow: Work,
    *,
    item: tuple[str, ItemConfig] | None = None,
    bom: tuple[str, BomConfig] | None = None,
) -> None:
    problems = masterdata.put_problems(ctx.config, uow.master_overlays(), item=item, bom=bom)
    if problems:
        raise Rejected("; ".join(problems))


def _check_stock_allows(ctx: Context, uow: Work, code: str, cfg: ItemConfig) -> None:
    """What only stock on hand forbids: balances and journal must keep one meaning."""
    old = ctx.master.items.get(code)
    on_hand = uow.on_hand(code) if old is not None else []
    if old is None or not on_hand:
        return
    stocked = f"{code} has stock on hand ({decimal_text(sum(on_hand, Decimal(0)))} {old.uom})"
    if cfg.uom != old.uom:
        raise Rejected(f"{stocked}: its uom cannot change from {old.uom} to {cfg.uom}")
    if cfg.decimals < old.decimals:
        raise Rejected(f"{stocked}: its decimals cannot go down from {old.decimals}")
    if cfg.phantom:
        raise Rejected(f"{stocked}: it cannot become a phantom (count it to 0 first)")


def _pydantic_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc, message = describe(err, docs="docs/mqtt.md")
        parts.append(f"{'.'.join(map(str, loc)) or '(payload)'}: {message}")
    return "; ".join(parts)
