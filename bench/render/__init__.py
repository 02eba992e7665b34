"""Renderers of the result objects, one small module per output.

``cells`` formats numbers once and describes each column (header, alignment, priority);
``terminal`` (rich, fitted to the terminal's width), ``latex`` (paper tables), ``markdown`` and
``csv`` only lay those cells out. They read :class:`bench.report.LeaderboardTable` and
:class:`bench.questions.QuestionsTable` and never compute a statistic.
"""
