"""Agent accounts, presence and capacity; ``python -m handoff.agents`` manages accounts.

Passwords are stored only as argon2id hashes, checked on a small thread pool (argon2 takes
a tenth of a second of CPU by design; on the event loop a flood of wrong passwords would
stall every console). Each agent has an ``epoch`` that changes with the password: a
console session remembers the epoch it was opened under, so changing the password or
removing the agent ends every session at once. Presence (online, away, offline) and
capacity (how many chats at once) decide whether a waiting customer is promised a wait
time or told honestly that nobody is available right now.

:class:`LoginGuard` slows password guessing without letting an attacker lock a real agent
out: see its docstring.

    python -m handoff.agents add alice [--capacity 3]      # asks for the password twice
    echo 's3cret' | python -m handoff.agents add alice --password-stdin
    python -m handoff.agents list | remove NAME | passwd NAME
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from bot.ratelimit import Decision, Limit, RateLimiter
from handoff import keys
from handoff.queue import Queue

STATUSES = ("online", "away", "offline")
# What an account may do in the console: answer chats (agent), look after the knowledge base
# (editor). One person can hold both; an account without roles saved is an agent (as every
# account was before roles existed).
ROLES = ("agent", "editor", "lead")
DEFAULT_ROLES = ("agent",)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
SKILL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MIN_PASSWORD = 8
SESSION_TTL = 12 * 3600
_hasher = PasswordHasher()

# argon2 (64 MiB, a tenth of a second each) runs on this many threads; more checks than
# MAX_PENDING_CHECKS waiting for one are refused at once (LoginBusy) instead of queueing.
ARGON2_THREADS = max(1, min(4, os.cpu_count() or 1))
MAX_PENDING_CHECKS = 64
_pool: ThreadPoolExecutor | None = None
_T = TypeVar("_T")


@dataclass(frozen=True)
class Agent:
    name: str
    status: str
    capacity: int
    active: int
    roles: tuple[str, ...] = DEFAULT_ROLES
    # Skills: the teams and languages the agent takes chats of; empty means any.
    teams: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    away_since: float = 0.0  # when the console closed (auto-away), else 0

    def covers(self, team: str | None, language: str | None) -> bool:
        """Whether a chat of ``team`` in ``language`` is one this agent takes."""
        return (not self.teams or not team or team in self.teams) and (
            not self.languages or not language or language in self.languages
        )

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "capacity": self.capacity,
            "active": self.active,
            "roles": list(self.roles),
            "teams": list(self.teams),
            "languages": list(self.languages),
        }


def parse_skills(text: str | None) -> tuple[str, ...]:
    """``"billing, technical"`` as a tuple of names; empty means any."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in (text or "").split(",") if part.strip()))
    bad = [n for n in names if not SKILL_PATTERN.match(n)]
    if bad:
        raise AgentError(f"skill names are letters, digits, '-' and '_': {', '.join(bad)}")
    return names


def parse_roles(text: str | None) -> tuple[str, ...]:
    """``"agent,editor"`` as a tuple in :data:`ROLES` order; unknown names are an error."""
    if not text:
        return DEFAULT_ROLES
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = names - set(ROLES)
    if unknown:
        raise AgentError(f"unknown role(s) {', '.join(sorted(unknown))}; roles are {', '.join(ROLES)}")
    if not names:
        raise AgentError(f"give at least one role of {', '.join(ROLES)}")
    return tuple(role for role in ROLES if role in names)


class AgentError(ValueError):
    pass


class LoginBusy(RuntimeError):
    """Too many password checks are waiting already; the caller should try again shortly."""


async def _off_loop(function: Callable[..., _T], *args: object) -> _T:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=ARGON2_THREADS, thread_name_prefix="argon2")
    return await asyncio.get_running_loop().run_in_executor(_pool, function, *args)


def _check_password(stored: str | None, password: str) -> bool:
    if stored is None:
        _hasher.hash(password)  # same cost as a real check: no timing hint that the name is unknown
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


class Agents:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending = 0

    async def add(
        self,
        name: str,
        password: str,
        capacity: int = 3,
        roles: tuple[str, ...] = DEFAULT_ROLES,
        teams: tuple[str, ...] = (),
        languages: tuple[str, ...] = (),
    ) -> None:
        if not NAME_PATTERN.match(name):
            raise AgentError("agent names are 1-32 letters, digits, '.', '_' or '-'")
        if len(password) < MIN_PASSWORD:
            raise AgentError(f"passwords need at least {MIN_PASSWORD} characters")
        if capacity < 1:
            raise AgentError("capacity must be at least 1")
        hashed = await _off_loop(_hasher.hash, password)
        await self.redis.hset(
            keys.agent(name),
            mapping={
                "password_hash": hashed,
                "capacity": capacity,
                "status": "offline",
                "epoch": _new_epoch(),
                "roles": ",".join(roles),
                "teams": ",".join(teams),
                "languages": ",".join(languages),
            },
        )
        await self.redis.sadd(keys.AGENTS, name)

    async def set_skills(self, name: str, teams: tuple[str, ...], languages: tuple[str, ...]) -> None:
        """The teams and languages the agent takes chats of (empty: any); applies to the next chat."""
        if not await self.exists(name):
            raise AgentError(f"no agent named {name!r}")
        await self.redis.hset(keys.agent(name), mapping={"teams": ",".join(teams), "languages": ",".join(languages)})

    async def set_password(self, name: str, password: str) -> None:
        """Change the password; every console session of the agent ends with it."""
        if not await self.exists(name):
            raise AgentError(f"no agent named {name!r}")
        if len(password) < MIN_PASSWORD:
            raise AgentError(f"passwords need at least {MIN_PASSWORD} characters")
        hashed = await _off_loop(_hasher.hash, password)
        await self.redis.hset(keys.agent(name), mapping={"password_hash": hashed, "epoch": _new_epoch()})

    async def remove(self, name: str) -> bool:
        """Remove the account: its sessions end (they need the account's epoch) and the
        chats it held wait in the queue again, since nobody else could answer them."""
        removed = await self.redis.srem(keys.AGENTS, name)
        await Queue(self.redis).return_chats_of(name)
        await self.redis.delete(keys.agent(name), keys.unread(name), keys.login_known(name))
        return bool(removed)

    async def set_roles(self, name: str, roles: tuple[str, ...]) -> None:
        """Change what the account may do; it applies to the next request of every session."""
        if not await self.exists(name):
            raise AgentError(f"no agent named {name!r}")
        await self.redis.hset(keys.agent(name), "roles", ",".join(roles))

    async def roles(self, name: str) -> tuple[str, ...]:
        """The account's roles, read on every request so a change applies at once."""
        try:
            return parse_roles(_s(await self.redis.hget(keys.agent(name), "roles") or b""))
        except AgentError:
            return ()  # a hand-edited hash with a wrong role name grants nothing

    async def exists(self, name: str) -> bool:
        return bool(await self.redis.sismember(keys.AGENTS, name))

    async def verify(self, name: str, password: str) -> bool:
        """Check a password on the argon2 threads; raises :class:`LoginBusy` when too many
        checks are already waiting, so a flood cannot queue without bound."""
        if self._pending >= MAX_PENDING_CHECKS:
            raise LoginBusy("too many sign-ins at once")
        self._pending += 1
        try:
            stored = await self.redis.hget(keys.agent(name), "password_hash") if NAME_PATTERN.match(name) else None
            return await _off_loop(_check_password, None if stored is None else _s(stored), password)
        finally:
            self._pending -= 1

    # --- console sessions ---------------------------------------------------------------

    async def start_session(self, name: str) -> str:
        """A new session token for ``name``, bound to the agent's current epoch."""
        token = secrets.token_urlsafe(32)
        epoch = _s(await self.redis.hget(keys.agent(name), "epoch") or b"")
        await self.redis.set(keys.session(token), f"{name}:{epoch}", ex=SESSION_TTL)
        return token

    async def session_agent(self, token: str) -> str | None:
        """The agent a session belongs to, or ``None`` if it expired, was ended, or the agent
        was removed or changed their password since it was opened."""
        value = await self.redis.get(keys.session(token))
        if value is None:
            return None
        # Sessions from before epochs were kept hold only the name: epoch "" (no epoch yet).
        name, _, epoch = _s(value).partition(":")
        password_hash, current = await self.redis.hmget(keys.agent(name), "password_hash", "epoch")
        if password_hash is None or not secrets.compare_digest(_s(current or b""), epoch):
            return None
        return name

    async def end_session(self, token: str) -> None:
        await self.redis.delete(keys.session(token))

    async def get(self, name: str) -> Agent | None:
        data = await self.redis.hgetall(keys.agent(name))
        if not data:
            return None
        data = {_s(k): _s(v) for k, v in data.items()}
        active = await self.redis.scard(keys.agent_chats(name))
        try:
            roles = parse_roles(data.get("roles"))
        except AgentError:
            roles = ()
        try:
            teams, languages = parse_skills(data.get("teams")), parse_skills(data.get("languages"))
        except AgentError:
            teams, languages = (), ()
        return Agent(
            name,
            data.get("status", "offline"),
            int(data.get("capacity", 3)),
            int(active),
            roles,
            teams=teams,
            languages=languages,
            away_since=float(data.get("away_since") or 0) if data.get("auto_away") else 0.0,
        )

    async def set_status(self, name: str, status: str) -> Agent:
        if status not in STATUSES:
            raise AgentError(f"status must be one of {', '.join(STATUSES)}")
        if not await self.exists(name):  # never re-create the hash of a removed agent
            raise AgentError(f"no agent named {name!r}")
        await self.redis.hset(keys.agent(name), mapping={"status": status, "auto_away": ""})
        agent = await self.get(name)
        if agent is None:
            raise AgentError(f"no agent named {name!r}")
        return agent

    async def connected(self, name: str) -> None:
        """A console opened: an agent who was set away only because it closed comes back."""
        if await self.redis.hget(keys.agent(name), "auto_away"):
            await self.redis.hset(keys.agent(name), mapping={"status": "online", "auto_away": ""})

    async def disconnected(self, name: str) -> None:
        """The agent's last console closed: an online agent becomes away until it returns."""
        status = await self.redis.hget(keys.agent(name), "status")
        if _s(status or b"") == "online":
            await self.redis.hset(
                keys.agent(name), mapping={"status": "away", "auto_away": "1", "away_since": repr(time.time())}
            )

    async def all(self) -> list[Agent]:
        names = sorted(_s(n) for n in await self.redis.smembers(keys.AGENTS))
        return [agent for agent in [await self.get(n) for n in names] if agent]

    async def availability(self) -> tuple[int, int]:
        """(agents online, free chat slots among them)."""
        online = [a for a in await self.all() if a.status == "online"]
        return len(online), sum(max(0, a.capacity - a.active) for a in online)


@dataclass(frozen=True)
class LoginPolicy:
    """How hard password guessing is made; the defaults suit a team behind one office NAT."""

    # Every attempt from one address (bounds the argon2 work any one address can cause).
    per_address: Limit = field(default_factory=lambda: Limit(burst=20, per_minute=30))
    # Attempts at one name from addresses that failed at it before and never got in with it.
    per_name: Limit = field(default_factory=lambda: Limit(burst=10, per_minute=10))
    free_failures: int = 3  # wrong passwords per (name, address) before any wait
    first_delay: float = 2.0  # seconds; doubles with each further failure
    max_delay: float = 60.0
    forget_after: int = 15 * 60  # failures are forgotten this long after the last one
    known_for: int = 30 * 86400  # an address the agent logged in from stays known this long


# KEYS[1] failures of (name, address), KEYS[2] its lock; ARGV[1] free failures, ARGV[2]
# first delay (ms), ARGV[3] max delay (ms), ARGV[4] seconds failures are remembered.
# Returns 0 and counts the attempt as failed, or the milliseconds the pair must wait.
_CHARGE = """
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then return wait end
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local free = tonumber(ARGV[1])
if n >= free then
  local delay = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (n - free))
  redis.call('SET', KEYS[2], '1', 'PX', math.floor(delay))
end
return 0
"""


class LoginGuard:
    """Slows password guessing down; never locks a real agent out for long.

    * Per address, every attempt takes a token (``per_address``): one machine cannot try
      password after password across names, nor keep the argon2 threads busy.
    * Per (name, address), after ``free_failures`` wrong passwords each further one makes
      that pair wait ``first_delay`` doubled per failure, at most ``max_delay``. The wait is
      the attacker's: the real agent, at another address, is not affected. An attempt
      counts as failed from the moment it is let through until :meth:`succeeded` says
      otherwise, so 30 guesses sent at once get no more through than 30 in a row.
    * Per name, attempts from addresses that already failed at that name and never got in
      with it share one bucket (``per_name``), so many addresses together still get only a
      trickle of guesses. An address's first attempt, and any attempt from an address the
      agent logged in from before, skip it: a flood cannot keep the agent out.

    Refusals come back as a :class:`~bot.ratelimit.Decision` with ``retry_after``.
    """

    def __init__(self, redis: Redis, policy: LoginPolicy | None = None) -> None:
        self.redis = redis
        self.policy = policy or LoginPolicy()
        self.by_address = RateLimiter(redis, "login:address", self.policy.per_address)
        self.by_name = RateLimiter(redis, "login:name", self.policy.per_name)
        self._charge = redis.register_script(_CHARGE)

    async def attempt(self, name: str, address: str) -> Decision:
        """May this attempt go on to the password check? If so it is counted as a failure
        of (name, address) already; call :meth:`succeeded` when the password was right."""
        decision = await self.by_address.hit(address)
        if not decision.allowed or not NAME_PATTERN.match(name):
            return decision
        pipe = self.redis.pipeline(transaction=False)
        pipe.pttl(keys.login_lock(name, address))
        pipe.exists(keys.login_failures(name, address))
        pipe.sismember(keys.login_known(name), address)
        wait_ms, failed_before, known = await pipe.execute()
        if wait_ms > 0:
            return Decision(False, wait_ms / 1000)
        if failed_before and not known:
            decision = await self.by_name.hit(name)
            if not decision.allowed:
                return decision
        policy = self.policy
        wait_ms = await self._charge(
            keys=[keys.login_failures(name, address), keys.login_lock(name, address)],
            args=[policy.free_failures, policy.first_delay * 1000, policy.max_delay * 1000, policy.forget_after],
        )
        return Decision(False, int(wait_ms) / 1000) if int(wait_ms) > 0 else Decision(True)

    async def succeeded(self, name: str, address: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.login_failures(name, address), keys.login_lock(name, address))
        pipe.sadd(keys.login_known(name), address)
        pipe.expire(keys.login_known(name), self.policy.known_for)
        await pipe.execute()


def _new_epoch() -> str:
    return secrets.token_hex(8)


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
    redis = address.client()
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
            roles = parse_roles(args.roles)
            teams, languages = parse_skills(args.teams), parse_skills(args.languages)
            password = _read_password(args.password_stdin)
            await agents.add(args.name, password, args.capacity, roles, teams=teams, languages=languages)
            print(f"agent {args.name} saved ({', '.join(roles)}); they can log in to the console now")
        elif args.command == "skills":
            teams, languages = parse_skills(args.teams), parse_skills(args.languages)
            await agents.set_skills(args.name, teams, languages)
            print(
                f"{args.name} takes chats of teams {','.join(teams) or 'any'}, languages {','.join(languages) or 'any'}"
            )
        elif args.command == "roles":
            await agents.set_roles(args.name, parse_roles(args.roles))
            print(f"roles of {args.name}: {args.roles}")
        elif args.command == "passwd":
            await agents.set_password(args.name, _read_password(args.password_stdin))
            print(f"password of {args.name} changed; their open consoles are signed out")
        elif args.command == "remove":
            print(f"agent {args.name} removed" if await agents.remove(args.name) else f"no agent named {args.name}")
        else:
            for agent in await agents.all():
                chats = f"{agent.active}/{agent.capacity} chats"
                skills = _skills(agent.teams, agent.languages)
                print(f"{agent.name}\t{agent.status}\t{chats}\t{','.join(agent.roles)}\t{skills}")
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await redis.close()
    return 0


def _skills(teams: tuple[str, ...], languages: tuple[str, ...]) -> str:
    return f"teams {','.join(teams) or 'any'}, languages {','.join(languages) or 'any'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handoff.agents", description="Manage agent accounts.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("add", "passwd"):
        command = commands.add_parser(name)
        command.add_argument("name")
        command.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        if name == "add":
            command.add_argument("--capacity", type=int, default=3, help="chats at once (default 3)")
            command.add_argument(
                "--roles", default="agent", help=f"comma-separated, of {', '.join(ROLES)} (default agent)"
            )
            command.add_argument("--teams", default="", help="teams whose chats they take, comma-separated (any)")
            command.add_argument("--languages", default="", help="languages they answer in, e.g. en,ru (any)")
    roles = commands.add_parser("roles", help="change what an account may do")
    roles.add_argument("name")
    roles.add_argument("roles", help=f"comma-separated, of {', '.join(ROLES)}")
    skills = commands.add_parser("skills", help="the teams and languages whose chats an agent takes")
    skills.add_argument("name")
    skills.add_argument("--teams", default="", help="comma-separated team names (empty: any)")
    skills.add_argument("--languages", default="", help="comma-separated language codes (empty: any)")
    commands.add_parser("remove").add_argument("name")
    commands.add_parser("list")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
