"""Every Redis key the handoff side uses, in one place.

``handoff:chat:{id}``          hash: state (waiting|assigned|bot|closed), agent, card (JSON),
                               created_at, assigned_at, closed_at, priority, position_told
``handoff:queue``              sorted set of waiting conversation ids, scored by created_at
``handoff:agents``             set of agent names
``handoff:agent:{name}``       hash: password_hash, capacity, status (online|away|offline)
``handoff:agent:{name}:chats`` set of conversation ids assigned to the agent
``handoff:session:{token}``    string: agent name, with a TTL (console login)
``handoff:csat``               stream of CSAT answers: conversation_id, score, agent, ts
``handoff:unread:{name}``      hash: conversation id -> unread customer messages
"""

from __future__ import annotations

from bot.broker import DEFAULT_STREAM

QUEUE = "handoff:queue"
AGENTS = "handoff:agents"
CSAT = "handoff:csat"
EVENT_STREAM = DEFAULT_STREAM
EVENT_GROUP = "handoff"


def chat(conversation_id: str) -> str:
    return f"handoff:chat:{conversation_id}"


def agent(name: str) -> str:
    return f"handoff:agent:{name}"


def agent_chats(name: str) -> str:
    return f"handoff:agent:{name}:chats"


def session(token: str) -> str:
    return f"handoff:session:{token}"


def unread(name: str) -> str:
    return f"handoff:unread:{name}"
