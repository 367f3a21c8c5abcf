"""Imports every domain's tables so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from server.catalog.models import Category, Product, StorePrice
from server.delivery.models import Rider, RiderLocation
from server.events.models import OutboxEvent
from server.identity.models import User
from server.inventory.models import InventoryReservation, StockLedger, StoreInventory
from server.orders.models import Cart, Order, OrderEvent, OrderItem
from server.stores.models import City, DarkStore, StoreBin

metadata = SQLModel.metadata

__all__ = [
    "Cart",
    "Category",
    "City",
    "DarkStore",
    "InventoryReservation",
    "Order",
    "OrderEvent",
    "OrderItem",
    "OutboxEvent",
    "Product",
    "Rider",
    "RiderLocation",
    "StockLedger",
    "StoreBin",
    "StoreInventory",
    "StorePrice",
    "User",
    "metadata",
]
