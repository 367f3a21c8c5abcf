"""The customer's client: stores, the catalogue, carts, checkout, orders and tracking."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from shared.client.base import ApiClient
from shared.schemas.catalog import Availability, CategoryPublic, ProductCard, ProductDetail
from shared.schemas.common import Page
from shared.schemas.orders import (
    CancelRequest,
    CartCreate,
    CartLineSet,
    CartPublic,
    CartSwitchStore,
    CheckoutRequest,
    DeliveryAddress,
    OrderPublic,
    SubstitutionAnswer,
)
from shared.schemas.stores import StorePublic, StoreSelection


def _given(**params: Any) -> dict[str, Any]:
    """Query parameters without the ones left out (None)."""
    return {k: v for k, v in params.items() if v is not None}


class CustomerClient(ApiClient):
    # --- stores and catalogue (no sign-in needed) ------------------------------------------
    async def stores(
        self, *, city: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[StorePublic]:
        """Dark stores (optionally of one city), a page at a time."""
        return await self._get(
            "/v1/stores", Page[StorePublic], **_given(city=city, limit=limit, cursor=cursor)
        )

    async def serviceable_stores(self, lat: float, lng: float) -> StoreSelection:
        """Stores that deliver to a location, best first; 404 ``not_serviceable`` if none."""
        return await self._get("/v1/stores/serviceable", StoreSelection, lat=lat, lng=lng)

    async def categories(self) -> list[CategoryPublic]:
        return await self._get_list("/v1/categories", CategoryPublic)

    async def products(
        self,
        store_id: str,
        *,
        category: str | None = None,
        limit: int = 40,
        cursor: str | None = None,
    ) -> Page[ProductCard]:
        """A store's products with live availability, a page at a time (by SKU id)."""
        return await self._get(
            f"/v1/stores/{store_id}/products",
            Page[ProductCard],
            **_given(category=category, limit=limit, cursor=cursor),
        )

    async def product(self, store_id: str, sku_id: str) -> ProductDetail:
        return await self._get(f"/v1/stores/{store_id}/products/{sku_id}", ProductDetail)

    async def availability(self, store_id: str, sku_ids: list[str]) -> Availability:
        """Live available units of up to 100 SKUs."""
        return await self._get(
            f"/v1/stores/{store_id}/availability", Availability, skus=",".join(sku_ids)
        )

    async def search(self, store_id: str, q: str, *, limit: int = 20) -> list[ProductCard]:
        return await self._get_list(f"/v1/stores/{store_id}/search", ProductCard, q=q, limit=limit)

    # --- cart and checkout -----------------------------------------------------------------
    async def create_cart(self, store_id: str) -> CartPublic:
        return await self._send("POST", "/v1/carts", CartPublic, CartCreate(store_id=store_id))

    async def cart(self, cart_id: uuid.UUID | str) -> CartPublic:
        return await self._get(f"/v1/carts/{cart_id}", CartPublic)

    async def set_cart_line(
        self, cart_id: uuid.UUID | str, sku_id: str, *, quantity: int
    ) -> CartPublic:
        """Set a line's quantity (a 10-minute soft hold; 0 removes it). Not enough stock is
        a 409 ``insufficient_stock``."""
        body = CartLineSet(quantity=quantity)
        return await self._send("PUT", f"/v1/carts/{cart_id}/lines/{sku_id}", CartPublic, body)

    async def remove_cart_line(self, cart_id: uuid.UUID | str, sku_id: str) -> CartPublic:
        return await self._send("DELETE", f"/v1/carts/{cart_id}/lines/{sku_id}", CartPublic)

    async def switch_cart_store(self, cart_id: uuid.UUID | str, store_id: str) -> CartPublic:
        body = CartSwitchStore(store_id=store_id)
        return await self._send("PATCH", f"/v1/carts/{cart_id}", CartPublic, body)

    async def checkout(
        self,
        cart_id: uuid.UUID | str,
        *,
        address: DeliveryAddress,
        payment_method: str = "upi",
        idempotency_key: str | None = None,
    ) -> OrderPublic:
        """Place and pay for the cart: the order, CONFIRMED (or PLACED while the payment is
        pending). A declined payment is a 402 ``payment_failed`` whose problem names the
        cancelled ``order_id``; 503 ``payment_unavailable`` leaves the cart as it was.
        Pass the same ``idempotency_key`` on a retry to get the first answer again."""
        body = CheckoutRequest(address=address, payment_method=payment_method)
        response = await self.request(
            "POST",
            f"/v1/carts/{cart_id}/checkout",
            json=body.model_dump(mode="json"),
            headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex},
        )
        return OrderPublic.model_validate(response.json())

    # --- orders and tracking ---------------------------------------------------------------
    async def orders(self, *, limit: int = 20, cursor: str | None = None) -> Page[OrderPublic]:
        """The customer's own orders, newest first."""
        return await self._get(
            "/v1/orders", Page[OrderPublic], **_given(limit=limit, cursor=cursor)
        )

    async def order(self, order_id: uuid.UUID | str) -> OrderPublic:
        """One order with its state times; its customer also sees the delivery OTP once the
        rider has picked it up."""
        return await self._get(f"/v1/orders/{order_id}", OrderPublic)

    async def cancel_order(
        self, order_id: uuid.UUID | str, *, reason: str = "changed my mind"
    ) -> OrderPublic:
        """Cancel until picking starts; later it is a 409 ``too_late_to_cancel``."""
        body = CancelRequest(reason=reason)
        return await self._send("POST", f"/v1/orders/{order_id}/cancel", OrderPublic, body)

    async def answer_substitution(
        self,
        order_id: uuid.UUID | str,
        sku_id: str,
        *,
        answer: Literal["accept", "refuse", "choose"],
        substitute_sku: str | None = None,
    ) -> OrderPublic:
        """Answer an ``order.substitution_offered`` (store policy ask) before its
        ``expires_at``: accept the proposed product, choose another candidate, or refuse
        (the line is refunded). Too late: 409 ``offer_closed``."""
        body = SubstitutionAnswer(answer=answer, substitute_sku=substitute_sku)
        return await self._send(
            "POST", f"/v1/orders/{order_id}/substitutions/{sku_id}", OrderPublic, body
        )

    def order_socket_url(self, order_id: uuid.UUID | str) -> str:
        """``/ws/orders/{id}``: a snapshot (with the OTP for its customer), then every state
        change and, once a rider has it, the rider's position and ETA."""
        return self._socket_url(f"/ws/orders/{order_id}")
