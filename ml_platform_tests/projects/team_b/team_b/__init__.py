"""team_b: a second team's project on ml_platform, unlike the example in every way the library must not
assume: a business-day calendar, ``session``/``ticker`` keys, the ``team_b`` asset key prefix, a
scikit-learn model, lookbacks in partitions, and its own prices file."""
