"""The knowledge base that content editors keep in ``data/faq/*.yml``."""

from bot.kb.loader import KnowledgeBaseError, Problem, load, load_dir
from bot.kb.matcher import ANSWER, NONE, SUGGEST, Match, Matcher, MatchSettings
from bot.kb.model import Entry, KnowledgeBase

__all__ = [
    "ANSWER",
    "NONE",
    "SUGGEST",
    "Entry",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "Match",
    "MatchSettings",
    "Matcher",
    "Problem",
    "load",
    "load_dir",
]
