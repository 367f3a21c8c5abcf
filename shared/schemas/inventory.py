"""Stock rows and the store staff's stock changes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StockRow(BaseModel):
    """Stock of one SKU at one store: physical = available + reserved + damaged + in_transit."""

    model_config = ConfigDict(from_attributes=True)

    store_id: str
    sku_id: str
    available_qty: int
    reserved_qty: int
    damaged_qty: int
    in_transit_qty: int
    reorder_level: int
    max_capacity: int
    bin_code: str | None = None
    version: int

    @property
    def physical_qty(self) -> int:
        return self.available_qty + self.reserved_qty + self.damaged_qty + self.in_transit_qty

    @property
    def low_stock(self) -> bool:
        return self.available_qty <= self.reorder_level


class ReceiveStock(BaseModel):
    quantity: int = Field(ge=1, le=10_000, examples=[24])
    from_transit: bool = Field(
        default=True,
        description="true: a transfer arrives (in_transit -> available); "
        "false: new stock received at the store",
    )
    reference: str | None = Field(default=None, max_length=80, examples=["TRF-20261124-17"])


class DamageStock(BaseModel):
    quantity: int = Field(ge=1, le=10_000, examples=[2])
    reason: str = Field(min_length=1, max_length=200, examples=["crushed carton"])


class CountStock(BaseModel):
    counted: int = Field(
        ge=0, le=100_000, description="units on the shelf, held ones included", examples=[31]
    )
    version: int = Field(ge=0, le=2**62, description="the stock row's version when the count began")
    reason: str | None = Field(default=None, max_length=200)


class WriteOffStock(BaseModel):
    quantity: int = Field(ge=1, le=10_000, description="damaged units leaving the books")
    version: int = Field(ge=0, le=2**62, description="the stock row's version when it was read")
    reason: str = Field(min_length=1, max_length=200, examples=["expired, binned"])


class TransferStock(BaseModel):
    to_store_id: str = Field(
        min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$", examples=["BLR-IND"]
    )
    quantity: int = Field(ge=1, le=10_000, description="available units sent", examples=[12])
    version: int = Field(
        ge=0, le=2**62, description="the sending store's row version when it was read"
    )
    reason: str | None = Field(default=None, max_length=200)


class TransferPublic(BaseModel):
    """A transfer on its way: out of the source's available, in the destination's in
    transit until the destination receives it (``receive`` with ``from_transit``)."""

    transfer_id: str = Field(description="the ledger reference of both sides")
    source: StockRow
    destination: StockRow
