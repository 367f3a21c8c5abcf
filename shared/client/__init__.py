"""The typed async API clients (httpx + websockets), one per role: ``CustomerClient``,
``PickerClient``, ``RiderClient`` and ``ManagerClient`` share ``ApiClient`` (transport,
sign-in, errors). Every failure is an ``ApiError`` carrying the problem's stable ``code``
(``ConnectionLost`` when the server could not be reached)."""

from shared.client.base import ApiClient, ApiError, ConnectionLost
from shared.client.customer import CustomerClient
from shared.client.manager import ManagerClient
from shared.client.picker import PickerClient
from shared.client.rider import RiderClient

__all__ = [
    "ApiClient",
    "ApiError",
    "ConnectionLost",
    "CustomerClient",
    "ManagerClient",
    "PickerClient",
    "RiderClient",
]
