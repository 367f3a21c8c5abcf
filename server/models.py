"""Imports every domain's tables so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from server.catalog.models import Category, Product, StorePrice
from server.delivery.models import Rider, RiderLocation, RiderShift, Trip, TripStop
from server.events.models import OutboxEvent
from server.flash.models import FlashSale, FlashSaleStore, InventoryToken
from server.forecast.models import (
    CalendarEvent,
    DailyWeather,
    DemandForecast,
    FlashSaleSchedule,
    ReplenishmentOrder,
    SalesHistory,
    StockoutHour,
)
from server.idempotency.models import IdempotencyRecord
from server.identity.models import User
from server.inventory.models import (
    InventoryJournalOffset,
    InventoryReservation,
    StockLedger,
    StoreInventory,
)
from server.ops.models import AuditLogEntry, OpsAlert
from server.orders.models import Cart, Order, OrderEvent, OrderItem
from server.payments.models import Payment, Refund
from server.picking.models import PickScan, PickTask, SubstitutionOffer
from server.stores.models import City, DarkStore, StoreBin

metadata = SQLModel.metadata

__all__ = [
    "AuditLogEntry",
    "CalendarEvent",
    "Cart",
    "Category",
    "City",
    "DailyWeather",
    "DarkStore",
    "DemandForecast",
    "FlashSale",
    "FlashSaleSchedule",
    "FlashSaleStore",
    "IdempotencyRecord",
    "InventoryJournalOffset",
    "InventoryReservation",
    "InventoryToken",
    "OpsAlert",
    "Order",
    "OrderEvent",
    "OrderItem",
    "OutboxEvent",
    "Payment",
    "PickScan",
    "PickTask",
    "Product",
    "Refund",
    "ReplenishmentOrder",
    "Rider",
    "RiderLocation",
    "RiderShift",
    "SalesHistory",
    "StockLedger",
    "StockoutHour",
    "StoreBin",
    "StoreInventory",
    "StorePrice",
    "SubstitutionOffer",
    "Trip",
    "TripStop",
    "User",
    "metadata",
]
