"""Rasa NLU component: the sentence encoder as a dense featurizer.

With it, Rasa's ``LogisticRegressionClassifier`` tells small talk, requests for a person,
keyboard mashing and support questions apart from meaning, in every language the encoder
knows, and trains in seconds instead of DIET's minutes. The message's vector is also put in
the parse data (``text_vector``, float16, base64: 1 KB), so the action server's matcher and
frustration scorer reuse it instead of embedding the same text again.

Button payloads (``/intent{...}``) are parsed by Rasa's own regex handler; they, and empty
texts, get a zero vector rather than a wasted embedding (the classifier needs a feature).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.encoder import VECTOR_KEY, get_encoder, pack_vector

log = logging.getLogger(__name__)

ALIAS = "sentence_encoder"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    """One sentence feature per message: the multilingual encoder's vector."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # Rasa's LogisticRegressionClassifier fixes C at 1, too strong a prior for unit
        # vectors whose useful differences are small; scaling the features by s is the same
        # as C = s². The vector passed on in the parse data is not scaled.
        return {**DenseFeaturizer.get_default_config(), "alias": ALIAS, "scale": 10.0}

    def __init__(self, config: dict[str, Any], name: str) -> None:
        super().__init__(name, config)
        self.encoder = get_encoder()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        return cls(config, execution_context.node_name)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Nothing to validate: the encoder is pinned in bot.nlu.encoder."""

    def _featurize(self, messages: list[Message], output: bool) -> None:
        todo = [m for m in messages if isinstance(m.get(TEXT), str)]
        real = [m for m in todo if m.get(TEXT).strip() and not m.get(TEXT).startswith("/")]
        vectors = self.encoder.embed([m.get(TEXT) for m in real]) if real else []
        by_id = {id(m): v for m, v in zip(real, vectors, strict=True)}
        for message in todo:
            vector = by_id.get(id(message))
            if vector is None:
                vector = np.zeros(self.encoder.dim, dtype=np.float32)
            elif output:
                message.set(VECTOR_KEY, pack_vector(vector), add_to_output=True)
            feature = (vector * self._config["scale"]).reshape(1, -1)
            message.add_features(Features(feature, FEATURE_TYPE_SENTENCE, TEXT, self._config["alias"]))

    def process(self, messages: list[Message]) -> list[Message]:
        self._featurize(messages, output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Embeds every example, reusing and then extending the saved vectors (the KB's
        phrasings are also the matcher's, so training warms the action server's start)."""
        from bot.nlu.encoder import save_vectors

        computed = self.encoder.computed
        self._featurize(training_data.training_examples, output=False)
        if self.encoder.computed > computed:
            save_vectors()
        return training_data
