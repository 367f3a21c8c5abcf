"""Every Lua script the server runs in Redis, loaded once into one registry.

Scripts live beside their domain as ``server/<domain>/lua/<name>.lua`` and are named
``"<domain>/<name>"`` (``"inventory/reserve"``, ``"flash/join"``, ``"kit/lease"``). A file
whose name starts with ``_`` is a prelude, not a script: it is put in front of each script
of its folder that calls one of the ``local function``s it defines.

A call runs by EVALSHA (the SHA is known here, so nothing is registered per client) and
loads the script on NOSCRIPT, e.g. after a Redis restart; ``load_all`` loads them all at
startup, so a script Redis cannot compile stops the server, not a request. Each script
stays behind one Python function of its domain that turns the answer into a value or a
domain error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, KeyT

_PRELUDE_FUNCTION = re.compile(r"^local function (\w+)\(", re.MULTILINE)


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str  # what EVALSHA names it by


def _script(name: str, source: str) -> Script:
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


def _folder_scripts(domain: str, folder: Traversable) -> dict[str, Script]:
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".lua")), key=lambda f: f.name)
    preludes = [f.read_text() for f in files if f.name.startswith("_")]
    found: dict[str, Script] = {}
    for file in files:
        if file.name.startswith("_"):
            continue
        body = file.read_text()
        used = [
            prelude
            for prelude in preludes
            if any(re.search(rf"\b{f}\(", body) for f in _PRELUDE_FUNCTION.findall(prelude))
        ]
        name = f"{domain}/{file.name.removesuffix('.lua')}"
        found[name] = _script(name, "\n".join([*used, body]))
    return found


def _load() -> dict[str, Script]:
    found: dict[str, Script] = {}
    for package in resources.files("server").iterdir():
        folder = package / "lua"
        if folder.is_dir():
            found |= _folder_scripts(package.name, folder)
    return found


SCRIPTS = _load()


async def run(
    client: aioredis.Redis,
    name: str,
    *,
    keys: Sequence[KeyT],
    args: Sequence[EncodableT] = (),
) -> Any:
    """Run script ``name`` with ``keys`` (each one through ``KEYS``) and ``args``."""
    script = SCRIPTS[name]
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script.source)
        return await client.evalsha(script.sha, len(keys), *keys, *args)


async def run_each(
    client: aioredis.Redis,
    name: str,
    calls: Sequence[tuple[Sequence[KeyT], Sequence[EncodableT]]],
) -> list[Any]:
    """Script ``name`` once per ``(keys, args)`` of ``calls``, pipelined (one round trip;
    not atomic together: each call is its own step, so the script must be harmless to run
    again, as the whole pipeline is after a NOSCRIPT)."""
    if len(calls) == 1:
        (keys, args), *_ = calls
        return [await run(client, name, keys=keys, args=args)]
    script = SCRIPTS[name]

    def pipelined() -> Any:
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return pipe

    try:
        return list(await pipelined().execute())
    except NoScriptError:
        await client.script_load(script.source)
        return list(await pipelined().execute())


def text(value: Any) -> str:
    """One item of a script's answer as text (bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def load_all(client: aioredis.Redis) -> None:
    """Load every script into Redis (a compile error surfaces here, at startup)."""
    for script in SCRIPTS.values():
        await client.script_load(script.source)
