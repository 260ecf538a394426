"""Data layer: typed records, annotation readers/writers, feature stores and torch datasets."""

from momentkit.data.records import DetectionSample, GroundingSample, Segment

__all__ = ["DetectionSample", "GroundingSample", "Segment"]
