"""Lesson 9, solved with minilm's own sweep statistics."""

import _minilm


def as_tuple(interval):
    return None if interval is None else (interval.n, interval.mean, interval.std, interval.low, interval.high)


def t_interval(values, confidence=0.95):
    return as_tuple(_minilm.t_interval(values, confidence))


def paired_difference(values, baseline, confidence=0.95):
    return as_tuple(_minilm.paired_difference(values, baseline, confidence))
