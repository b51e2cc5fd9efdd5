"""Feeling: the operator's emotion from words, voice and face, fused, followed over the turns.

One idea per module:

- ``labels``: the shared label set, where each label sits in valence/arousal space, and the
  small arithmetic on label distributions every estimator uses;
- ``text``: the final transcript -> a ``ModalityEstimate`` (nade + VADER offline, or a
  configured transformers text-classification model);
- ``voice``: the utterance's audio -> prosody features, normalised against the operator's own
  running baseline -> a ``ModalityEstimate`` (or a configured transformers audio classifier);
- ``face``: the ``BehaviorObservation``s over the utterance's span -> a ``ModalityEstimate``;
- ``fusion``: gated, uncertainty-aware fusion of the three into one estimate;
- ``context``: the operator's state across turns: smoothing, trend, shifts;
- ``modeler``: the ``EmotionModeler`` actor that ties them to the bus.
"""
