"""Every Redis key the handoff side uses, in one place.

``handoff:chat:{id}``          hash: state (waiting|assigned|bot|closed), agent, card (JSON),
                               created_at, assigned_at, closed_at, priority, position_told
``handoff:queue``              sorted set of waiting conversation ids, scored by created_at
``handoff:agents``             set of agent names
``handoff:step:{s}:{id}``      string with a short TTL: step ``s`` (greeting, end) of that
                               chat is under way; keeps two concurrent retries apart (SET NX)
``handoff:agent:{name}``       hash: password_hash, capacity, status (online|away|offline),
                               auto_away, epoch (changes with the password: ends sessions)
``handoff:agent:{name}:chats`` set of conversation ids assigned to the agent
``handoff:session:{token}``    string: ``{name}:{epoch}``, with a TTL (console login); valid
                               while the agent exists and its epoch is unchanged
``handoff:login:fail:{name}:{address}``  failed logins of that name from that address (TTL)
``handoff:login:lock:{name}:{address}``  present (with a TTL) while that pair must wait
``handoff:login:known:{name}`` set of addresses the agent logged in from (TTL 30 days)
``ratelimit:login:*``          login rate-limit buckets (bot/ratelimit.py)
``handoff:csat``               stream of CSAT answers: conversation_id, score, agent, ts
``handoff:unread:{name}``      hash: conversation id -> unread customer messages
``kpi:facts``                  stream of the facts the team lead's figures come from (handoff/kpis.py):
                               no message text; trimmed after ``KPI_RETENTION_DAYS``
``kpi:customer:{id}``          stream: the same facts for one customer (capped), for the card's
                               "past conversations"
``handoff:notes:{id}``         list of agents' internal notes on a conversation (JSON), never sent
``handoff:retention:lease``    string with a TTL: the replica running the retention purge
                               (handoff/privacy.py retention_loop)
"""

from __future__ import annotations

from bot.broker import DEFAULT_STREAM

QUEUE = "handoff:queue"
AGENTS = "handoff:agents"
CSAT = "handoff:csat"
EVENT_STREAM = DEFAULT_STREAM
EVENT_GROUP = "handoff"
RETENTION_LEASE = "handoff:retention:lease"
KPI_FACTS = "kpi:facts"
# Pub/sub channels, not keys: typing indicators between the widget (Rasa's process) and the
# consoles (the handoff service). Nothing is stored; a lost one is a lost "is typing".
TYPING_CUSTOMER = "typing:customer"  # {"conversation_id"}
TYPING_AGENT = "typing:agent"  # {"conversation_id", "agent"}
HUB = "handoff:hub"  # console pushes shared by replicas: {"node", "agent", "payload"} or {"node", "queue"}
NOTES_PUSH = "notes:push"  # {"conversation_id", "note"}: a note written outside this service
KPI_GROUP = "kpis"  # the event stream's second consumer group: every event, batched


def chat(conversation_id: str) -> str:
    return f"handoff:chat:{conversation_id}"


def customer_facts(conversation_id: str) -> str:
    return f"kpi:customer:{conversation_id}"


def notes(conversation_id: str) -> str:
    return f"handoff:notes:{conversation_id}"


def agent(name: str) -> str:
    return f"handoff:agent:{name}"


def agent_chats(name: str) -> str:
    return f"handoff:agent:{name}:chats"


def session(token: str) -> str:
    return f"handoff:session:{token}"


def unread(name: str) -> str:
    return f"handoff:unread:{name}"


def chat_step(conversation_id: str, step: str) -> str:
    return f"handoff:step:{step}:{conversation_id}"


def login_failures(name: str, address: str) -> str:
    return f"handoff:login:fail:{name}:{address}"


def login_lock(name: str, address: str) -> str:
    return f"handoff:login:lock:{name}:{address}"


def login_known(name: str) -> str:
    return f"handoff:login:known:{name}"


def reply_sent(conversation_id: str, reply_id: str) -> str:
    """Set when an agent's reply with this id was first attempted (24 h): a retry then checks
    the transcript before sending, so a reply is delivered once."""
    return f"handoff:reply:{conversation_id}:{reply_id}"


# Agents' answers suggested for the knowledge base, waiting for an editor (handoff/editor.py).
SUGGESTIONS = "kb:suggestions"  # sorted set: suggestion id -> created at


def suggestion(suggestion_id: str) -> str:
    return f"kb:suggestion:{suggestion_id}"
