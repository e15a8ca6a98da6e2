"""Agent accounts, presence and capacity; ``python -m handoff.agents`` manages accounts.

Passwords are stored only as argon2id hashes. Presence (online, away, offline) and
capacity (how many chats at once) decide whether a waiting customer is promised a wait
time or told honestly that nobody is available right now.

    python -m handoff.agents add alice [--capacity 3]      # asks for the password twice
    echo 's3cret' | python -m handoff.agents add alice --password-stdin
    python -m handoff.agents list | remove NAME | passwd NAME
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import sys
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from handoff import keys

STATUSES = ("online", "away", "offline")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
MIN_PASSWORD = 8
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Agent:
    name: str
    status: str
    capacity: int
    active: int

    def as_json(self) -> dict:
        return {"name": self.name, "status": self.status, "capacity": self.capacity, "active": self.active}


class AgentError(ValueError):
    pass


class Agents:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, name: str, password: str, capacity: int = 3) -> None:
        if not NAME_PATTERN.match(name):
            raise AgentError("agent names are 1-32 letters, digits, '.', '_' or '-'")
        if len(password) < MIN_PASSWORD:
            raise AgentError(f"passwords need at least {MIN_PASSWORD} characters")
        if capacity < 1:
            raise AgentError("capacity must be at least 1")
        await self.redis.hset(
            keys.agent(name),
            mapping={"password_hash": _hasher.hash(password), "capacity": capacity, "status": "offline"},
        )
        await self.redis.sadd(keys.AGENTS, name)

    async def set_password(self, name: str, password: str) -> None:
        if not await self.exists(name):
            raise AgentError(f"no agent named {name!r}")
        if len(password) < MIN_PASSWORD:
            raise AgentError(f"passwords need at least {MIN_PASSWORD} characters")
        await self.redis.hset(keys.agent(name), "password_hash", _hasher.hash(password))

    async def remove(self, name: str) -> bool:
        removed = await self.redis.srem(keys.AGENTS, name)
        await self.redis.delete(keys.agent(name))
        return bool(removed)

    async def exists(self, name: str) -> bool:
        return bool(await self.redis.sismember(keys.AGENTS, name))

    async def verify(self, name: str, password: str) -> bool:
        stored = await self.redis.hget(keys.agent(name), "password_hash")
        if stored is None:
            _hasher.hash(password)  # same cost as a real check: no timing hint that the name is unknown
            return False
        try:
            return _hasher.verify(stored.decode() if isinstance(stored, bytes) else stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def get(self, name: str) -> Agent | None:
        data = await self.redis.hgetall(keys.agent(name))
        if not data:
            return None
        data = {_s(k): _s(v) for k, v in data.items()}
        active = await self.redis.scard(keys.agent_chats(name))
        return Agent(name, data.get("status", "offline"), int(data.get("capacity", 3)), int(active))

    async def set_status(self, name: str, status: str) -> Agent:
        if status not in STATUSES:
            raise AgentError(f"status must be one of {', '.join(STATUSES)}")
        await self.redis.hset(keys.agent(name), mapping={"status": status, "auto_away": ""})
        agent = await self.get(name)
        assert agent is not None
        return agent

    async def connected(self, name: str) -> None:
        """A console opened: an agent who was set away only because it closed comes back."""
        if await self.redis.hget(keys.agent(name), "auto_away"):
            await self.redis.hset(keys.agent(name), mapping={"status": "online", "auto_away": ""})

    async def disconnected(self, name: str) -> None:
        """The agent's last console closed: an online agent becomes away until it returns."""
        status = await self.redis.hget(keys.agent(name), "status")
        if _s(status or b"") == "online":
            await self.redis.hset(keys.agent(name), mapping={"status": "away", "auto_away": "1"})

    async def all(self) -> list[Agent]:
        names = sorted(_s(n) for n in await self.redis.smembers(keys.AGENTS))
        return [agent for agent in [await self.get(n) for n in names] if agent]

    async def availability(self) -> tuple[int, int]:
        """(agents online, free chat slots among them)."""
        online = [a for a in await self.all() if a.status == "online"]
        return len(online), sum(max(0, a.capacity - a.active) for a in online)


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise AgentError("the passwords do not match")
    return first


async def _main(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    address = load_settings().redis
    redis = Redis(host=address.host, port=address.port, db=address.db, password=address.password or None)
    try:
        await redis.ping()
    except Exception:
        print(
            f"cannot reach Redis at {address.host}:{address.port}; start `make run` first or set REDIS_URL",
            file=sys.stderr,
        )
        return 2
    agents = Agents(redis)
    try:
        if args.command == "add":
            await agents.add(args.name, _read_password(args.password_stdin), args.capacity)
            print(f"agent {args.name} saved; they can log in to the console now")
        elif args.command == "passwd":
            await agents.set_password(args.name, _read_password(args.password_stdin))
            print(f"password of {args.name} changed")
        elif args.command == "remove":
            print(f"agent {args.name} removed" if await agents.remove(args.name) else f"no agent named {args.name}")
        else:
            for agent in await agents.all():
                print(f"{agent.name}\t{agent.status}\t{agent.active}/{agent.capacity} chats")
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await redis.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handoff.agents", description="Manage agent accounts.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("add", "passwd"):
        command = commands.add_parser(name)
        command.add_argument("name")
        command.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        if name == "add":
            command.add_argument("--capacity", type=int, default=3, help="chats at once (default 3)")
    commands.add_parser("remove").add_argument("name")
    commands.add_parser("list")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
